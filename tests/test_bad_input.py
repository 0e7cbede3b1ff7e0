"""Hostile and careless use: nothing the user had is lost, no result is silently wrong, and every error names what is
wrong (the file, field or utterance) instead of surfacing a raw error from a dependency.

The kill-during-write tests run the write in a subprocess that SIGKILLs itself between two steps of the atomic write
(``hf_supernet.atomic.test_hook``) and check that the previous state is intact and that the next read or write
cleans up what the killed process left."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from hf_supernet import SupernetConformerForCTC
from hf_supernet.data import build_processor, train_tokenizer

from .conftest import flip_a_weight_bit, padded_batch, tiny_conformer_config
from .test_publishing import DIGITS, make_entry, supernet_dir  # noqa: F401  (supernet_dir: a fixture)

REPO = Path(__file__).resolve().parents[1]


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"{name}_script_under_test", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_manifest(folder: Path, split: str, n: int, seed: int = 0) -> Path:
    """A manifest folder with ``n`` short noise recordings labelled with digit words."""
    rng = np.random.default_rng(seed)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    with open(folder / f"{split}.jsonl", "w") as f:
        for i in range(n):
            name = f"audio/{split}_{i}.flac"
            soundfile.write(folder / name, (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
            f.write(json.dumps({"id": f"{split}_{i}", "file": name, "text": DIGITS[i % 10]}) + "\n")
    return folder


def run_killed(code: str, step: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that SIGKILLs itself at the atomic write's ``step``."""
    prelude = textwrap.dedent(
        f"""
        import os, signal
        import hf_supernet.atomic as atomic
        def kill(name):
            if name == {step!r}:
                os.kill(os.getpid(), signal.SIGKILL)
        atomic.test_hook = kill
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    return result


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def searched_dir(supernet_dir, tmp_path_factory):
    """test_publishing's tiny supernet folder (with processor), holding two earlier selected entries and a pareto
    plot, plus a dev manifest of six utterances to search on."""
    root = tmp_path_factory.mktemp("searched")
    shutil.copytree(supernet_dir, root / "supernet")
    model = SupernetConformerForCTC.from_pretrained(root / "supernet")
    space = model.subnet_space
    model.config.selected_subnets = [
        make_entry(model, space.smallest(), {"params": 10}, {"wer": 0.5}),
        dict(make_entry(model, space.largest(), 0.5, {"wer": 0.25}), name="earlier"),
    ]
    model.save_pretrained(root / "supernet")
    (root / "supernet" / "pareto.png").write_bytes(b"the earlier plot")
    write_manifest(root / "data", "dev", 6)
    return root


# ------------------------------------------------------------------------------------------------ 1. search


def search_argv(root: Path, budgets: str, output_dir: Path | None = None) -> list[str]:
    argv = [str(root / "supernet"), "--dataset", str(root / "data"), "--split", "dev", "--budgets", budgets]
    argv += ["--population", "4", "--generations", "1", "--proxy_examples", "4"]
    return argv + (["--output_dir", str(output_dir)] if output_dir else [])


def test_search_with_nothing_fitting_writes_nothing_and_fails(searched_dir, capsys):
    before = files_of(searched_dir / "supernet")
    assert load_script("search").main(search_argv(searched_dir, '{"params": 10}')) == 1
    assert files_of(searched_dir / "supernet") == before  # config.json and pareto.png untouched
    err = capsys.readouterr().err
    assert "No subnet fits params_10" in err and "kept unchanged" in err and "nothing was written" in err


def test_search_merges_into_the_earlier_selection(searched_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # a file the search did not write survives its atomic save
    assert load_script("search").main(search_argv(searched_dir, '[{"params": 10}, 0.9]', out)) == 0
    before = json.loads((searched_dir / "supernet" / "config.json").read_text())["selected_subnets"]
    after = json.loads((out / "config.json").read_text())["selected_subnets"]
    assert [e["name"] for e in after] == ["params_10", "earlier", "params_90pct"]
    assert after[:2] == before  # the unserved budget's entry and the other entry are kept as they were
    assert after[2]["measured_on"] == {"dataset": str(searched_dir / "data"), "split": "dev", "num_utterances": 6}
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "pareto.png").read_bytes() != b"the earlier plot" and (out / "model.safetensors").is_file()
    assert hidden_leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------ 3. save_sparse, and
# kill-during-write for every atomic write

SPARSE_MODEL_CODE = """
import sys, torch
sys.path.insert(0, {repo!r})
from tests.conftest import tiny_conformer_config
from hf_supernet import SupernetConformerForCTC, save_sparse
torch.manual_seed({seed})
save_sparse(SupernetConformerForCTC(tiny_conformer_config()).eval(), {folder!r})
"""


def tiny(seed):
    torch.manual_seed(seed)
    return SupernetConformerForCTC(tiny_conformer_config()).eval()


@pytest.mark.parametrize("step", ["written", "moved_aside"])
def test_save_sparse_killed_mid_write_keeps_the_previous_checkpoint_loadable(tmp_path, step):
    from hf_supernet import load_sparse, save_sparse

    folder = tmp_path / "sparse"
    model_a = tiny(0)
    save_sparse(model_a, folder)
    (folder / "processor_config.json").write_text("{}")  # the user's file next to it is never deleted
    before = files_of(folder)
    run_killed(SPARSE_MODEL_CODE.format(repo=str(REPO), seed=1, folder=str(folder)), step, tmp_path)
    assert hidden_leftovers(tmp_path)  # the killed process could not clean up ...
    if step == "moved_aside":
        assert not folder.exists()  # ... and was killed between the two renames
    features, mask = padded_batch([20])
    loaded = load_sparse(folder)  # the next read restores the previous checkpoint and cleans up
    assert hidden_leftovers(tmp_path) == []
    assert files_of(folder) == before
    torch.testing.assert_close(loaded(features, mask).logits, model_a(features, mask).logits, rtol=0, atol=0)
    model_b = tiny(1)
    save_sparse(model_b, folder)  # a complete save replaces weights and config together, keeps the user's file
    assert (folder / "processor_config.json").read_text() == "{}"
    torch.testing.assert_close(load_sparse(folder)(features, mask).logits, model_b(features, mask).logits)


def test_a_killed_folder_write_is_repaired_by_the_next_write(tmp_path):
    from hf_supernet.atomic import atomic_directory

    target = tmp_path / "folder"
    target.mkdir()
    (target / "a.txt").write_text("old")
    code = f"""
    from pathlib import Path
    with atomic.atomic_directory(Path({str(target)!r})) as tmp:
        (tmp / "a.txt").write_text("new")
    """
    run_killed(code, "moved_aside", tmp_path)
    assert not target.exists() and len(hidden_leftovers(tmp_path)) == 2  # .folder.tmp-* and .folder.old-*
    with atomic_directory(target, carry_over=True) as tmp:
        (tmp / "b.txt").write_text("b")
    assert files_of(target) == {"a.txt": b"old", "b.txt": b"b"} and hidden_leftovers(tmp_path) == []


def test_a_killed_file_write_keeps_the_file_and_the_next_write_cleans_up(tmp_path):
    from hf_supernet.atomic import atomic_file

    target = tmp_path / "table.json"
    target.write_text("old")
    code = f"""
    with atomic.atomic_file({str(target)!r}) as tmp:
        tmp.write_text("new")
    """
    run_killed(code, "written", tmp_path)
    assert target.read_text() == "old" and len(hidden_leftovers(tmp_path)) == 1
    with atomic_file(target) as tmp:
        tmp.write_text("newer")
    assert target.read_text() == "newer" and hidden_leftovers(tmp_path) == []


def test_a_live_writers_temporaries_are_left_alone(tmp_path):
    from hf_supernet.atomic import recover

    target = tmp_path / "folder"
    live = tmp_path / f".folder.tmp-{os.getppid()}-abc"  # the parent process: alive
    live.mkdir()
    recover(target)
    assert live.is_dir()


# ------------------------------------------------------------------------------------------------ 2. train.py output_dir


@pytest.mark.parametrize("existing", ["model.safetensors", "checkpoint-500"])
def test_train_refuses_an_output_dir_with_a_trained_model(tmp_path, existing):
    train = load_script("train")
    (tmp_path / existing).mkdir() if existing.startswith("checkpoint") else (tmp_path / existing).write_bytes(b"w")
    before = files_of(tmp_path)
    with pytest.raises(ValueError, match=f"already holds a trained model or checkpoints \\({existing}\\).*--overwrite_output_dir"):
        train.main(["--output_dir", str(tmp_path), "--dataset", str(tmp_path / "no-data-needed"), "--max_steps", "1"])
    assert files_of(tmp_path) == before
    train.check_output_dir(str(tmp_path), True, None)  # --overwrite_output_dir
    train.check_output_dir(str(tmp_path), False, str(tmp_path / existing))  # --resume_from_checkpoint
    train.check_output_dir(str(tmp_path / "new"), False, None)
    *_, output_args = train.parse_args(["--output_dir", str(tmp_path), "--overwrite_output_dir"])
    assert output_args.overwrite_output_dir


# ------------------------------------------------------------------------------------------------ 4. stale audio cache


def test_an_audio_file_rewritten_in_place_is_decoded_again(tmp_path):
    from hf_supernet import load_speech_dataset

    folder = write_manifest(tmp_path / "data", "train", 3)
    cache = str(tmp_path / "cache")
    first = load_speech_dataset(folder, "train", cache_dir=cache).with_format("numpy")
    assert load_speech_dataset(folder, "train", cache_dir=cache).cache_files  # file-backed: a cache is in play
    path = folder / "audio" / "train_1.flac"
    louder = np.full(4000, 0.5, dtype=np.float32)
    soundfile.write(path, louder, 16000)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = load_speech_dataset(folder, "train", cache_dir=cache).with_format("numpy")
    assert len(second[1]["audio"]["array"]) == 4000 and second[1]["duration"] == 0.25
    np.testing.assert_allclose(second[1]["audio"]["array"], louder, atol=1e-4)
    np.testing.assert_array_equal(second[0]["audio"]["array"], first[0]["audio"]["array"])


# ------------------------------------------------------------------------------------------------ 5-6. publishing


@pytest.fixture(scope="module")
def measured_supernet(searched_dir, tmp_path_factory):
    """The searched supernet with one entry that records where it was measured (dev split, 6 utterances)."""
    folder = tmp_path_factory.mktemp("measured") / "supernet"
    model = SupernetConformerForCTC.from_pretrained(searched_dir / "supernet")
    entry = dict(model.config.selected_subnets[1], measured_on={"dataset": "fsdd", "split": "dev", "num_utterances": 6})
    model.config.selected_subnets = [entry]
    model.save_pretrained(folder)
    for name in ("processor_config.json", "tokenizer.model", "tokenizer_config.json"):
        (folder / name).write_bytes((searched_dir / "supernet" / name).read_bytes())
    return folder


def test_publishing_never_deletes_files_it_did_not_write(measured_supernet, tmp_path, capsys):
    from hf_supernet import publish_subnets

    publish_subnets(measured_supernet, "me/x", push=False, local_dir=tmp_path)
    (tmp_path / "earlier" / "my_notes.txt").write_text("mine")
    before = files_of(tmp_path)
    with pytest.raises(FileExistsError, match=r"earlier holds files that publishing did not write \(my_notes.txt\)"):
        publish_subnets(measured_supernet, "me/x", push=False, local_dir=tmp_path, license="mit")
    assert files_of(tmp_path) == before and hidden_leftovers(tmp_path) == []
    publish = load_script("publish")
    assert publish.main([str(measured_supernet), "me/x", "--no_push", "--local_dir", str(tmp_path)]) == 2
    assert "--overwrite_local_dir" in capsys.readouterr().err and files_of(tmp_path) == before
    publish_subnets(measured_supernet, "me/x", push=False, local_dir=tmp_path, overwrite_local_dir=True)
    assert not (tmp_path / "earlier" / "my_notes.txt").exists()


def test_cards_state_where_the_search_measured_and_a_wrong_label_is_an_error(measured_supernet, tmp_path, capsys):
    from huggingface_hub import ModelCard

    from hf_supernet import publish_subnets

    with pytest.raises(ValueError, match="eval_split='test' disagrees .* dataset fsdd, split dev, 6 utterances"):
        publish_subnets(measured_supernet, "me/x", push=False, local_dir=tmp_path, eval_split="test")
    assert list(tmp_path.iterdir()) == []  # refused before writing anything
    with pytest.raises(ValueError, match="eval_dataset='librispeech' disagrees"):
        publish_subnets(measured_supernet, "me/x", push=False, local_dir=tmp_path, eval_dataset="librispeech")
    published = publish_subnets(measured_supernet, "me/x", push=False, local_dir=tmp_path)  # labels from the record
    assert published[0].measured_on == "dataset fsdd, split dev, 6 utterances"
    card = ModelCard.load(tmp_path / "earlier" / "README.md")
    assert "on `fsdd`, split `dev` (6 utterances)" in card.text
    assert card.data.eval_results[0].dataset_split == "dev"
    publish = load_script("publish")
    argv = [str(measured_supernet), "me/x", "--no_push", "--local_dir", str(tmp_path), "--eval_split", "dev"]
    assert publish.main(argv) == 0
    assert "dataset fsdd, split dev, 6 utterances" in capsys.readouterr().out
    assert publish.main(argv[:-1] + ["test"]) == 2
    assert "disagrees" in capsys.readouterr().err


@pytest.mark.parametrize("writer", ["search", "publish", "latency"])
def test_every_atomic_writer_killed_between_its_steps_keeps_the_previous_state(searched_dir, tmp_path, writer):
    """search's save of the supernet folder, a published subnet folder and the latency table, each SIGKILLed
    between its two renames (folders) or before its rename (the table): the previous state is intact or restored."""
    from hf_supernet.atomic import recover
    from hf_supernet.publishing.export import load_deployable

    if writer == "search":
        target = tmp_path / "supernet"
        target.mkdir()
        for p in (searched_dir / "supernet").iterdir():
            (target / p.name).write_bytes(p.read_bytes())
        root = tmp_path / "root"
        root.mkdir()
        (root / "data").symlink_to(searched_dir / "data")
        (root / "supernet").symlink_to(target)
        argv = search_argv(root, "[0.9]")
        argv[0] = str(target)
        code = f"""
        import runpy
        runpy.run_path({str(REPO / "scripts" / "search.py")!r}, run_name="search")["main"]({argv!r})
        """
        step = "moved_aside"
    elif writer == "publish":
        target = tmp_path / "published" / "earlier"
        from hf_supernet import publish_subnets

        publish_subnets(searched_dir / "supernet", "me/x", "earlier", push=False, local_dir=target.parent)
        code = f"""
        from hf_supernet import publish_subnets
        publish_subnets({str(searched_dir / "supernet")!r}, "me/x", "earlier", push=False,
                        local_dir={str(target.parent)!r}, license="mit")
        """
        step = "moved_aside"
    else:
        from hf_supernet.latency import LatencyTable

        target = tmp_path / "latency.json"
        table = LatencyTable(target)
        table.entries["part"] = 0.25
        table.save()
        code = f"""
        from hf_supernet.latency import LatencyTable
        table = LatencyTable({str(target)!r})
        table.entries["part"] = 0.5
        table.save()
        """
        step = "written"
    before = files_of(target) if target.is_dir() else target.read_bytes()
    run_killed(code, step, tmp_path)
    assert hidden_leftovers(target.parent)
    if writer == "latency":
        recover(target)  # what its next save does first
    elif writer == "search":
        assert not target.exists()  # killed between the renames: the folder is aside ...
        SupernetConformerForCTC.from_pretrained(target)  # ... and the next load restores it
    else:
        assert not target.exists()  # killed between the renames: the folder is aside ...
        load_deployable(target)  # ... and the next load of the (plain dense) subnet folder restores it
    assert (files_of(target) if target.is_dir() else target.read_bytes()) == before
    assert hidden_leftovers(target.parent) == []


def test_a_damaged_latency_table_is_ignored_and_measured_again(tiny_model, tmp_path, monkeypatch):
    from hf_supernet.latency import LatencyTable

    monkeypatch.setattr(LatencyTable, "measure_part", lambda self, key, make_runner: 1e-3)
    path = tmp_path / "table.json"
    fingerprint = LatencyTable(path).fingerprint
    for damaged in ([1, 2], {"machine": fingerprint, "rtf": [0.1]}, {"machine": fingerprint, "rtf": "fast"}):
        path.write_text(json.dumps(damaged))
        assert len(LatencyTable(path)) == 0
        assert LatencyTable(path).rtf(tiny_model, None) > 0  # measured again, and the table rewritten sound
    path.write_text(json.dumps({"machine": fingerprint, "rtf": {"a": "fast", "b": -1, "c": None, "d": True, "e": 0.1}}))
    assert LatencyTable(path).entries == {"e": 0.1}


# ------------------------------------------------------------------------------------------------ 3'. resuming training


def test_resume_skips_a_partial_checkpoint_and_refuses_what_is_not_one(tmp_path):
    from hf_supernet.training.checkpoints import last_complete_checkpoint

    from .test_trainer import make_trainer

    out = tmp_path / "run"
    make_trainer(out, max_steps=2, save_strategy="steps", save_steps=1).train()
    (out / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2, "log_hi')  # killed mid-save
    (out / "checkpoint-3").mkdir()  # killed right after creating the folder
    assert last_complete_checkpoint(out) == str(out / "checkpoint-1")
    resumed = make_trainer(out, max_steps=2)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 2  # resumed from step 1, not from a broken checkpoint

    with pytest.raises(ValueError, match=r"checkpoint-3: it is a checkpoint whose save was interrupted.*checkpoint-1"):
        make_trainer(out).train(resume_from_checkpoint=str(out / "checkpoint-3"))
    plain = tmp_path / "plain"
    resumed.model.save_pretrained(plain)
    with pytest.raises(ValueError, match="not a training checkpoint .* a saved model is not a checkpoint.*checkpoint-<step>"):
        make_trainer(tmp_path / "other").train(resume_from_checkpoint=str(plain))
    with pytest.raises(ValueError, match="output_dir, not a checkpoint; resume from .*checkpoint-1"):
        make_trainer(tmp_path / "other").train(resume_from_checkpoint=str(out))
    wider = SupernetConformerForCTC(tiny_conformer_config(hidden_size=48, intermediate_size=96))
    with pytest.raises(ValueError, match=r"another model configuration \(.*\[.*48.*\] here"):
        make_trainer(tmp_path / "other", model=wider).train(resume_from_checkpoint=str(out / "checkpoint-1"))
    with pytest.raises(ValueError, match="holds no complete checkpoint"):
        make_trainer(tmp_path / "empty").train(resume_from_checkpoint=True)
    flip_a_weight_bit(out / "checkpoint-1" / "model.safetensors")
    with pytest.raises(ValueError, match="checkpoint-1/model.safetensors is corrupt or truncated"):
        make_trainer(out).train(resume_from_checkpoint=True)


# ------------------------------------------------------------------------------------------------ 4. trusted nothing


def test_a_budget_never_trusts_edited_stored_costs(searched_dir, tmp_path):
    from hf_supernet import publish_subnets

    config = json.loads((searched_dir / "supernet" / "config.json").read_text())
    edited = tmp_path / "edited"
    edited.mkdir()
    for p in (searched_dir / "supernet").iterdir():
        (edited / p.name).write_bytes(p.read_bytes())
    config["selected_subnets"][1]["costs"]["params"] = 10  # the largest subnet now claims to fit any budget
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"entry 'earlier' states costs that its spec does not have: params 10 \(its spec has"):
        SupernetConformerForCTC.from_pretrained(edited, subnet_budget=0.5)
    with pytest.raises(ValueError, match="entry 'earlier' states costs"):
        publish_subnets(edited, "me/x", push=False, local_dir=tmp_path / "out")
    config["selected_subnets"][1]["spec"]["ffn_dims"] = [999]
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="entry 'earlier' is not a valid subnet of this model"):
        SupernetConformerForCTC.from_pretrained(edited, subnet_budget=0.5)
    assert not (tmp_path / "out").exists()


def sparse_checkpoint(folder: Path) -> Path:
    from hf_supernet import OmniSparsitySpec, save_sparse

    torch.manual_seed(0)
    supernet = SupernetConformerForCTC(tiny_conformer_config(mask_type="omni_sparsity"))
    save_sparse(supernet.extract_subnet(OmniSparsitySpec((0.8,) * 4)), folder)
    return folder / "model.block_sparse.safetensors"


def rewrite_sparse(path: Path, change) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(path, framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    change(tensors, metadata)
    save_file(tensors, path, metadata=metadata)


def _first(tensors, suffix):
    return next(k for k in sorted(tensors) if k.endswith(suffix))


def _set(tensors, suffix, fn):
    key = _first(tensors, suffix)
    tensors[key] = fn(tensors[key].clone())


TAMPERINGS = {
    "column out of range": (lambda t, m: _set(t, ".bsr_col_indices", lambda c: c.fill_(10_000)), "col_indices leave"),
    "repeated column": (lambda t, m: _set(t, ".bsr_col_indices", lambda c: c.fill_(0)), "repeat or are out of order"),
    "row pointers": (lambda t, m: _set(t, ".bsr_crow_indices", lambda c: c.mul_(2)), "running count"),
    "truncated row pointers": (lambda t, m: _set(t, ".bsr_crow_indices", lambda c: c[:-1]), "block rows \\+ 1"),
    "missing part": (lambda t, m: t.pop(_first(t, ".bsr_values")), "lacks"),
    "zero block shape": (lambda t, m: m.update(block_shape="[0, 1]"), "not two positive ints"),
    "garbled metadata": (lambda t, m: m.update(sparse_shapes="{nope"), "metadata .* cannot be read"),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_tampered_sparse_indices_are_a_clear_error_naming_the_file(tmp_path, tampering):
    from hf_supernet import load_sparse

    change, message = TAMPERINGS[tampering]
    path = sparse_checkpoint(tmp_path)
    rewrite_sparse(path, change)
    with pytest.raises(ValueError, match=f"{path} is damaged: (its tensors do not match the SHA-256|.*{message})"):
        load_sparse(tmp_path)
    # Without the recorded digest (a file saved before digests were recorded, or a tamperer who dropped it) the
    # structure checks still refuse it.
    rewrite_sparse(path, lambda tensors, metadata: metadata.pop("weights_sha256"))
    with pytest.raises(ValueError, match=f"{path} is damaged.*{message}"):
        load_sparse(tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "header", "empty"])
def test_a_damaged_sparse_file_is_a_clear_error_naming_the_file(tmp_path, damage):
    from hf_supernet import load_sparse

    path = sparse_checkpoint(tmp_path)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "header": b"\xff" * 16 + data[16:], "empty": b""}[damage])
    with pytest.raises(ValueError, match=f"{path} is damaged: not a readable safetensors file"):
        load_sparse(tmp_path)


def test_sparse_weights_of_another_config_name_both_files(tmp_path):
    from hf_supernet import load_sparse

    sparse_checkpoint(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "vocab_size": config["vocab_size"] + 1}))
    with pytest.raises(ValueError, match="do not fit the model of .*config.json"):
        load_sparse(tmp_path)


def test_a_broken_card_template_names_the_file(measured_supernet, tmp_path):
    from hf_supernet import publish_subnets

    for text, message in (("{{ broken ", "line 1"), ("{{ 1 / 0 }}", "ZeroDivisionError"), ("{{ x.y.z }}", "undefined")):
        template = tmp_path / "card.md"
        template.write_text(text)
        with pytest.raises(ValueError, match=f"template {template}.*{message}"):
            publish_subnets(measured_supernet, "me/x", push=False, local_dir=tmp_path / "out", template_path=template)
    with pytest.raises(ValueError, match=f"Cannot read the model card template {tmp_path / 'missing.md'}"):
        publish_subnets(measured_supernet, "me/x", push=False, local_dir=tmp_path / "out", template_path=tmp_path / "missing.md")


def test_too_short_audio_names_the_utterance_id(tmp_path):
    from datasets import Dataset

    from hf_supernet.data import prepare_dataset

    tokenizer = train_tokenizer(DIGITS * 3, model_type="char")
    processor = build_processor(tokenizer, feature_size=16)
    rows = [{"array": np.zeros(16000, dtype=np.float32) + 0.01, "sampling_rate": 16000}] * 3
    rows.append({"array": np.full(10, 0.01, dtype=np.float32), "sampling_rate": 16000})
    data = Dataset.from_dict({"id": ["a", "b", "c", "tiny_one"], "audio": rows, "text": ["one"] * 4})
    with pytest.raises(ValueError, match=r"Utterance id='tiny_one' \(row 3\) has 10 samples"):
        prepare_dataset(data, processor, batch_size=2)
    with pytest.raises(ValueError, match=r"Utterance in row 3 has 10 samples"):
        prepare_dataset(data.remove_columns("id"), processor, batch_size=2)


def test_decoding_an_out_of_range_id_is_a_clear_error():
    tokenizer = train_tokenizer(DIGITS * 3, model_type="char")
    assert tokenizer.decode([1, 2]) == tokenizer.decode([1, 2])  # in range: fine
    with pytest.raises(ValueError, match=f"Token ids \\[{len(tokenizer) + 3}\\] are out of range: this tokenizer has {len(tokenizer)} ids"):
        tokenizer.decode([1, len(tokenizer) + 3])
    with pytest.raises(ValueError, match="out of range"):
        tokenizer.batch_decode([[1], [len(tokenizer)]])


# ------------------------------------------------------------------------------------------------ 5. config fields


@pytest.mark.parametrize(
    "field, value, error, message",
    [
        ("num_attention_heads", 0, ValueError, "num_attention_heads must be an int >= 1, got 0"),
        ("hidden_size", -8, ValueError, "hidden_size must be an int >= 1, got -8"),
        ("intermediate_size", -1, ValueError, "intermediate_size must be an int >= 0"),
        ("vocab_size", "32", TypeError, "vocab_size must be an int >= 1, got '32'"),
        ("num_mel_bins", 16.0, TypeError, "num_mel_bins must be an int"),
        ("conv_kernel_size", -3, ValueError, "conv_kernel_size must be an int >= 1"),
        ("subsampling_conv_channels", 0, ValueError, "subsampling_conv_channels"),
        ("hidden_act", "gelux", ValueError, r"hidden_act must be one of \[.*'silu'.*\], got 'gelux'"),
        ("ctc_loss_reduction", "none", ValueError, r"ctc_loss_reduction must be one of \['mean', 'sum'\]"),
        ("hidden_dropout", 1.5, ValueError, "hidden_dropout must be a number >= 0 and <= 1, got 1.5"),
        ("attention_dropout", -0.1, ValueError, "attention_dropout must be a number >= 0 and <= 1"),
        ("final_dropout", float("nan"), ValueError, "final_dropout"),
        ("layer_norm_eps", 0, ValueError, "layer_norm_eps must be a number > 0"),
        ("rope_theta", -1.0, ValueError, "rope_theta must be a number > 0"),
        ("ctc_zero_infinity", "yes", TypeError, "ctc_zero_infinity must be True or False"),
        ("pad_token_id", 12, ValueError, "pad_token_id=12 is the CTC blank and must be an id below vocab_size=12"),
        ("pad_token_id", -1, ValueError, "pad_token_id must be an int >= 0"),
        ("layer_ffn_dims", [8, [8, 8], "a", 8], TypeError, "layer_ffn_dims must be a list of ints or lists of ints"),
        ("ffn_width_choices", "half", TypeError, "ffn_width_choices must be a list of numbers"),
        ("selected_subnets", {"name": "x"}, TypeError, "selected_subnets must be a list of dicts"),
        ("omni_sparsity_prune_interval", 1.5, TypeError, "omni_sparsity_prune_interval must be an int"),
        ("mask_type", 3, TypeError, "mask_type must be a string"),
    ],
)
def test_config_fields_are_checked_at_construction(field, value, error, message):
    with pytest.raises(error, match=message):
        tiny_conformer_config(**{field: value})


@pytest.mark.parametrize("family", ["wav2vec2", "hubert"])
@pytest.mark.parametrize(
    "field, value, error, message",
    [
        ("num_physical_layers", "8", TypeError, r"num_physical_layers must be an int \(or None\), got '8'"),
        ("unfolding_depths", [8, "x"], TypeError, "unfolding_depths must be a list of ints"),
        ("unfolding_patterns", "stack", TypeError, "unfolding_patterns must be a list of strings"),
        ("num_hidden_layers", 0, ValueError, "num_hidden_layers must be an int >= 1"),
    ],
)
def test_foldable_config_fields_are_checked_at_construction(family, field, value, error, message):
    from hf_supernet import FoldableHubertConfig, FoldableWav2Vec2Config

    config_class = {"wav2vec2": FoldableWav2Vec2Config, "hubert": FoldableHubertConfig}[family]
    with pytest.raises(error, match=message):
        config_class(**{field: value})


def test_valid_configs_still_round_trip(tmp_path):
    from hf_supernet import SupernetConformerConfig

    config = tiny_conformer_config(hidden_act="gelu", ctc_loss_reduction="sum", hidden_dropout=0.0, layer_ffn_dims=[8, [8, 4], 0, 8])
    config.save_pretrained(tmp_path)
    assert SupernetConformerConfig.from_pretrained(tmp_path).to_dict() == config.to_dict()


# ------------------------------------------------------------------------------------------------ 6. integrity


def test_a_flipped_bit_in_saved_weights_is_an_error(tmp_path):
    from hf_supernet.integrity import CHECKSUM_FILE

    model = tiny(0)
    model.save_pretrained(tmp_path)
    recorded = json.loads((tmp_path / CHECKSUM_FILE).read_text())["files"]
    assert set(recorded) == {"model.safetensors"}
    SupernetConformerForCTC.from_pretrained(tmp_path)  # intact: loads
    flip_a_weight_bit(tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=f"{tmp_path / 'model.safetensors'} is corrupt or truncated: it does not match the SHA-256 recorded"):
        SupernetConformerForCTC.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        SupernetConformerForCTC.from_pretrained(tmp_path, subnet_budget=0.5)
    (tmp_path / CHECKSUM_FILE).unlink()  # without the record the folder loads unverified, as other tools' do
    SupernetConformerForCTC.from_pretrained(tmp_path)


def test_a_flipped_bit_in_a_published_subnet_is_an_error(measured_supernet, tmp_path):
    from transformers import AutoModelForCTC

    from hf_supernet import publish_subnets

    publish_subnets(measured_supernet, "me/x", push=False, local_dir=tmp_path)
    AutoModelForCTC.from_pretrained(tmp_path / "earlier")
    flip_a_weight_bit(tmp_path / "earlier" / "model.safetensors")
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        AutoModelForCTC.from_pretrained(tmp_path / "earlier")


def test_a_flipped_bit_in_a_sparse_checkpoint_is_an_error(tmp_path):
    from hf_supernet import load_sparse

    path = sparse_checkpoint(tmp_path)
    load_sparse(tmp_path)
    flip_a_weight_bit(path)
    with pytest.raises(ValueError, match=f"{path} is damaged: its tensors do not match the SHA-256"):
        load_sparse(tmp_path)


def test_a_save_killed_before_its_checksum_leaves_no_stale_record(tmp_path, monkeypatch):
    import hf_supernet.models.conformer.checksums as checksums  # what every hf_supernet model's save calls
    from hf_supernet.integrity import CHECKSUM_FILE

    tiny(0).save_pretrained(tmp_path)

    def killed(directory):
        raise KeyboardInterrupt

    monkeypatch.setattr(checksums, "write_checksums", killed)
    with pytest.raises(KeyboardInterrupt):
        tiny(1).save_pretrained(tmp_path)  # new weights written, then killed before their checksum
    assert not (tmp_path / CHECKSUM_FILE).exists()
    torch.testing.assert_close(SupernetConformerForCTC.from_pretrained(tmp_path).state_dict(), tiny(1).state_dict())


def test_a_folder_write_never_replaces_a_file(tmp_path):
    from hf_supernet import save_sparse

    (tmp_path / "model").write_text("my file")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        save_sparse(tiny(0), tmp_path / "model")
    assert (tmp_path / "model").read_text() == "my file" and hidden_leftovers(tmp_path) == []


@pytest.mark.slow
def test_train_final_save_is_one_folder_write_that_keeps_other_files(tmp_path):
    """train.py's final model + processor save: a run SIGKILLed between the folder swap's renames leaves the previous
    model (restored by the next read), and a finished run keeps the checkpoints and the user's files beside it."""
    from hf_supernet import SupernetConformerForCTC
    from hf_supernet.atomic import recover

    data = write_manifest(tmp_path / "data", "train", 8)
    out = tmp_path / "out"
    argv = ["--output_dir", str(out), "--dataset", str(data), "--eval_split", "", "--max_steps", "1",
            "--per_device_train_batch_size", "4", "--hidden_size", "16", "--num_hidden_layers", "2",
            "--intermediate_size", "32", "--num_attention_heads", "2", "--subsampling_conv_channels", "8",
            "--save_strategy", "steps", "--save_steps", "1", "--report_to", "none", "--use_cpu"]
    load_script("train").main(argv)
    (out / "notes.txt").write_text("mine")
    first = (out / "model.safetensors").read_bytes()
    code = f"""
    import runpy
    runpy.run_path({str(REPO / "scripts" / "train.py")!r}, run_name="train")["main"]({argv + ["--overwrite_output_dir", "--seed", "1"]!r})
    """
    run_killed(code, "moved_aside", tmp_path)
    recover(out)
    assert (out / "model.safetensors").read_bytes() == first and (out / "notes.txt").read_text() == "mine"
    assert (out / "checkpoint-1").is_dir()
    SupernetConformerForCTC.from_pretrained(out)
    assert hidden_leftovers(out.parent) == []


def test_json_lines_append_whole_records_and_skip_a_cut_one(tmp_path, caplog):
    from hf_supernet.atomic import append_json_line, read_json_lines

    path = tmp_path / "results" / "runs.jsonl"
    assert read_json_lines(path) == []
    append_json_line(path, {"arm": "todm", "seed": 0})
    append_json_line(path, {"arm": "todm", "seed": 1})
    assert path.read_text() == '{"arm": "todm", "seed": 0}\n{"arm": "todm", "seed": 1}\n'  # one line each
    path.write_text('{"arm": "todm", "seed": 0}\n')
    with open(path, "a") as f:
        f.write('{"arm": "tw')  # a run killed mid-append
    assert read_json_lines(path) == [{"arm": "todm", "seed": 0}]
    append_json_line(path, {"arm": "twin", "seed": 1})  # the next record starts on its own line
    assert read_json_lines(path) == [{"arm": "todm", "seed": 0}, {"arm": "twin", "seed": 1}]
    assert "line 2: not a whole JSON record" in caplog.text
