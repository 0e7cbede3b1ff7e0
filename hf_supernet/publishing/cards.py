"""Model cards of published subnets: card data (Hub metadata) and the card text, rendered from a Jinja template.

The default template is the repository's top-level ``model_cards/subnet_card.md``. It ships inside the package
as ``hf_supernet.model_cards`` (``[tool.setuptools.package-dir]`` maps the folder there) and is read through
``importlib.resources``, so it is found the same way in an editable checkout, an installed wheel or a zipped
install. Pass ``template_path`` to use your own template; it gets the same variables (see :func:`card_variables`).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import AutoModelForCTC
from transformers.models.auto.modeling_auto import MODEL_FOR_CTC_MAPPING_NAMES

from ..costs import COST_NAMES
from ..units import REFERENCE_SECONDS
from ..version import __version__
from .export import is_stock_transformers_class

TEMPLATE_PACKAGE = "hf_supernet.model_cards"
TEMPLATE_NAME = "subnet_card.md"
TASK = "automatic-speech-recognition"
# Costs computed from the architecture; every other cost key of a selected entry is a measurement (``latency``: the
# real-time factor search measured on its machine, ``None`` when it did not measure it).
ANALYTIC_COSTS = frozenset({"params", "flops", "int8_mb"})


@dataclasses.dataclass
class CardMetadata:
    """What a card says that the supernet checkpoint does not record.

    Args:
        language: ISO 639-1 code(s) of the speech, e.g. ``"en"``.
        license: Hub license id of the weights, e.g. ``"apache-2.0"`` or ``"cc-by-sa-4.0"``.
        datasets: Hub ids (or names) of the training data.
        eval_dataset: Hub id or name of the data the search measured the metrics on, e.g. ``"fsdd"``.
        eval_split: its split, e.g. ``"dev"``.
        eval_num_utterances: how many utterances of that split (recorded by the search).
        supernet_repo_id: Hub repo of the supernet the subnets were cut from (the cards link to it and name it as
            ``base_model``); ``None`` when the supernet is not on the Hub.
    """

    language: str | list[str] | None = None
    license: str | None = None
    datasets: list[str] | None = None
    eval_dataset: str | None = None
    eval_split: str | None = None
    supernet_repo_id: str | None = None
    eval_num_utterances: int | None = None


def default_template() -> str:
    """Text of the template shipped with hf_supernet."""
    resource = importlib.resources.files(TEMPLATE_PACKAGE).joinpath(TEMPLATE_NAME)
    return resource.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------------ which class loads it


@dataclasses.dataclass(frozen=True)
class LoadingInfo:
    """How a user loads the published checkpoint, read off the extracted model and processor themselves (so a
    model family whose subnets extract to a stock class, e.g. ``Wav2Vec2ForCTC``, gets a stock card for free)."""

    model_class: str
    model_module: str  # top-level package that defines the class: "transformers", "hf_supernet", ...
    loads_with_stock_transformers: bool  # AutoModelForCTC loads it from plain transformers
    auto_model_works: bool  # AutoModelForCTC loads it (possibly after importing model_module)
    processor_class: str
    stock_processor: bool
    # The folder carries the class's code (auto_map): AutoModelForCTC / AutoProcessor load it with
    # trust_remote_code=True where hf_supernet is not installed.
    model_remote_code: bool = False
    processor_remote_code: bool = False

    @property
    def needs_hf_supernet(self) -> bool:
        model_loads = self.loads_with_stock_transformers or self.model_remote_code
        return not (model_loads and (self.stock_processor or self.processor_remote_code))


def loading_info(model, processor, processor_remote_code: bool = False) -> LoadingInfo:
    """``processor_remote_code``: the processor is saved with its code (as
    :func:`~hf_supernet.publishing.export.write_deployable` saves hf_supernet's processors); a model class marked
    for ``auto_map`` (``register_for_auto_class``, as the dense ``ConformerForCTC``) always saves its code."""
    cls = type(model)
    model_type = getattr(model.config, "model_type", None)
    stock = is_stock_transformers_class(cls) and MODEL_FOR_CTC_MAPPING_NAMES.get(model_type) == cls.__name__
    try:
        auto = AutoModelForCTC._model_mapping[type(model.config)] is cls
    except KeyError:  # a config class nobody registered with AutoModelForCTC
        auto = False
    stock_processor = is_stock_transformers_class(type(processor))
    return LoadingInfo(
        model_class=cls.__name__,
        model_module=cls.__module__.split(".")[0],
        loads_with_stock_transformers=stock,
        auto_model_works=auto,
        processor_class=type(processor).__name__,
        stock_processor=stock_processor,
        model_remote_code=not stock and getattr(cls, "_auto_class", None) is not None,
        processor_remote_code=processor_remote_code and not stock_processor,
    )


def _usage_imports(info: LoadingInfo) -> tuple[list[str], str]:
    """Import lines of the card's usage snippet, and the name it calls ``from_pretrained`` on."""
    lines = []
    if info.needs_hf_supernet:
        lines.append(
            "import hf_supernet  # noqa: F401  (registers hf_supernet's classes with transformers' Auto classes)"
        )
    lines += ["import soundfile", "import torch"]
    if info.auto_model_works or info.loads_with_stock_transformers or info.model_remote_code:
        lines.append("from transformers import AutoModelForCTC, AutoProcessor")
        return lines, "AutoModelForCTC"
    lines += ["from transformers import AutoProcessor", f"from {info.model_module} import {info.model_class}"]
    return lines, info.model_class


def _remote_code_kwargs(info: LoadingInfo) -> tuple[str, str]:
    """The extra ``from_pretrained`` arguments of the snippet's model and processor: ``trust_remote_code=True`` for
    a part whose code travels in the repo, when the snippet runs without hf_supernet."""
    remote = ", trust_remote_code=True"
    if info.needs_hf_supernet:
        return "", ""
    return (remote if info.model_remote_code else ""), (remote if info.processor_remote_code else "")


# ------------------------------------------------------------------------------------------------ formatting


def _si(value: float) -> str:
    for factor, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {unit}"
    return f"{value:.3g}"


def _percent(value) -> str:
    return "not measured" if value is None else f"{100 * value:.2f}%"


def _latency_label(key: str) -> str:
    if key == "latency" or "rtf" in key.lower():
        return "real-time factor (compute seconds per second of audio, batch of one, measured on the search's CPU)"
    return f"`{key}` (measured)"


def _latency_value(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def latency_rows(costs: dict[str, Any]) -> list[tuple[str, str]]:
    """Measured costs of a selected entry (any cost key beyond the analytic ones that has a value), as (label,
    value) rows; none when nothing was measured."""
    measured = sorted((k, v) for k, v in costs.items() if k not in ANALYTIC_COSTS and v is not None)
    return [(_latency_label(k), _latency_value(v)) for k, v in measured]


def _budget_text(budget) -> str:
    if budget is None:
        return "the search selected"
    if isinstance(budget, dict):
        limits = ", ".join(f"{COST_NAMES.get(k, k)} <= {v:.4g}" for k, v in sorted(budget.items()))
        return f"within {limits}"
    return f"within {100 * budget:.0f}% of the supernet's parameters"


def _eval_text(metadata: CardMetadata) -> str:
    if metadata.eval_dataset is None:
        return "by the subnet search on its evaluation split (the supernet does not record which data that was)"
    split = f", split `{metadata.eval_split}`" if metadata.eval_split else ""
    count = f" ({metadata.eval_num_utterances} utterances)" if metadata.eval_num_utterances is not None else ""
    return f"by the subnet search on `{metadata.eval_dataset}`{split}{count}"


def _supernet_text(metadata: CardMetadata, supernet_name: str, supernet_class: str) -> str:
    if metadata.supernet_repo_id:
        repo = metadata.supernet_repo_id
        budget_call = f'{supernet_class}.from_pretrained("{repo}", subnet_budget=0.5)'
        return f"[{repo}](https://huggingface.co/{repo}), a `{supernet_class}`; `{budget_call}` cuts other budgets"
    return f"`{supernet_name}`, a `{supernet_class}` (a local checkpoint, not published)"


# ------------------------------------------------------------------------------------------------ the card


def card_data(entry: dict, repo_id: str, metadata: CardMetadata, mask_type: str) -> ModelCardData:
    """Hub metadata: language, license, datasets, tags and the measured WER/CER as ``model-index`` results."""
    model_name = repo_id.split("/")[-1]
    metrics = entry.get("metrics") or {}
    dataset_type = metadata.eval_dataset or (metadata.datasets[0] if metadata.datasets else "custom")
    eval_results = [
        EvalResult(
            task_type=TASK,
            dataset_type=dataset_type,
            dataset_name=metadata.eval_dataset or "subnet search evaluation split",
            dataset_split=metadata.eval_split,
            metric_type=name,
            metric_name=name.upper(),
            metric_value=round(100 * metrics[name], 2),  # percent, as ASR model cards on the Hub report it
        )
        for name in ("wer", "cer")
        if metrics.get(name) is not None
    ]
    return ModelCardData(
        language=metadata.language,
        license=metadata.license,
        datasets=metadata.datasets,
        library_name="transformers",
        pipeline_tag=TASK,
        tags=["hf_supernet", "ctc", "supernet-subnet", mask_type],
        metrics=["wer", "cer"],
        base_model=metadata.supernet_repo_id,
        model_name=model_name,
        eval_results=eval_results or None,
    )


def card_variables(
    entry: dict,
    *,
    repo_id: str,
    info: LoadingInfo,
    mask_type: str,
    supernet_name: str,
    supernet_class: str,
    metadata: CardMetadata,
    sampling_rate: int,
    pareto_plot: str | None,
) -> dict[str, Any]:
    """Everything the template may use (besides ``card_data`` and the fields of the card data)."""
    costs, metrics = entry["costs"], entry.get("metrics") or {}
    import_lines, model_loader = _usage_imports(info)
    model_kwargs, processor_kwargs = _remote_code_kwargs(info)
    loss = metrics.get("loss")
    return {
        "model_name": repo_id.split("/")[-1],
        "repo_id": repo_id,
        "subnet_name": entry["name"],
        "budget_text": _budget_text(entry.get("budget")),
        "budget_json": "not recorded" if entry.get("budget") is None else f"`{json.dumps(entry['budget'])}`",
        "mask_type": mask_type,
        "spec_json": json.dumps(entry["spec"], sort_keys=True),
        "params_text": _si(costs["params"]),
        "flops_text": _si(costs["flops"]),
        "int8_text": f"{costs['int8_mb']:.3g} MB",
        "latency_rows": latency_rows(costs),
        "reference_seconds": f"{REFERENCE_SECONDS:g}",
        "wer_text": _percent(metrics.get("wer")),
        "cer_text": _percent(metrics.get("cer")),
        "loss_text": "not measured" if loss is None else f"{loss:.4f}",
        "eval_text": _eval_text(metadata),
        "supernet_text": _supernet_text(metadata, supernet_name, supernet_class),
        "sampling_rate": sampling_rate,
        "pareto_plot": pareto_plot,
        "import_lines": import_lines,
        "model_loader": model_loader,
        "model_kwargs": model_kwargs,
        "processor_kwargs": processor_kwargs,
        "hf_supernet_version": __version__,
        **dataclasses.asdict(info),
    }


def subnet_card(
    entry: dict,
    *,
    repo_id: str,
    model,
    processor,
    mask_type: str,
    supernet_name: str,
    supernet_class: str,
    metadata: CardMetadata | None = None,
    pareto_plot: str | None = None,
    template_path: str | None = None,
    processor_remote_code: bool = False,
) -> ModelCard:
    """The model card of one selected subnet (an entry of ``config.selected_subnets``) published as ``repo_id``.

    ``model`` and ``processor`` are what gets published: the card's "which class loads it" and usage snippet are
    read off them (``processor_remote_code``: the processor is saved with its code, see :func:`loading_info`).
    ``pareto_plot`` is the plot's file name inside the published folder (``None``: no plot).
    """
    metadata = metadata or CardMetadata()
    variables = card_variables(
        entry,
        repo_id=repo_id,
        info=loading_info(model, processor, processor_remote_code),
        mask_type=mask_type,
        supernet_name=supernet_name,
        supernet_class=supernet_class,
        metadata=metadata,
        sampling_rate=processor.feature_extractor.sampling_rate,
        pareto_plot=pareto_plot,
    )
    data = card_data(entry, repo_id, metadata, mask_type)
    if template_path is None:
        return ModelCard.from_template(data, template_str=default_template(), **variables)
    import jinja2

    try:
        return ModelCard.from_template(data, template_path=str(template_path), **variables)
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"Cannot read the model card template {template_path}: {error}.") from None
    except (jinja2.TemplateError, ValueError, TypeError, ArithmeticError, AttributeError, KeyError) as error:
        line = f" (line {error.lineno})" if getattr(error, "lineno", None) else ""
        raise ValueError(
            f"The model card template {template_path}{line} is not a valid Jinja template for this card: "
            f"{type(error).__name__}: {error}. Its variables are those of hf_supernet.publishing.cards.card_variables "
            "and card_data; fix the template or drop --template to use the default one."
        ) from None
