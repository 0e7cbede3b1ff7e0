"""``publish_subnets``: every selected subnet of a supernet -> a self-contained folder -> its own Hub repo."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers import AutoModelForCTC, AutoProcessor
from transformers.utils import logging

from ..atomic import atomic_directory
from ..budgets import normalize_budget, select_from_selected, verify_stored_costs
from ..subnets import SubnetSpec
from .cards import CardMetadata, loading_info, subnet_card
from .export import write_deployable
from .hub import call_with_retries, check_hub_access, upload_folder_to_repo

logger = logging.get_logger(__name__)

PARETO_FILE = "pareto.png"
_LOADING_ONLY_TOKENIZER_KWARGS = ("is_local", "local_files_only")


@dataclasses.dataclass(frozen=True)
class PublishedSubnet:
    """One published subnet: its ``name`` in ``config.selected_subnets``, the repo it goes to, the local folder
    (``None`` when it was written to a temporary folder for the upload only), the class that loads it, and the
    commit URL when it was pushed."""

    name: str
    repo_id: str
    folder: Path | None
    model_class: str
    loads_with_stock_transformers: bool
    commit_url: str | None = None
    measured_on: str | None = None


class PublishError(RuntimeError):
    """Some subnets were not uploaded. ``published`` lists those that were, ``failed`` maps the others' names to
    their errors. Running the same command again retries; repos already up to date are not re-uploaded."""

    def __init__(self, message: str, published: list[PublishedSubnet], failed: dict[str, BaseException]):
        super().__init__(message)
        self.published, self.failed = published, failed


# ------------------------------------------------------------------------------------------------ which subnets


def select_entries(selected: Sequence[dict], wanted, full_costs) -> list[dict]:
    """The entries of ``config.selected_subnets`` to publish: all of them (``wanted=None``), or per item of
    ``wanted`` the entry of that name (a str) or the one ``from_pretrained(..., subnet_budget=item)`` would return
    (a float fraction or a dict of cost limits). In order, without duplicates."""
    if not selected:
        raise ValueError(
            "The supernet has no selected subnets (config.selected_subnets is empty), so there is nothing to "
            "publish. Run the subnet search first, e.g. `python scripts/search.py SUPERNET --budgets 0.5,0.75`."
        )
    if wanted is None:
        return list(selected)
    if isinstance(wanted, (str, int, float, dict)):
        wanted = [wanted]
    by_name = {entry["name"]: entry for entry in selected}
    available = ", ".join(f"{e['name']} ({e['costs']['params']} params)" for e in selected)
    chosen: list[dict] = []
    for item in wanted:
        if isinstance(item, str):
            entry = by_name.get(item)
            if entry is None:
                raise ValueError(f"No selected subnet is named {item!r}; the supernet's selected subnets: {available}.")
        else:
            entry = select_from_selected(selected, normalize_budget(item, full_costs))
            if entry is None:
                raise ValueError(
                    f"No selected subnet fits the budget {item!r}; the supernet's selected subnets: {available}. "
                    "Search one for it first (scripts/search.py --budgets ...)."
                )
        if all(entry is not c for c in chosen):
            chosen.append(entry)
    return chosen


# ------------------------------------------------------------------------------------------------ names


def repo_id_for(repo_prefix: str, name: str, namespace: str | None = None) -> str:
    """``{repo_prefix}-{name}``, with characters repo names cannot hold replaced by ``-`` (budget names such as
    ``flops_2e+09`` have a ``+``) and the user's ``namespace`` added when the prefix has none."""
    if "/" not in repo_prefix and namespace:
        repo_prefix = f"{namespace}/{repo_prefix}"
    owner, _, prefix = repo_prefix.rpartition("/")
    repo_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{prefix}-{name}")
    repo_name = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", repo_name)).strip("-.")
    repo_id = f"{owner}/{repo_name}" if owner else repo_name
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(
            f"repo_prefix={repo_prefix!r} and subnet {name!r} make the invalid repo id {repo_id!r} ({err}). Use a "
            "prefix like 'user/model-name' (letters, digits, '-', '_', '.'; at most 96 characters with the name)."
        ) from err
    if len(repo_name) > 96:
        raise ValueError(f"Repo name {repo_name!r} is longer than the Hub's 96 characters; use a shorter repo_prefix.")
    return repo_id


def _check_folder_name(name: str) -> str:
    if not name or name.startswith(".") or os.sep in name or (os.altsep and os.altsep in name):
        raise ValueError(
            f"Selected subnet name {name!r} cannot be a folder name; rename it in config.selected_subnets."
        )
    return name


# ------------------------------------------------------------------------------------------------ provenance


def entry_metadata(entry: dict, metadata: CardMetadata) -> CardMetadata:
    """``metadata`` for ``entry``'s card, labelled with where the search measured its metrics.

    The search records that in the entry (``measured_on``: dataset, split, number of utterances). A given
    ``eval_dataset`` / ``eval_split`` that disagrees with the record is an error (a card must not call dev-split
    figures test results); one that is missing is filled in from it. Entries of searches that recorded nothing keep
    the given labels, with a warning that they cannot be checked."""
    recorded = entry.get("measured_on") or {}
    if not recorded:
        if metadata.eval_dataset is not None or metadata.eval_split is not None:
            logger.warning(
                f"Selected subnet {entry['name']!r} does not record where its metrics were measured (searched before "
                "hf_supernet recorded it): its card labels them with eval_dataset/eval_split as given, unchecked. "
                "Search again to record it."
            )
        return metadata
    for field, key in (("eval_dataset", "dataset"), ("eval_split", "split")):
        given, measured = getattr(metadata, field), recorded.get(key)
        if given is not None and measured is not None and str(given) != str(measured):
            raise ValueError(
                f"{field}={given!r} disagrees with where the search measured the metrics of selected subnet "
                f"{entry['name']!r}: {describe_measured_on(recorded)}. Drop --{field} (the card then states what "
                f"the search recorded), or search again on that data (scripts/search.py --dataset ... --split ...)."
            )
    return dataclasses.replace(
        metadata,
        eval_dataset=metadata.eval_dataset if metadata.eval_dataset is not None else recorded.get("dataset"),
        eval_split=metadata.eval_split if metadata.eval_split is not None else recorded.get("split"),
        eval_num_utterances=recorded.get("num_utterances"),
    )


def describe_measured_on(recorded: dict | None) -> str:
    """``dataset fsdd, split dev, 270 utterances`` (or what of it is recorded)."""
    if not recorded:
        return "not recorded"
    parts = [f"dataset {recorded.get('dataset') or '(unnamed)'}", f"split {recorded.get('split') or '(unnamed)'}"]
    if recorded.get("num_utterances") is not None:
        parts.append(f"{recorded['num_utterances']} utterances")
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------------ local folders


def _refuse_foreign_files(folder: Path, new: Path) -> None:
    """Refuse to replace ``folder`` when it holds files publishing does not write (the user's own)."""
    if not folder.is_dir():
        return
    ours = {p.name for p in new.iterdir()} | {PARETO_FILE}
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in ours)
    if foreign:
        raise FileExistsError(
            f"{folder} holds files that publishing did not write ({', '.join(foreign)}); rewriting the folder would "
            "delete them. Move them elsewhere, choose another local_dir, or pass overwrite_local_dir=True "
            "(--overwrite_local_dir) to delete them."
        )


def write_subnet_folder(
    folder: Path,
    entry: dict,
    supernet,
    processor,
    *,
    repo_id: str,
    supernet_name: str,
    metadata: CardMetadata,
    pareto_plot: Path | None,
    template_path: str | None,
    overwrite: bool = False,
    calibration_data=None,
) -> PublishedSubnet:
    """Extract ``entry``'s subnet (its BatchNorm statistics re-estimated on ``calibration_data`` if given) and write
    weights (safetensors), config, processor (both with their code, so they load with ``trust_remote_code=True``
    without hf_supernet), model card (README.md) and the Pareto plot into ``folder``, atomically. An existing
    ``folder`` holding other files is refused (its files are kept) unless ``overwrite``."""
    model = supernet.extract_subnet(SubnetSpec.from_dict(entry["spec"]), calibration_data=calibration_data).eval()
    card = subnet_card(
        entry,
        repo_id=repo_id,
        model=model,
        processor=processor,
        mask_type=getattr(supernet.config, "mask_type", "unknown"),
        supernet_name=supernet_name,
        supernet_class=type(supernet).__name__,
        metadata=metadata,
        pareto_plot=PARETO_FILE if pareto_plot is not None else None,
        template_path=template_path,
        processor_remote_code=True,
    )
    with atomic_directory(folder) as tmp:
        write_deployable(model, tmp, processor)  # hf_supernet's classes as remote code: loads without hf_supernet
        card.save(tmp / "README.md")
        if pareto_plot is not None:
            shutil.copyfile(pareto_plot, tmp / PARETO_FILE)
        if not overwrite:
            _refuse_foreign_files(folder, tmp)
    info = loading_info(model, processor, processor_remote_code=True)
    return PublishedSubnet(
        entry["name"], repo_id, folder, info.model_class, info.loads_with_stock_transformers,
        measured_on=describe_measured_on(entry.get("measured_on")),
    )


def _calibration_from_records(entries: list[dict], processor) -> dict[str, list]:
    """The BatchNorm calibration batches of each entry the search calibrated, rebuilt from its record (one load per
    distinct record)."""
    from ..search import calibration_batches_from_record

    rebuilt, out = {}, {}
    for entry in entries:
        record = entry.get("batch_norm_calibration")
        if not record:
            continue
        key = json.dumps(record, sort_keys=True)
        if key not in rebuilt:
            try:
                rebuilt[key] = calibration_batches_from_record(record, processor)
            except (ValueError, OSError) as error:
                raise ValueError(
                    f"The metrics of {entry['name']!r} were measured with BatchNorm statistics re-estimated for the "
                    f"subnet on {record}, which could not be rebuilt ({error}); without them the published subnet "
                    "would not reproduce its card. Pass calibration_data= (the same batches)."
                ) from error
        out[entry["name"]] = rebuilt[key]
    return out


# ------------------------------------------------------------------------------------------------ loading the supernet


def load_supernet(supernet_path, token=None):
    """The supernet and its processor, with errors that say what is missing."""
    model = AutoModelForCTC.from_pretrained(supernet_path, token=token).eval()
    if not hasattr(model, "extract_subnet") or not hasattr(model.config, "selected_subnets"):
        raise ValueError(
            f"{supernet_path} holds a {type(model).__name__}, not an hf_supernet supernet; publish_subnets needs the "
            "supernet folder that search_subnets / scripts/search.py saved."
        )
    try:
        processor = AutoProcessor.from_pretrained(supernet_path, token=token)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(
            f"Could not load a processor from {supernet_path} ({err}). Published subnets need one: save it next to the "
            "supernet with `processor.save_pretrained(supernet_path)` (scripts/quickstart.py and search.py do)."
        ) from err
    if not hasattr(processor, "feature_extractor") or not hasattr(processor, "tokenizer"):
        raise ValueError(
            f"{supernet_path} holds a {type(processor).__name__}, not a speech processor with a feature extractor and a "
            "tokenizer; save the SupernetSpeechProcessor (hf_supernet.build_processor) there."
        )
    # transformers records how the tokenizer was loaded ("is_local", "local_files_only": true when offline) in its
    # init kwargs, which save_pretrained writes out; they describe this machine, not the published checkpoint.
    for key in _LOADING_ONLY_TOKENIZER_KWARGS:
        processor.tokenizer.init_kwargs.pop(key, None)
    return model, processor


def _default_pareto_plot(supernet_path) -> Path | None:
    candidate = Path(supernet_path) / PARETO_FILE
    return candidate if candidate.is_file() else None


# ------------------------------------------------------------------------------------------------ the whole job


def publish_subnets(
    supernet_path: str | os.PathLike,
    repo_prefix: str,
    budgets_or_names=None,
    *,
    push: bool = True,
    local_dir: str | os.PathLike | None = None,
    private: bool = False,
    token: str | None = None,
    language: str | list[str] | None = None,
    license: str | None = None,
    datasets: list[str] | None = None,
    eval_dataset: str | None = None,
    eval_split: str | None = None,
    supernet_repo_id: str | None = None,
    pareto_plot: str | os.PathLike | None = None,
    template_path: str | os.PathLike | None = None,
    commit_message: str = "Upload subnet with hf_supernet",
    overwrite_local_dir: bool = False,
    calibration_data=None,
) -> list[PublishedSubnet]:
    """Publish selected subnets of a supernet, each as a complete, self-contained model repo.

    For each subnet (all of ``config.selected_subnets`` by default), writes ``local_dir/<name>/``: the extracted
    plain dense model (``model.safetensors``, ``config.json`` and the model's code, e.g. ``modeling_conformer.py``),
    the processor (feature extractor + tokenizer, with its code), a model card (``README.md``: metrics, costs, the
    class that loads it, a usage snippet with ``trust_remote_code=True``) and the Pareto plot; then, with
    ``push=True``, creates ``{repo_prefix}-{name}`` on the Hub and uploads the folder. The folder loads with
    ``AutoModelForCTC`` / ``AutoProcessor.from_pretrained(folder, trust_remote_code=True)`` without hf_supernet.

    Args:
        supernet_path: folder (or Hub repo id) of a supernet saved after ``search_subnets``, with its processor.
        repo_prefix: ``"user/name"`` (or ``"name"``: the logged-in user's namespace); each subnet goes to
            ``{repo_prefix}-{subnet name}``.
        budgets_or_names: which subnets: ``None`` (all selected), or a name / budget or a list of them; a budget
            (``0.5``, ``{"flops": 1e8}``) picks the subnet ``from_pretrained(..., subnet_budget=...)`` returns.
        push: upload to the Hub; ``False`` only writes the folders (then ``local_dir`` is required).
        local_dir: where the folders go (rewritten atomically); default with ``push=True``: a temporary folder. A
            subnet's folder that holds files publishing does not write is refused, its files kept.
        overwrite_local_dir: rewrite such folders anyway, deleting those files.
        private: create new repos private (existing repos keep their visibility).
        token: Hub token; default: what huggingface_hub finds (``HF_TOKEN``, ``hf auth login``).
        language, license, datasets: card metadata (see :class:`~hf_supernet.publishing.CardMetadata`).
        eval_dataset, eval_split: which data the search measured the metrics on (the card says so). The search
            records it in each entry (``measured_on``); a label that disagrees is an error, a missing one is filled
            in from the record.
        supernet_repo_id: Hub repo of the supernet, if published (cards link to it as their ``base_model``);
            defaults to ``supernet_path`` when that is a Hub repo id rather than a folder.
        pareto_plot: image of the search to put in each repo; default ``supernet_path/pareto.png`` if it exists.
        template_path: a Jinja card template replacing hf_supernet's ``model_cards/subnet_card.md``.
        calibration_data: for a supernet with BatchNorm (Parakeet architecture), the batches each subnet's BatchNorm
            statistics are re-estimated on before it is written, so that the published subnet reproduces its card's
            metrics: the batches the search calibrated on. Default: rebuilt from each entry's
            ``batch_norm_calibration`` record (:func:`~hf_supernet.search.calibration_batches_from_record`); an
            entry whose record names no loadable dataset is refused.

    Returns:
        One :class:`PublishedSubnet` per subnet. Raises :class:`~hf_supernet.publishing.HubAccessError` before
        writing anything when pushing is impossible (offline, not logged in), and :class:`PublishError` after trying
        every subnet when some uploads failed; running again retries them, and repos already up to date get no
        new commit (``upload_folder`` skips unchanged files).
    """
    if not push and local_dir is None:
        raise ValueError("push=False only writes the folders, so it needs local_dir=... to write them to.")
    api = HfApi(token=token)
    namespace = check_hub_access(api, token) if push else None
    supernet, processor = load_supernet(supernet_path, token=token)
    verify_stored_costs(supernet.config.selected_subnets or [], supernet.subnet_costs)  # cards state these costs
    entries = select_entries(supernet.config.selected_subnets, budgets_or_names, supernet.subnet_costs())
    is_local = Path(supernet_path).is_dir()
    metadata = CardMetadata(
        language=language,
        license=license,
        datasets=list(datasets) if datasets else None,
        eval_dataset=eval_dataset,
        eval_split=eval_split,
        supernet_repo_id=supernet_repo_id or (None if is_local else str(supernet_path)),
    )
    if pareto_plot is None:
        pareto_plot = _default_pareto_plot(supernet_path) if is_local else None
    elif not Path(pareto_plot).is_file():
        raise FileNotFoundError(f"pareto_plot={str(pareto_plot)!r} is not a file.")
    repo_ids = {e["name"]: repo_id_for(repo_prefix, _check_folder_name(e["name"]), namespace) for e in entries}
    supernet_name = Path(supernet_path).name if is_local else str(supernet_path)
    per_entry = {e["name"]: entry_metadata(e, metadata) for e in entries}  # every label checked before any write
    calibration = {e["name"]: calibration_data for e in entries}
    if calibration_data is None:
        calibration.update(_calibration_from_records(entries, processor))
    for entry in entries:
        logger.info(f"{entry['name']}: metrics measured on {describe_measured_on(entry.get('measured_on'))}")

    with contextlib.ExitStack() as stack:
        if local_dir is None:
            root, keep = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hf_supernet-publish-"))), False
        else:
            root, keep = Path(local_dir), True
        written = [
            write_subnet_folder(
                root / entry["name"],
                entry,
                supernet,
                processor,
                repo_id=repo_ids[entry["name"]],
                supernet_name=supernet_name,
                metadata=per_entry[entry["name"]],
                pareto_plot=Path(pareto_plot) if pareto_plot is not None else None,
                template_path=template_path,
                overwrite=overwrite_local_dir,
                calibration_data=calibration[entry["name"]],
            )
            for entry in entries
        ]
        if push:
            try:
                written = _push_all(api, written, private=private, token=token, commit_message=commit_message)
            except PublishError as error:
                if not keep:
                    error.published = _without_folders(error.published)  # the temporary folder goes with this block
                raise
    return written if keep else _without_folders(written)


def _without_folders(subnets: list[PublishedSubnet]) -> list[PublishedSubnet]:
    return [dataclasses.replace(p, folder=None) for p in subnets]


def _push_all(api, written, *, private, token, commit_message) -> list[PublishedSubnet]:
    """Upload every folder; one failure does not stop the others. Raises :class:`PublishError` naming the failed."""
    published, failed = [], {}
    for subnet in written:
        try:
            info = upload_folder_to_repo(
                api, subnet.folder, subnet.repo_id, private=private, token=token, commit_message=commit_message
            )
        except Exception as error:  # noqa: BLE001  (reported below, with every other failure)
            failed[subnet.name] = error
            continue
        published.append(dataclasses.replace(subnet, commit_url=getattr(info, "commit_url", None)))
    if failed:
        repo_of = {s.name: s.repo_id for s in written}
        lines = "\n".join(f"  {name} -> {repo_of[name]}: {type(err).__name__}: {err}" for name, err in failed.items())
        done = ", ".join(p.repo_id for p in published) or "none"
        raise PublishError(
            f"{len(failed)} of {len(written)} subnets were not uploaded:\n{lines}\nUploaded: {done}. Run the same "
            "command again to retry; repos already up to date are not re-uploaded.",
            published,
            failed,
        ) from next(iter(failed.values()))
    return published


def push_supernet(
    supernet_path: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    pareto_plot: str | os.PathLike | None = None,
) -> str:
    """Push the supernet itself (model with its ``selected_subnets``, and processor) the way a transformers user
    does, ``model.push_to_hub`` + ``processor.push_to_hub``, plus its Pareto plot. Returns the full repo id.

    The repo holds no code: after ``import hf_supernet``, ``AutoModelForCTC.from_pretrained(repo_id)`` loads the
    supernet (and ``subnet_budget=...`` cuts a subnet) without ``trust_remote_code``.
    """
    api = HfApi(token=token)
    namespace = check_hub_access(api, token)
    repo_id = repo_id if "/" in repo_id else f"{namespace}/{repo_id}"
    model, processor = load_supernet(supernet_path, token=token)
    call_with_retries(model.push_to_hub, repo_id, private=private, token=token)
    call_with_retries(processor.push_to_hub, repo_id, private=private, token=token)
    if pareto_plot is None and Path(supernet_path).is_dir():
        pareto_plot = _default_pareto_plot(supernet_path)
    if pareto_plot is not None:
        call_with_retries(
            api.upload_file, path_or_fileobj=str(pareto_plot), path_in_repo=PARETO_FILE, repo_id=repo_id, token=token
        )
    return repo_id
