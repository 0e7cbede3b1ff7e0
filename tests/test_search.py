import pytest
import torch

from hf_supernet.masks import LayerWidthSpace
from hf_supernet.search.evolution import Candidate, crossover, evolutionary_search, mutate, pareto_front
from hf_supernet.budgets import fits

from .conftest import tiny_conformer_config


def test_genome_round_trips_every_subnet(tiny_model):
    space = tiny_model.subnet_space
    for spec in space:
        genes = space.to_genes(spec)
        assert len(genes) == len(space.gene_choices())
        assert all(0 <= g < c for g, c in zip(genes, space.gene_choices()))
        assert space.from_genes(genes) == spec


def test_mutation_and_crossover_stay_in_the_space():
    space = LayerWidthSpace(tiny_conformer_config())
    gen = torch.Generator().manual_seed(0)
    a, b = space.largest(), space.smallest()
    for _ in range(100):
        child = mutate(space, crossover(space, a, b, gen), 0.3, gen)
        assert child in space
    # prob=0 still redraws one gene, which usually (not always: it may redraw its own value) changes the spec.
    changed = sum(mutate(space, a, 0.0, gen) != a for _ in range(50))
    assert changed > 25


def test_pareto_front():
    from hf_supernet.costs import SubnetCosts

    def cand(params, score):
        return Candidate(spec=None, costs=SubnetCosts(params=params, flops=0.0, int8_mb=0.0), score=score)

    points = [cand(10, 0.5), cand(20, 0.4), cand(15, 0.6), cand(30, 0.1), cand(25, 0.3)]
    front = pareto_front(points)
    assert [(c.costs.params, c.score) for c in front] == [(10, 0.5), (20, 0.4), (25, 0.3), (30, 0.1)]


def test_search_finds_the_best_fitting_subnet_and_is_deterministic(tiny_model):
    """Score = a known function of the spec; the search must find the optimum under each budget."""
    space = tiny_model.subnet_space
    full = tiny_model.subnet_costs().params
    # Prefer deep, narrow-topped nets: score depends on architecture, not just on size.
    score = lambda s: -len(s.ffn_dims) * 10 + sum(s.ffn_dims[1:]) / 64 - s.ffn_dims[0] / 16  # noqa: E731
    limits = [{"params": 0.6 * full}, {"params": 0.85 * full}, {"params": 1.0}]
    run = lambda: evolutionary_search(space, tiny_model.subnet_costs, score, limits, population=12, generations=10, seed=3, progress=False)  # noqa: E731
    best, scored = run()
    assert best[2] is None  # nothing has one parameter
    for limit, cand in zip(limits[:2], best[:2]):
        assert fits(cand.costs, limit)
        optimum = min(score(s) for s in space if fits(tiny_model.subnet_costs(s), limit))
        assert cand.score == optimum
    assert len({c.spec for c in scored}) == len(scored)  # cached: no spec scored twice
    again, _ = run()
    assert [c.spec for c in again[:2]] == [c.spec for c in best[:2]]


def test_evaluate_subnet_per_utterance_scores_agree_with_its_totals():
    from hf_supernet import SupernetConformerForCTC
    from hf_supernet.data import build_processor, train_tokenizer
    from hf_supernet.metrics.bootstrap import utterance_errors
    from hf_supernet.search import evaluate_subnet

    from .conftest import padded_batch

    tokenizer = build_processor(train_tokenizer(["one two three"] * 5, model_type="char")).tokenizer
    torch.manual_seed(0)
    tiny_model = SupernetConformerForCTC(
        tiny_conformer_config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    )
    features, mask = padded_batch([40, 36, 28])
    labels = torch.tensor([[3, 4, 5], [4, 5, -100], [6, -100, -100]])
    batches = [{"input_features": features, "attention_mask": mask, "labels": labels}]
    scores = evaluate_subnet(tiny_model, tiny_model.subnet_space.smallest(), batches, tokenizer, per_utterance=True)
    assert len(scores["hypotheses"]) == len(scores["references"]) == 3
    errors = utterance_errors(scores["hypotheses"], scores["references"])
    assert abs(sum(errors["word_errors"]) / sum(errors["words"]) - scores["wer"]) < 1e-9
    assert scores["ctc_loss_per_frame"] > 0
    assert "hypotheses" not in evaluate_subnet(tiny_model, None, batches, tokenizer)
    # An extracted subnet is a plain model (no subnets): scored whole, it scores what its masked supernet scores.
    dense = tiny_model.extract_subnet(tiny_model.subnet_space.smallest())
    whole = evaluate_subnet(dense, None, batches, tokenizer, per_utterance=True)
    assert whole["hypotheses"] == scores["hypotheses"]
    for key in ("loss", "ctc_loss_per_frame", "wer", "cer"):
        assert abs(whole[key] - scores[key]) < 1e-4
    with pytest.raises(TypeError, match="no subnets"):
        evaluate_subnet(dense, tiny_model.subnet_space.smallest(), batches)
