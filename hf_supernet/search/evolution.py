"""Evolutionary subnet search under cost limits (TODM / Omni-sparsity style), independent of mask type and data.

The search sees a subnet only through its space's genome (``gene_choices`` / ``to_genes`` / ``from_genes``), a
cost function and a score function (lower is better, e.g. validation loss or WER on a small subset). Scores are
cached per spec, so a subnet is never evaluated twice across generations or budgets. Deterministic for a seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from ..budgets import fits, largest_fitting
from ..costs import SubnetCosts
from ..subnets import SubnetSpace, SubnetSpec, randint


@dataclasses.dataclass(frozen=True)
class Candidate:
    spec: SubnetSpec
    costs: SubnetCosts
    score: float


def mutate(space: SubnetSpace, spec: SubnetSpec, prob: float, generator: torch.Generator) -> SubnetSpec:
    """Redraw each gene with probability ``prob`` (at least one gene always changes)."""
    genes, choices = list(space.to_genes(spec)), space.gene_choices()
    flips = (torch.rand(len(genes), generator=generator) < prob).tolist()
    if not any(flips):
        flips[randint(len(genes), generator)] = True
    for i, flip in enumerate(flips):
        if flip:
            genes[i] = randint(choices[i], generator)
    return space.from_genes(tuple(genes))


def crossover(space: SubnetSpace, a: SubnetSpec, b: SubnetSpec, generator: torch.Generator) -> SubnetSpec:
    """Uniform crossover: each gene from either parent with probability ½."""
    ga, gb = space.to_genes(a), space.to_genes(b)
    pick = (torch.rand(len(ga), generator=generator) < 0.5).tolist()
    return space.from_genes(tuple(x if p else y for x, y, p in zip(ga, gb, pick)))


def pareto_front(candidates: Sequence[Candidate], cost: str = "params") -> list[Candidate]:
    """Candidates no other candidate beats on both ``cost`` and score, sorted by cost."""
    ordered = sorted(candidates, key=lambda c: (getattr(c.costs, cost), c.score))
    front, best = [], float("inf")
    for cand in ordered:
        if cand.score < best:
            front.append(cand)
            best = cand.score
    return front


def evolutionary_search(
    space: SubnetSpace,
    cost_fn: Callable[[SubnetSpec], SubnetCosts],
    score_fn: Callable[[SubnetSpec], float],
    limits: Sequence[dict[str, float]],
    population: int = 12,
    generations: int = 4,
    mutation_prob: float = 0.2,
    seed: int = 0,
    progress: bool = True,
) -> tuple[list[Candidate | None], list[Candidate]]:
    """Best candidate per entry of ``limits`` (``None`` where nothing fits) and every candidate scored.

    Per budget: start from random fitting subnets plus the largest fitting one, then each generation keep the best
    half as parents and fill the population with mutated parents and mutated crossovers of two parents.
    """
    generator = torch.Generator().manual_seed(seed)
    scored: dict[SubnetSpec, Candidate] = {}
    total = len(limits) * population * (generations + 1)
    bar = tqdm(total=total, desc="subnet search", disable=not progress, unit="subnet")

    def evaluate(spec: SubnetSpec) -> Candidate:
        if spec not in scored:
            scored[spec] = Candidate(spec, cost_fn(spec), float(score_fn(spec)))
        bar.update(1)
        return scored[spec]

    def fitting_children(make: Callable[[], SubnetSpec], want: int, limit: dict[str, float], seen: set) -> list:
        out, tries = [], 0
        while len(out) < want and tries < 50 * want:
            tries += 1
            spec = make()
            if spec not in seen and fits(cost_fn(spec), limit):
                seen.add(spec)
                out.append(spec)
        return out

    best: list[Candidate | None] = []
    for limit in limits:
        anchor = largest_fitting(space, cost_fn, limit)
        if anchor is None:
            best.append(None)
            continue
        seen = {anchor}
        start = [anchor] + fitting_children(lambda: space.sample(generator), population - 1, limit, seen)
        pool = sorted((evaluate(s) for s in start), key=lambda c: c.score)
        for _ in range(generations):
            parents = pool[: max(2, population // 2)]

            def child() -> SubnetSpec:
                a = parents[randint(len(parents), generator)].spec
                if randint(2, generator):
                    a = crossover(space, a, parents[randint(len(parents), generator)].spec, generator)
                return mutate(space, a, mutation_prob, generator)

            children = fitting_children(child, population - len(parents), limit, seen)
            pool = sorted(parents + [evaluate(s) for s in children], key=lambda c: c.score)[:population]
        best.append(pool[0])
    bar.close()
    return best, list(scored.values())
