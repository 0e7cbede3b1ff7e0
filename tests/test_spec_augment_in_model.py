"""SpecAugment in the model (transformers' `mask_time_prob` / `mask_feature_prob` fields, as wav2vec2 has them):
drawn in training only, applied as given, shared by every subnet of a sandwich step, carried to extracted subnets."""

import pytest
import torch

from hf_supernet import SupernetConformerConfig, SupernetConformerForCTC

from .conftest import tiny_conformer_config
from .test_trainer import make_trainer

AUGMENTED = dict(mask_time_prob=0.3, mask_time_length=4, mask_feature_prob=0.3, mask_feature_length=3)


def batch(seed=0, frames=60):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(3, frames, 16, generator=generator)
    mask = torch.ones(3, frames, dtype=torch.long)
    mask[2, frames // 2:] = 0
    return features, mask


@pytest.fixture(params=["supernet", "extracted"])
def model(request):
    torch.manual_seed(0)
    supernet = SupernetConformerForCTC(tiny_conformer_config(**AUGMENTED))
    if request.param == "supernet":
        return supernet
    return supernet.extract_subnet(supernet.subnet_space.smallest())  # the dense ConformerForCTC


def test_extracted_subnets_keep_the_fields(model):
    assert all(getattr(model.config, name) == value for name, value in AUGMENTED.items())


def test_evaluation_is_not_augmented_and_training_is(model):
    features, mask = batch()
    plain = type(model)(type(model.config)(**{**model.config.to_dict(), "mask_time_prob": 0.0,
                                              "mask_feature_prob": 0.0}))
    plain.load_state_dict(model.state_dict())
    model.eval(), plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(features, mask).logits, plain(features, mask).logits)
    # Training mode with dropout off: only SpecAugment can change the logits.
    for module in (model, plain):
        module.train()
        for sub in module.modules():
            if isinstance(sub, torch.nn.Dropout):
                sub.p = 0.0
    with torch.no_grad():
        assert not torch.allclose(model(features, mask).logits, plain(features, mask).logits)


def test_given_masks_zero_those_frames_and_bins(model):
    features, mask = batch(1)
    time = torch.zeros(3, 60, dtype=torch.bool)
    time[:, 5:9] = True
    bins = torch.zeros(3, 16, dtype=torch.bool)
    bins[:, 2:4] = True
    zeroed = features.clone()
    zeroed[time] = 0.0
    zeroed[:, :, 2:4] = 0.0
    model.eval()
    with torch.no_grad():
        given = model(features, mask, mask_time_indices=time, mask_feature_indices=bins).logits
        torch.testing.assert_close(given, model(zeroed, mask).logits)


def test_drawn_time_masks_stay_on_real_frames():
    torch.manual_seed(0)
    model = SupernetConformerForCTC(tiny_conformer_config(**AUGMENTED))
    features, mask = batch(2)
    masks = model.spec_augment_masks(features, mask)
    assert masks["mask_time_indices"].shape == (3, 60) and masks["mask_feature_indices"].shape == (3, 16)
    assert not masks["mask_time_indices"][2, 30:].any() and masks["mask_time_indices"][2].any()
    off = SupernetConformerForCTC(tiny_conformer_config())
    assert off.spec_augment_masks(features, mask) == {}


def test_every_subnet_of_a_sandwich_step_sees_the_same_masks(tmp_path):
    torch.manual_seed(0)
    model = SupernetConformerForCTC(tiny_conformer_config(mask_time_prob=0.5, mask_time_length=2))
    trainer = make_trainer(tmp_path, max_steps=1, model=model, sandwich_batch_split="full", distillation="kl",
                           remove_unused_columns=False)
    seen = []
    forward = model.forward

    def recording_forward(*args, **kwargs):
        seen.append(kwargs.get("mask_time_indices"))
        return forward(*args, **kwargs)

    model.forward = recording_forward
    trainer.train()
    assert len(seen) >= 3 and seen[0] is not None and seen[0].any()
    assert all(torch.equal(masks, seen[0]) for masks in seen)


def test_mask_probabilities_are_checked():
    with pytest.raises(ValueError, match="mask_time_prob"):
        SupernetConformerConfig(mask_time_prob=1.5)
