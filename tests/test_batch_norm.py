"""BatchNorm recalibration (Once-for-All): a subnet's running statistics become those of the given batches."""

import copy

import pytest
import torch
from torch import nn

from hf_supernet import (
    LayerWidthSpec,
    SubnetSpec,
    SupernetConformerForCTC,
    batch_norm_recalibrated,
    recalibrate_batch_norm,
)
from hf_supernet.batch_norm import batch_norm_layers

from .conftest import padded_batch
from .test_parakeet import tiny_parakeet


def batches(count=3, lengths=(40, 31, 12)):
    out = []
    for seed in range(count):
        features, mask = padded_batch(list(lengths), seed=10 + seed)
        out.append({"input_features": features, "attention_mask": mask, "labels": torch.ones(len(lengths), 2).long()})
    return out


def expected_statistics(model, data):
    """Each BatchNorm layer's inputs, captured on a copy that normalises with batch statistics (as recalibration
    runs it, no dropout), reduced by hand: the mean over batches of the per-batch channel means and unbiased
    variances."""
    probe = copy.deepcopy(model).eval()
    seen = {}
    for name, module in probe.named_modules():
        if isinstance(module, nn.BatchNorm1d):
            module.train()
            module.register_forward_pre_hook(lambda m, args, name=name: seen.setdefault(name, []).append(args[0]))
    with torch.no_grad():
        for batch in data:
            probe(input_features=batch["input_features"], attention_mask=batch["attention_mask"])
    return {
        name: (
            torch.stack([x.mean((0, 2)) for x in inputs]).mean(0),
            torch.stack([x.var((0, 2), unbiased=True) for x in inputs]).mean(0),
        )
        for name, inputs in seen.items()
    }


@pytest.mark.parametrize("training", [False, True])
def test_running_statistics_become_those_of_the_given_batches(training):
    model = tiny_parakeet(2).train(training)
    data = batches(3)
    expected = expected_statistics(model, data[:2])
    modes = {name: m.training for name, m in model.named_modules()}
    assert recalibrate_batch_norm(model, data, num_batches=2) is model
    layers = dict(model.named_modules())
    assert len(expected) == 3  # one per block
    for name, (mean, var) in expected.items():
        layer = layers[name]
        torch.testing.assert_close(layer.running_mean, mean, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(layer.running_var, var, atol=1e-5, rtol=1e-5)
        assert int(layer.num_batches_tracked) == 2 and layer.momentum == 0.1
    assert {name: m.training for name, m in model.named_modules()} == modes


def test_a_dataloader_of_collated_batches_and_all_batches_by_default():
    model = tiny_parakeet(3)
    data = batches(2)
    loader = torch.utils.data.DataLoader(data, batch_size=None)
    expected = expected_statistics(model, data)
    recalibrate_batch_norm(model, loader)
    for name, (mean, _) in expected.items():
        torch.testing.assert_close(dict(model.named_modules())[name].running_mean, mean, atol=1e-5, rtol=1e-5)


def test_bad_calls_fail_clearly_and_a_model_without_batch_norm_is_left_alone():
    model = tiny_parakeet(4)
    before = [layer.running_mean.clone() for layer in batch_norm_layers(model)]
    with pytest.raises(ValueError, match="got no batches"):
        recalibrate_batch_norm(model, [])
    assert all(torch.equal(a, b.running_mean) for a, b in zip(before, batch_norm_layers(model)))
    with pytest.raises(ValueError, match="num_batches must be a positive int"):
        recalibrate_batch_norm(model, batches(1), num_batches=0)
    with pytest.raises(TypeError, match="keyword arguments"):
        recalibrate_batch_norm(model, [("not", "a dict")])
    plain = nn.Linear(3, 3)
    assert recalibrate_batch_norm(plain, []) is plain


def test_supernet_recalibrated_as_a_subnet_equals_the_extracted_subnet_recalibrated():
    """The extraction hook and the in-place context compute the same statistics: the stock subnet recalibrated at
    extraction gives the masked supernet's logits inside ``batch_norm_recalibrated`` (<= 1e-4), and the supernet's
    own statistics are back afterwards (a dropped layer's were never touched)."""
    supernet = SupernetConformerForCTC.from_parakeet(tiny_parakeet(5), layer_drop_choices=[0, 1])
    spec = LayerWidthSpec((16, 16))
    data = batches(3)
    saved = [layer.running_mean.clone() for layer in batch_norm_layers(supernet)]
    features, mask = padded_batch([37, 22], seed=1)
    with batch_norm_recalibrated(supernet, data, 2, subnet=spec):
        assert not torch.equal(batch_norm_layers(supernet)[0].running_mean, saved[0])
        with torch.no_grad(), supernet.use_subnet(spec):
            expected = supernet(features, attention_mask=mask).logits
    assert all(torch.equal(a, b.running_mean) for a, b in zip(saved, batch_norm_layers(supernet)))

    stock = supernet.extract_subnet(spec, calibration_data=data, calibration_batches=2)
    with torch.no_grad():
        torch.testing.assert_close(stock(features, attention_mask=mask).logits, expected, atol=1e-4, rtol=0)
    uncalibrated = supernet.extract_subnet(spec)
    with torch.no_grad():
        assert (uncalibrated(features, attention_mask=mask).logits - expected).abs().max() > 1e-3

    recalibrate_batch_norm(supernet, data, subnet=spec)
    layers = batch_norm_layers(supernet)
    assert torch.equal(layers[2].running_mean, saved[2])  # layer 3 is dropped by the subnet: left as it was
    assert not torch.equal(layers[0].running_mean, saved[0])


def test_search_scores_each_subnet_with_its_own_batch_norm_statistics():
    """search_subnets recalibrates every candidate when the model has BatchNorm (on by default) and records the data;
    a selected subnet extracted with the same calibration data reproduces the recorded loss, and the supernet's own
    statistics are unchanged by the search."""
    import numpy as np

    from hf_supernet.data import DataCollatorCTCWithPadding
    from hf_supernet.search import collate_batches, evaluate_subnet, search_subnets

    from .test_parakeet import tiny_parakeet_processor

    supernet = SupernetConformerForCTC.from_parakeet(tiny_parakeet(6), layer_drop_choices=[0, 1])
    processor = tiny_parakeet_processor()
    rng = np.random.default_rng(0)
    rows = [
        {"input_features": rng.normal(size=(int(n), 16)).astype(np.float32), "labels": [2, 3, 4][: 1 + i % 3]}
        for i, n in enumerate(rng.integers(20, 60, size=10))
    ]
    collator = DataCollatorCTCWithPadding(processor)
    saved = [layer.running_var.clone() for layer in batch_norm_layers(supernet)]
    options = dict(data_collator=collator, budgets=[0.6], population=4, generations=1, proxy_examples=6, batch_size=3,
                   progress=False, write_config=False, measure_latency=False, eval_name="noise", eval_split="dev")
    selected, _ = search_subnets(supernet, rows, **options)
    assert all(torch.equal(a, b.running_var) for a, b in zip(saved, batch_norm_layers(supernet)))
    entry = selected[0]
    assert entry["batch_norm_calibration"] == {"dataset": "noise", "split": "dev", "num_utterances": 6, "batch_size": 3}
    spec = SubnetSpec.from_dict(entry["spec"])
    calibration = collate_batches(rows, collator, 3, 6)
    # The recorded loss is the subnet's with statistics re-estimated on that data (and the stock subnet extracted
    # with it computes the same logits: see the test above).
    with batch_norm_recalibrated(supernet, calibration, subnet=spec):
        recomputed = evaluate_subnet(supernet, spec, collate_batches(rows, collator, 3))
    assert recomputed["loss"] == pytest.approx(entry["metrics"]["loss"], abs=1e-5)

    unrecorded, _ = search_subnets(supernet, rows, calibrate_batch_norm=False, **options)
    assert "batch_norm_calibration" not in unrecorded[0]
    assert unrecorded[0]["metrics"]["loss"] != pytest.approx(entry["metrics"]["loss"], abs=1e-4)
