import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForCTC

from hf_supernet import SupernetConformerForCTC, SupernetConformerModel

from .conftest import padded_batch, tiny_conformer_config


def test_output_shapes_and_lengths(tiny_model):
    features, mask = padded_batch([40, 23, 9])
    out = tiny_model(features, attention_mask=mask)
    assert out.logits.shape == (3, 10, 12)
    assert out.output_attention_mask.sum(-1).tolist() == [10, 6, 3]
    assert tiny_model._get_feat_extract_output_lengths(torch.tensor([40, 23, 9])).tolist() == [10, 6, 3]
    assert tiny_model._get_feat_extract_output_lengths(23) == 6


def test_subsampling_factor_8(tiny_config):
    model = SupernetConformerForCTC(tiny_conformer_config(subsampling_factor=8)).eval()
    features, mask = padded_batch([40, 17])
    out = model(features, attention_mask=mask)
    assert out.output_attention_mask.sum(-1).tolist() == [5, 3]


@pytest.mark.parametrize("use_subnet", [False, True])
def test_padding_invariance(tiny_model, use_subnet):
    """A sample alone gives the same valid-frame logits as the same sample padded inside a batch."""
    features, mask = padded_batch([37, 50, 12], seed=1)
    spec = tiny_model.subnet_space.sample(torch.Generator().manual_seed(5)) if use_subnet else None
    with tiny_model.use_subnet(spec):
        batched = tiny_model(features, attention_mask=mask).logits
        for i, length in enumerate([37, 50, 12]):
            alone = tiny_model(features[i : i + 1, :length]).logits[0]
            torch.testing.assert_close(batched[i, : alone.shape[0]], alone, atol=1e-5, rtol=1e-5)


def test_eval_mode_is_deterministic_and_train_mode_is_not(tiny_model):
    features, mask = padded_batch([30, 30])
    torch.testing.assert_close(tiny_model(features, mask).logits, tiny_model(features, mask).logits, rtol=0, atol=0)
    tiny_model.train()
    assert not torch.equal(tiny_model(features, mask).logits, tiny_model(features, mask).logits)


@pytest.mark.slow
def test_ctc_loss_trains(tiny_model):
    torch.manual_seed(0)
    features, mask = padded_batch([40, 32], seed=2)
    labels = torch.tensor([[1, 2, 3, 4], [5, 6, -100, -100]])
    model = tiny_model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = model(features, attention_mask=mask, labels=labels).loss
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss) and loss.item() < 0.5 * first


def test_subnet_gradients_reach_only_the_shared_slice(tiny_model):
    spec = tiny_model.subnet_space.smallest()  # 2 layers, width 8
    features, mask = padded_batch([30])
    with tiny_model.use_subnet(spec):
        tiny_model(features, attention_mask=mask, labels=torch.tensor([[1, 2]])).loss.backward()
    ffn = tiny_model.conformer.layers[0].ffn1
    assert ffn.intermediate_dense.weight.grad[:8].abs().sum() > 0
    assert ffn.intermediate_dense.weight.grad[8:].abs().sum() == 0
    assert tiny_model.conformer.layers[3].ffn1.intermediate_dense.weight.grad is None


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    no_dropout = dict(hidden_dropout=0.0, activation_dropout=0.0, attention_dropout=0.0, final_dropout=0.0)
    model = SupernetConformerForCTC(tiny_conformer_config(**no_dropout)).train()
    features, mask = padded_batch([30, 20])
    labels = torch.tensor([[1, 2], [3, -100]])

    def grads():
        model.zero_grad()
        model(features, attention_mask=mask, labels=labels).loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain = grads()
    model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.conformer.layers)
    checkpointed = grads()
    assert len(plain) == len(checkpointed)
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b)


def test_save_load_round_trip_via_auto_classes(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    assert AutoConfig.from_pretrained(tmp_path).model_type == "supernet_conformer"
    loaded = AutoModelForCTC.from_pretrained(tmp_path)
    assert isinstance(loaded, SupernetConformerForCTC)
    features, mask = padded_batch([25, 18])
    torch.testing.assert_close(loaded(features, mask).logits, tiny_model(features, mask).logits, rtol=0, atol=0)
    encoder = AutoModel.from_pretrained(tmp_path)
    assert isinstance(encoder, SupernetConformerModel)
    state = load_file(tmp_path / "model.safetensors")
    torch.testing.assert_close(encoder.layers[0].ffn1.intermediate_dense.weight, state["conformer.layers.0.ffn1.intermediate_dense.weight"])


@pytest.mark.parametrize(
    "features, message",
    [
        (torch.zeros(1, 20, 7), "num_mel_bins|shape"),
        (torch.zeros(1, 0, 16), "zero frames"),
        (torch.full((1, 20, 16), float("nan")), "NaN"),
    ],
)
def test_bad_features_raise_clear_errors(tiny_model, features, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(features)


def test_labels_outside_vocabulary_raise(tiny_model):
    features, mask = padded_batch([30])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tiny_model(features, attention_mask=mask, labels=torch.tensor([[1, 99]]))


def test_use_subnet_nests_and_restores_on_error(tiny_model):
    space = tiny_model.subnet_space
    assert tiny_model.active_subnet is None
    with tiny_model.use_subnet(space.smallest()):
        with pytest.raises(RuntimeError):
            with tiny_model.use_subnet(space.largest()):
                assert tiny_model.active_subnet == space.largest()
                raise RuntimeError("boom")
        assert tiny_model.active_subnet == space.smallest()
    assert tiny_model.active_subnet is None


def test_use_subnet_rejects_foreign_spec(tiny_model):
    from hf_supernet import LayerWidthSpec

    with pytest.raises(ValueError, match="not a subnet"):
        with tiny_model.use_subnet(LayerWidthSpec((3,))):
            pass


def test_foreign_checkpoint_is_refused_not_loaded_into_random_weights(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    config = Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, conv_dim=(8, 8),
        conv_stride=(5, 5), conv_kernel=(10, 3), num_feat_extract_layers=2, vocab_size=10,
    )
    Wav2Vec2ForCTC(config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'wav2vec2' checkpoint, not a 'supernet_conformer'"):
        SupernetConformerForCTC.from_pretrained(tmp_path)


def test_corrupt_weights_give_a_clear_error(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        SupernetConformerForCTC.from_pretrained(tmp_path)
