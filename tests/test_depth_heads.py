"""`ctc_head_per_depth`: each depth a subnet may have reads its logits through its own CTC head."""

import pytest
import torch

from hf_supernet import ConformerForCTC, FoldingSpec, SupernetConformerForCTC

from .conftest import assert_extraction_matches, padded_batch, tiny_conformer_config
from .test_trainer import make_trainer


def test_one_head_per_shallower_depth_and_none_by_default():
    torch.manual_seed(0)
    model = SupernetConformerForCTC(tiny_conformer_config(ctc_head_per_depth=True))
    assert sorted(model.depth_heads) == ["2", "3"]  # depths 2, 3 and 4; the deepest reads lm_head
    assert model.ctc_head(model.subnet_space.largest()) is model.lm_head
    assert model.ctc_head(model.subnet_space.smallest()) is model.depth_heads["2"]
    assert SupernetConformerForCTC(tiny_conformer_config()).depth_heads is None
    # Mask types that keep every layer have a single depth: no extra head.
    ortho = SupernetConformerForCTC(tiny_conformer_config(mask_type="orthosoftmax", ctc_head_per_depth=True))
    assert len(ortho.depth_heads) == 0


def test_a_depth_reads_only_its_own_head():
    torch.manual_seed(0)
    model = SupernetConformerForCTC(tiny_conformer_config(ctc_head_per_depth=True)).eval()
    features, mask = padded_batch([30, 24], seed=1)
    smallest, largest = model.subnet_space.smallest(), model.subnet_space.largest()
    with torch.no_grad():
        before = {s: model(features, attention_mask=mask, subnet=s).logits for s in (smallest, largest)}
        model.depth_heads["2"].bias.add_(1.0)
        after = {s: model(features, attention_mask=mask, subnet=s).logits for s in (smallest, largest)}
    torch.testing.assert_close(after[smallest], before[smallest] + 1.0)
    torch.testing.assert_close(after[largest], before[largest])


@pytest.mark.parametrize("pattern", ["stack", "layer"])
def test_unfolded_paths_extract_with_their_depths_head(pattern):
    torch.manual_seed(0)
    config = tiny_conformer_config(mask_type="folding", num_physical_layers=2, num_hidden_layers=4,
                                   unfolding_patterns=[pattern], ctc_head_per_depth=True)
    model = SupernetConformerForCTC(config).eval()
    assert sorted(model.depth_heads) == ["2", "3"]
    features, mask = padded_batch([30, 17], seed=2)
    for depth in (2, 3, 4):
        spec = FoldingSpec(next(s.path for s in model.subnet_space if len(s.path) == depth))
        dense, _ = assert_extraction_matches(model, spec, features, mask)
        # One head, the depth's own, as the plain dense model's lm_head; nothing of the other depths' heads.
        assert type(dense) is ConformerForCTC and not any("depth_heads" in k for k in dense.state_dict())
        assert "ctc_head_per_depth" not in dense.config.to_dict() and dense.config.num_hidden_layers == depth
        torch.testing.assert_close(dense.lm_head.weight, model.ctc_head(spec).weight, rtol=0, atol=0)


def test_sandwich_training_updates_every_depths_head(tmp_path):
    torch.manual_seed(0)
    model = SupernetConformerForCTC(tiny_conformer_config(ctc_head_per_depth=True))
    trainer = make_trainer(tmp_path, max_steps=3, model=model, num_random_subnets=2)
    before = {name: p.detach().clone() for name, p in model.named_parameters() if "head" in name}
    trainer.train()
    changed = {name for name, p in model.named_parameters() if name in before and not torch.equal(p, before[name])}
    # lm_head (largest) and the smallest's head always train; depth 3 trains when a random draw has 3 layers.
    assert {"lm_head.weight", "depth_heads.2.weight"} <= changed


def test_saved_supernet_reloads_its_heads_and_budget_extraction_uses_them(tmp_path):
    torch.manual_seed(0)
    model = SupernetConformerForCTC(tiny_conformer_config(ctc_head_per_depth=True)).eval()
    model.save_pretrained(tmp_path)
    features, mask = padded_batch([28], seed=3)
    smallest = model.subnet_space.smallest()
    small = SupernetConformerForCTC.from_pretrained(tmp_path, subnet_budget={"params": model.subnet_costs(smallest).params}).eval()
    assert type(small) is ConformerForCTC and small.config.num_hidden_layers == 2
    with torch.no_grad():
        torch.testing.assert_close(small(features, attention_mask=mask).logits,
                                   model(features, attention_mask=mask, subnet=smallest).logits, atol=1e-4, rtol=0)
