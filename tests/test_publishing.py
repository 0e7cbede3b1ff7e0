"""Publishing: self-contained subnet folders that load and give the masked supernet's logits, model cards that carry
the metrics, and the Hub upload tested at the huggingface_hub API boundary (nothing here reaches the network)."""

import json
import os
import re
import runpy
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from huggingface_hub import HfApi, ModelCard, RepoUrl, constants
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from transformers import AutoModelForCTC, AutoProcessor

from hf_supernet import ConformerForCTC, SubnetSpec, SupernetConformerForCTC, publish_subnets
from hf_supernet.data import build_processor, train_tokenizer
from hf_supernet.publishing import (
    CardMetadata,
    HubAccessError,
    PublishError,
    default_template,
    hub,
    loading_info,
    push_supernet,
    repo_id_for,
    select_entries,
    subnet_card,
)
from hf_supernet.search import budget_name

from .conftest import run_without_hf_supernet, tiny_conformer_config

try:  # the HTTP client of huggingface_hub >= 1.x
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

REPO = Path(__file__).resolve().parents[1]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FAKE_PNG = b"\x89PNG\r\n\x1a\n not really an image"
SUBNET_FILES = {
    "README.md",
    "config.json",
    "hf_supernet_checksums.json",
    "model.safetensors",
    "pareto.png",
    "processor_config.json",
    "tokenizer.model",
    "tokenizer_config.json",
    # The remote code of the dense model and of the processor: the folder loads without hf_supernet.
    "checksums.py",
    "configuration_conformer.py",
    "modeling_conformer.py",
    "processing.py",
    "text.py",
}


# ------------------------------------------------------------------------------------------------ fixtures


def make_entry(model, spec, budget, metrics, **extra_costs):
    costs = model.subnet_costs(spec).to_dict()
    costs.update(extra_costs)
    return {"name": budget_name(budget), "budget": budget, "spec": spec.to_dict(), "costs": costs, "metrics": metrics}


@pytest.fixture(scope="module")
def supernet_dir(tmp_path_factory):
    """A tiny trained-looking supernet folder: weights, processor, two selected subnets, a Pareto plot.

    The first subnet's latency was not measured (``latency: None``, as search writes it with measure_latency=False);
    the second's was, and its budget name has a '+' (not allowed in repo names)."""
    path = tmp_path_factory.mktemp("supernet")
    tokenizer = train_tokenizer(DIGITS * 3, model_type="char")
    processor = build_processor(tokenizer, feature_size=16)
    torch.manual_seed(0)
    model = SupernetConformerForCTC(tiny_conformer_config(vocab_size=len(tokenizer))).eval()
    space = model.subnet_space
    mid = next(s for s in space if s.num_layers == 3 and len(set(s.ffn_dims)) > 1)
    flops_budget = {"flops": model.subnet_costs(mid).flops * 1.01}
    model.config.selected_subnets = [
        make_entry(model, space.smallest(), 0.5, {"loss": 0.5, "wer": 0.25, "cer": 0.125}),
        make_entry(model, mid, flops_budget, {"loss": 0.25, "wer": 0.1, "cer": 0.05}, latency=0.0123),
    ]
    model.save_pretrained(path)
    processor.save_pretrained(path)
    (path / "pareto.png").write_bytes(FAKE_PNG)
    return path


@pytest.fixture(scope="module")
def supernet(supernet_dir):
    return SupernetConformerForCTC.from_pretrained(supernet_dir).eval()


# Full card metadata, the same for every local publication a test compares.
CARD_METADATA = dict(language="en", license="apache-2.0", datasets=["fsdd"], eval_dataset="fsdd", eval_split="dev")


@pytest.fixture(scope="module")
def published(supernet_dir, tmp_path_factory):
    """The supernet's subnets written locally (no push), with full card metadata."""
    local_dir = tmp_path_factory.mktemp("published")
    result = publish_subnets(supernet_dir, "someone/digits", push=False, local_dir=local_dir, **CARD_METADATA)
    return local_dir, result


def speech(seconds=0.6, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * 16000))).astype(np.float32)


# ------------------------------------------------------------------------------------------------ local folders


def test_published_folders_load_and_give_the_masked_supernets_logits(published, supernet):
    local_dir, result = published
    assert [p.name for p in result] == [e["name"] for e in supernet.config.selected_subnets]
    for entry, subnet in zip(supernet.config.selected_subnets, result):
        folder = local_dir / entry["name"]
        assert subnet.folder == folder and {f.name for f in folder.iterdir()} == SUBNET_FILES
        assert (subnet.model_class, subnet.loads_with_stock_transformers) == ("ConformerForCTC", False)
        processor = AutoProcessor.from_pretrained(folder)
        inputs = processor(audio=[speech(0.6), speech(0.35, seed=1)], sampling_rate=16000)
        with torch.no_grad(), supernet.use_subnet(SubnetSpec.from_dict(entry["spec"])):
            expected = supernet(**inputs).logits
        for loader in (AutoModelForCTC, ConformerForCTC):
            dense = loader.from_pretrained(folder).eval()
            assert type(dense) is ConformerForCTC
            assert dense.num_parameters() == entry["costs"]["params"]
            with torch.no_grad():
                torch.testing.assert_close(dense(**inputs).logits, expected, atol=1e-4, rtol=0)
        with pytest.raises(ValueError, match="AutoModelForCTC"):  # not a supernet: the error names the loader
            SupernetConformerForCTC.from_pretrained(folder)
        config = json.loads((folder / "config.json").read_text())
        assert config["subnet_spec"] == entry["spec"] and "selected_subnets" not in config
        # Remote code: the model's and processor's classes load from the folder's own files.
        assert config["auto_map"]["AutoModelForCTC"] == "modeling_conformer.ConformerForCTC"
        assert "auto_map" in json.loads((folder / "processor_config.json").read_text())
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
        assert "local_files_only" not in tokenizer_config and "is_local" not in tokenizer_config
        assert (folder / "pareto.png").read_bytes() == FAKE_PNG


def test_cards_carry_metadata_metrics_costs_and_the_loading_class(published, supernet):
    local_dir, result = published
    small, mid = supernet.config.selected_subnets
    card = ModelCard.load(local_dir / small["name"] / "README.md")
    assert card.data.language == "en" and card.data.license == "apache-2.0" and card.data.datasets == ["fsdd"]
    assert card.data.pipeline_tag == "automatic-speech-recognition" and card.data.library_name == "transformers"
    results = {r.metric_type: r for r in card.data.eval_results}
    assert results["wer"].metric_value == 25.0 and results["cer"].metric_value == 12.5
    assert results["wer"].dataset_type == "fsdd" and results["wer"].dataset_split == "dev"
    text = card.text
    assert "| WER | 25.00% |" in text and "| CER | 12.50% |" in text and "| CTC loss | 0.5000 |" in text
    assert f"| parameters | {small['costs']['params'] / 1e3:.3g} k |" in text
    assert "| latency | not measured |" in text
    assert "`ConformerForCTC`, a plain dense model" in text and "remote code (the `.py` files next to the weights" in text
    assert 'AutoModelForCTC.from_pretrained("someone/digits-params_50pct", trust_remote_code=True)' in text
    assert 'AutoProcessor.from_pretrained("someone/digits-params_50pct", trust_remote_code=True)' in text
    assert "Mask type: `layer_width`" in text and json.dumps(small["spec"], sort_keys=True) in text
    assert "](pareto.png)" in text

    mid_card = ModelCard.load(local_dir / mid["name"] / "README.md")
    assert (
        "| real-time factor (compute seconds per second of audio, batch of one, measured on the search's CPU) | 0.0123 |"
        in mid_card.text
    )
    assert "not measured |" not in mid_card.text
    assert {r.metric_type: r.metric_value for r in mid_card.data.eval_results} == {"wer": 10.0, "cer": 5.0}
    # The '+' of the budget name is not allowed in repo names.
    assert result[1].repo_id == "someone/digits-flops_" + mid["name"].split("_", 1)[1].replace("+", "-")


def test_card_usage_snippet_runs_without_hf_supernet(published, tmp_path):
    local_dir, result = published
    card = ModelCard.load(local_dir / result[0].name / "README.md")
    code = re.search(r"```python\n(.*?)```", card.text, re.DOTALL).group(1)
    assert "hf_supernet" not in code and code.count("trust_remote_code=True") == 2
    soundfile.write(tmp_path / "speech.wav", speech(0.8), 16000)
    # The card's own snippet, pointed at the local folder, in a Python where hf_supernet cannot be imported.
    snippet = code.replace(result[0].repo_id, str(result[0].folder))
    run = run_without_hf_supernet(snippet + "\nassert not any(m.startswith('hf_supernet') for m in sys.modules)\n", [], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(run.stdout.splitlines()) == 1  # the transcript it prints


def test_card_of_a_stock_class_says_plain_transformers_loads_it(supernet, tmp_path):
    """'Which class loads it' comes from the published model and processor, not from the mask type."""
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"<pad>": 0, "<unk>": 1, "|": 2, "a": 3}))
    processor = Wav2Vec2Processor(Wav2Vec2FeatureExtractor(), Wav2Vec2CTCTokenizer(str(vocab)))
    model = Wav2Vec2ForCTC(
        Wav2Vec2Config(
            vocab_size=4,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
            conv_dim=(8,),
            conv_stride=(5,),
            conv_kernel=(10,),
            num_conv_pos_embeddings=4,
            num_conv_pos_embedding_groups=2,
        )
    )
    info = loading_info(model, processor)
    assert info.loads_with_stock_transformers and info.stock_processor and not info.needs_hf_supernet
    entry = supernet.config.selected_subnets[0]
    card = subnet_card(
        entry,
        repo_id="someone/w2v",
        model=model,
        processor=processor,
        mask_type="folding",
        supernet_name="s",
        supernet_class="FoldableWav2Vec2ForCTC",
    )
    assert "`Wav2Vec2ForCTC`, a class of stock `transformers`" in card.text
    code = re.search(r"```python\n(.*?)```", card.text, re.DOTALL).group(1)
    assert "import hf_supernet" not in code and "AutoModelForCTC" in code

    hf_processor = build_processor(train_tokenizer(DIGITS, model_type="char"))
    hf_info = loading_info(model, hf_processor)
    assert hf_info.loads_with_stock_transformers and hf_info.needs_hf_supernet  # stock model, hf_supernet processor
    # ... unless the processor is saved with its code (as publishing saves it): then plain transformers loads both.
    remote = loading_info(model, hf_processor, processor_remote_code=True)
    assert remote.processor_remote_code and not remote.model_remote_code and not remote.needs_hf_supernet
    assert not loading_info(model, processor, processor_remote_code=True).processor_remote_code  # stock: no code


def test_the_default_template_is_the_top_level_one():
    """Read through importlib.resources from hf_supernet.model_cards, which the editable install maps to the
    repository's top-level model_cards/ folder."""
    assert default_template() == (REPO / "model_cards" / "subnet_card.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_non_editable_wheel_ships_the_template_and_reads_it(tmp_path):
    """Build the wheel, install it into a folder (no dependencies) and read the template from that install, in a
    Python where the checkout is not importable first."""
    # Built without isolation (no download): setuptools builds wheels by itself from 70.1 on.
    pytest.importorskip("setuptools", minversion="70.1")
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels)]
    subprocess.run([*build, str(REPO)], check=True, capture_output=True)
    wheel = next(wheels.glob("hf_supernet-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        assert "hf_supernet/model_cards/subnet_card.md" in archive.namelist()
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(install, check=True, capture_output=True)
    code = (
        "import hf_supernet, hf_supernet.publishing.cards as cards; "
        "print(hf_supernet.__file__); print(cards.default_template(), end='')"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(target)})
    assert run.returncode == 0, run.stderr[-2000:]
    location, text = run.stdout.split("\n", 1)
    assert Path(location).is_relative_to(target)  # the wheel's copy, not the checkout
    assert text == (REPO / "model_cards" / "subnet_card.md").read_text(encoding="utf-8")


def test_custom_template(published, supernet, tmp_path):
    template = tmp_path / "card.md"
    template.write_text("---\n{{ card_data }}\n---\n{{ model_name }} WER {{ wer_text }} via {{ model_loader }}\n")
    entry = supernet.config.selected_subnets[0]
    processor = AutoProcessor.from_pretrained(published[0] / entry["name"])
    dense = supernet.extract_subnet(SubnetSpec.from_dict(entry["spec"]))
    card = subnet_card(
        entry,
        repo_id="a/b",
        model=dense,
        processor=processor,
        mask_type="layer_width",
        supernet_name="s",
        supernet_class="X",
        metadata=CardMetadata(language="en"),
        template_path=template,
    )
    assert card.text.strip() == "b WER 25.00% via AutoModelForCTC" and card.data.language == "en"


def test_rerun_rewrites_the_same_bytes_and_leaves_no_temporary_folders(published, supernet_dir):
    local_dir, _ = published
    before = {p.relative_to(local_dir): p.read_bytes() for p in local_dir.rglob("*") if p.is_file()}
    publish_subnets(supernet_dir, "someone/digits", push=False, local_dir=local_dir, **CARD_METADATA)
    after = {p.relative_to(local_dir): p.read_bytes() for p in local_dir.rglob("*") if p.is_file()}
    assert after == before  # deterministic output: a re-upload changes nothing on the Hub
    assert sorted(p.name for p in local_dir.iterdir()) == sorted({p.parts[0] for p in before})


def test_interrupted_write_keeps_the_previous_folder(supernet_dir, tmp_path, monkeypatch):
    publish_subnets(supernet_dir, "me/x", "params_50pct", push=False, local_dir=tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "params_50pct").iterdir()}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("hf_supernet.publishing.publish.shutil.copyfile", crash)  # the last file written
    with pytest.raises(KeyboardInterrupt):
        publish_subnets(supernet_dir, "me/x", "params_50pct", push=False, local_dir=tmp_path, license="mit")
    assert {p.name: p.read_bytes() for p in (tmp_path / "params_50pct").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["params_50pct"]


def test_which_subnets(supernet):
    selected, full = supernet.config.selected_subnets, supernet.subnet_costs()
    assert select_entries(selected, None, full) == selected
    assert select_entries(selected, "params_50pct", full) == [selected[0]]
    # A budget picks what from_pretrained(subnet_budget=...) returns: the best-measured entry that fits.
    assert select_entries(selected, [1.0, "params_50pct", selected[1]["name"]], full) == [selected[1], selected[0]]
    with pytest.raises(ValueError, match="No selected subnet is named 'nope'.*params_50pct"):
        select_entries(selected, ["nope"], full)
    with pytest.raises(ValueError, match="No selected subnet fits the budget 0.01"):
        select_entries(selected, 0.01, full)
    with pytest.raises(ValueError, match="scripts/search.py"):
        select_entries([], None, full)


def test_supernet_without_selected_subnets_or_processor(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="processor"):
        publish_subnets(tmp_path, "me/x", push=False, local_dir=tmp_path / "out")
    with pytest.raises(ValueError, match="local_dir"):
        publish_subnets(tmp_path, "me/x", push=False)


def test_repo_ids():
    assert repo_id_for("me/digits", "params_50pct") == "me/digits-params_50pct"
    assert repo_id_for("me/digits", "flops_2e+08") == "me/digits-flops_2e-08"
    assert repo_id_for("digits", "params_50pct", namespace="me") == "me/digits-params_50pct"
    assert repo_id_for("digits", "params_50pct") == "digits-params_50pct"
    with pytest.raises(ValueError, match="repo id"):
        repo_id_for("a/b/c", "x")
    with pytest.raises(ValueError, match="96"):
        repo_id_for("me/" + "d" * 95, "params_50pct")


def test_cli_writes_the_folders_without_pushing(supernet_dir, tmp_path, monkeypatch, capsys):
    script = str(REPO / "scripts" / "publish.py")
    argv = [
        script,
        str(supernet_dir),
        "me/digits",
        "--subnets",
        "params_50pct",
        "--no_push",
        "--local_dir",
        str(tmp_path),
        "--language",
        "en",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(script, run_name="__main__")
    assert exit_info.value.code == 0
    assert {p.name for p in (tmp_path / "params_50pct").iterdir()} == SUBNET_FILES
    assert "me/digits-params_50pct" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ the Hub (mocked)


def http_error(status, headers=None):
    request = httpx.Request("POST", "https://huggingface.co/api/repos/create")
    return HfHubHTTPError(f"{status} error", response=httpx.Response(status, request=request, headers=headers))


class FakeHub:
    """HfApi's whoami / create_repo / upload_folder, recording calls; ``failures[repo_id]`` lists exceptions the
    next uploads to that repo raise (one per call)."""

    def __init__(self):
        self.repos, self.create_calls, self.upload_calls, self.failures = {}, [], [], {}

    def whoami(self, api, token=None, **kwargs):
        return {"name": "me"}

    def create_repo(self, api, repo_id, *, private=None, exist_ok=False, token=None, **kwargs):
        self.create_calls.append({"repo_id": repo_id, "private": private, "exist_ok": exist_ok})
        if repo_id in self.repos and not exist_ok:
            raise http_error(409)
        self.repos.setdefault(repo_id, {})
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, api, *, repo_id, folder_path, **kwargs):
        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        self.upload_calls.append({"repo_id": repo_id, "files": files, **kwargs})
        pending = self.failures.get(repo_id)
        if pending:
            raise pending.pop(0)
        self.repos[repo_id] = files
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()


@pytest.fixture
def fake_hub(monkeypatch):
    fake = FakeHub()
    for name in ("whoami", "create_repo", "upload_folder"):
        method = getattr(fake, name)
        monkeypatch.setattr(HfApi, name, lambda api, *args, _m=method, **kwargs: _m(api, *args, **kwargs))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the autouse no_network fixture still guards sockets
    sleeps = []
    monkeypatch.setattr(hub, "_sleep", sleeps.append)
    fake.sleeps = sleeps
    return fake


def test_push_creates_each_repo_and_uploads_its_complete_folder(supernet_dir, fake_hub):
    result = publish_subnets(supernet_dir, "digits", push=True, private=True, token="hf_test")
    names = [e["name"] for e in json.loads((supernet_dir / "config.json").read_text())["selected_subnets"]]
    repo_ids = [p.repo_id for p in result]
    assert repo_ids == [repo_id_for("me/digits", n) for n in names]  # namespace from whoami
    assert fake_hub.create_calls == [{"repo_id": r, "private": True, "exist_ok": True} for r in repo_ids]
    for repo_id, call in zip(repo_ids, fake_hub.upload_calls):
        assert call["repo_id"] == repo_id and set(call["files"]) == SUBNET_FILES
        assert f'from_pretrained("{repo_id}")' in call["files"]["README.md"].decode()
    assert all(p.commit_url and p.folder is None for p in result)  # uploaded from a temporary folder


def test_transient_failures_are_retried_with_backoff(supernet_dir, fake_hub):
    repo = repo_id_for("me/digits", "params_50pct")
    fake_hub.failures[repo] = [http_error(503), httpx.ReadTimeout("slow"), http_error(429, {"Retry-After": "7"})]
    [result] = publish_subnets(supernet_dir, "me/digits", "params_50pct", token="hf_test")
    assert result.commit_url and set(fake_hub.repos[repo]) == SUBNET_FILES
    assert len(fake_hub.upload_calls) == 4 and fake_hub.sleeps == [2.0, 4.0, 7.0]


def test_partial_failure_is_reported_and_a_rerun_completes_it(supernet_dir, fake_hub, tmp_path):
    names = [e["name"] for e in json.loads((supernet_dir / "config.json").read_text())["selected_subnets"]]
    first, second = (repo_id_for("me/digits", n) for n in names)
    fake_hub.failures[second] = [http_error(500)] * hub.RETRY_ATTEMPTS  # still failing after every retry
    with pytest.raises(PublishError) as info:
        publish_subnets(supernet_dir, "me/digits", token="hf_test", local_dir=tmp_path)
    assert [p.repo_id for p in info.value.published] == [first] and list(info.value.failed) == [names[1]]
    assert second in str(info.value) and "Run the same command again" in str(info.value)
    assert fake_hub.repos[second] == {}  # created, nothing uploaded
    uploaded_first = fake_hub.repos[first]

    result = publish_subnets(supernet_dir, "me/digits", token="hf_test", local_dir=tmp_path)
    assert [p.repo_id for p in result] == [first, second] and set(fake_hub.repos[second]) == SUBNET_FILES
    # exist_ok on every create; the first repo gets byte-identical files, which upload_folder skips on the Hub.
    assert [c["repo_id"] for c in fake_hub.create_calls] == [first, second, first, second]
    assert all(c["exist_ok"] for c in fake_hub.create_calls)
    assert fake_hub.repos[first] == uploaded_first


def test_permanent_errors_are_not_retried(supernet_dir, fake_hub):
    repo = repo_id_for("me/digits", "params_50pct")
    fake_hub.failures[repo] = [http_error(403)]
    with pytest.raises(PublishError, match="403") as info:
        publish_subnets(supernet_dir, "me/digits", "params_50pct", token="hf_test")
    assert len(fake_hub.upload_calls) == 1 and fake_hub.sleeps == []
    assert isinstance(info.value.failed["params_50pct"], HfHubHTTPError)


def test_offline_mode_gives_a_clear_error_before_writing_anything(supernet_dir, tmp_path):
    assert constants.HF_HUB_OFFLINE  # set by conftest
    with pytest.raises(HubAccessError, match="HF_HUB_OFFLINE.*--no_push"):
        publish_subnets(supernet_dir, "me/digits", local_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_logged_in_gives_a_clear_error(supernet_dir, fake_hub, monkeypatch):
    monkeypatch.setattr(hub, "get_token", lambda: None)
    with pytest.raises(HubAccessError, match="Not logged in.*hf auth login.*HF_TOKEN"):
        publish_subnets(supernet_dir, "me/digits")
    monkeypatch.setattr(HfApi, "whoami", lambda api, token=None, **kw: (_ for _ in ()).throw(http_error(401)))
    with pytest.raises(HubAccessError, match="rejected the token"):
        publish_subnets(supernet_dir, "me/digits", token="hf_bad")
    monkeypatch.setattr(
        HfApi, "whoami", lambda api, token=None, **kw: (_ for _ in ()).throw(httpx.ConnectError("no route"))
    )
    with pytest.raises(HubAccessError, match="Could not reach the Hub"):
        publish_subnets(supernet_dir, "me/digits", token="hf_test")
    assert fake_hub.create_calls == [] and fake_hub.upload_calls == []


# ------------------------------------------------------------------------------------------------ the supernet itself


def test_supernet_push_to_hub_uploads_weights_config_and_processor_only(
    supernet_dir, supernet, fake_hub, monkeypatch, tmp_path
):
    """push_to_hub as transformers does it; the pushed repo loads back through AutoModelForCTC (no remote code)."""
    commits = []

    def create_commit(api, repo_id, operations, **kwargs):
        files = {op.path_in_repo: Path(op.path_or_fileobj).read_bytes() for op in operations}
        commits.append((repo_id, files))
        return type("CommitInfo", (), {"commit_url": "u"})()

    uploads = []
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    monkeypatch.setattr(HfApi, "upload_file", lambda api, **kwargs: uploads.append(kwargs))
    monkeypatch.setattr(
        ModelCard, "load", classmethod(lambda cls, *a, **k: (_ for _ in ()).throw(EntryNotFoundError("no README")))
    )

    repo_id = push_supernet(supernet_dir, "digits-supernet", token="hf_test")
    assert repo_id == "me/digits-supernet"
    assert [c[0] for c in commits] == [repo_id, repo_id]
    (_, model_files), (_, processor_files) = commits
    assert set(model_files) == {"config.json", "model.safetensors", "hf_supernet_checksums.json", "README.md"}
    assert set(processor_files) == {"processor_config.json", "tokenizer.model", "tokenizer_config.json", "README.md"}
    assert uploads[0]["path_in_repo"] == "pareto.png" and uploads[0]["repo_id"] == repo_id

    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    for name, data in {**model_files, **processor_files}.items():
        (hub_dir / name).write_bytes(data)
    config = json.loads(model_files["config.json"])
    assert config["model_type"] == "supernet_conformer" and "auto_map" not in config
    assert config["selected_subnets"] == supernet.config.selected_subnets
    loaded = AutoModelForCTC.from_pretrained(hub_dir)
    assert type(loaded) is SupernetConformerForCTC
    for key, value in supernet.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=0, rtol=0)
    AutoProcessor.from_pretrained(hub_dir)
    # The pushed selected_subnets answer budgets: the best-measured entry that fits.
    chosen = SupernetConformerForCTC.from_pretrained(hub_dir, subnet_budget=0.5)
    best = min(supernet.config.selected_subnets, key=lambda e: e["metrics"]["wer"])
    assert best["costs"]["params"] <= 0.5 * supernet.num_parameters()
    assert chosen.config.subnet_spec == best["spec"]
