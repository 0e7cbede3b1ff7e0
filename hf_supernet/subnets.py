"""What a subnet *is*, independent of how it is carved.

A :class:`SubnetSpec` names one subnet of a supernet: frozen, hashable (so it can key caches and sets during
search) and JSON-serialisable (so it can live in ``config.json``). Each mask type defines its own spec class with
the fields that describe its subnets, registered by ``mask_type`` so ``SubnetSpec.from_dict`` can rebuild any of
them. A :class:`SubnetSpace` is the set of subnets a supernet can run; the trainer samples from it, search walks it.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import torch

_SPEC_CLASSES: dict[str, type[SubnetSpec]] = {}


def register_spec(mask_type: str):
    """Class decorator: make ``SubnetSpec.from_dict`` able to rebuild specs of ``mask_type``."""

    def wrap(cls: type[SubnetSpec]) -> type[SubnetSpec]:
        cls.mask_type = mask_type
        _SPEC_CLASSES[mask_type] = cls
        return cls

    return wrap


def _to_json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json_value(v) for v in value]
    return value


def _to_frozen_value(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_frozen_value(v) for v in value)
    return value


@dataclasses.dataclass(frozen=True)
class SubnetSpec:
    """Base class of every mask type's subnet description.

    Subclasses are frozen dataclasses whose fields are ints, floats, strings or (nested) tuples of them; lists
    given to the constructor through :meth:`from_dict` are turned into tuples so specs stay hashable.
    """

    mask_type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        out = {"mask_type": self.mask_type}
        for field in dataclasses.fields(self):
            out[field.name] = _to_json_value(getattr(self, field.name))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> SubnetSpec:
        data = dict(data)
        mask_type = data.pop("mask_type", None)
        if mask_type not in _SPEC_CLASSES:
            raise ValueError(
                f"Cannot rebuild a subnet spec of mask_type={mask_type!r}; known mask types: "
                f"{sorted(_SPEC_CLASSES)}. Was it saved by a newer hf_supernet?"
            )
        cls = _SPEC_CLASSES[mask_type]
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"Unknown fields {sorted(unknown)} for a {cls.__name__}; expected {sorted(names)}.")
        return cls(**{k: _to_frozen_value(v) for k, v in data.items()})

    @staticmethod
    def from_json(text: str) -> SubnetSpec:
        return SubnetSpec.from_dict(json.loads(text))


class SubnetSpace(ABC):
    """The subnets one supernet can run. Every mask type provides one."""

    @abstractmethod
    def largest(self) -> SubnetSpec: ...

    @abstractmethod
    def smallest(self) -> SubnetSpec: ...

    @abstractmethod
    def sample(self, generator: torch.Generator | None = None) -> SubnetSpec:
        """Draw one subnet. Randomness comes only from ``generator`` so training can checkpoint and resume it."""

    @abstractmethod
    def __contains__(self, spec: object) -> bool: ...

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} is not finite or too large to count")

    def __iter__(self) -> Iterator[SubnetSpec]:
        raise TypeError(f"{type(self).__name__} cannot be enumerated")

    # --- genome view, used by evolutionary search (mutation and crossover work on genes, whatever the mask type) ---
    def gene_choices(self) -> list[int]:
        """Number of values each gene can take; a spec is a tuple of gene values ``0 <= g < choices``. By
        convention a larger gene value never makes the subnet smaller (so ``neighbors_up`` can enlarge gene-wise)."""
        raise TypeError(f"{type(self).__name__} does not expose a genome for evolutionary search")

    def to_genes(self, spec: SubnetSpec) -> tuple[int, ...]:
        raise TypeError(f"{type(self).__name__} does not expose a genome for evolutionary search")

    def from_genes(self, genes: tuple[int, ...]) -> SubnetSpec:
        raise TypeError(f"{type(self).__name__} does not expose a genome for evolutionary search")

    def neighbors_up(self, spec: SubnetSpec) -> list[SubnetSpec]:
        """The subnets one step larger than ``spec`` (one gene raised by one), for greedy budget fitting."""
        genes = self.to_genes(spec)
        bigger = []
        for i, choices in enumerate(self.gene_choices()):
            if genes[i] + 1 < choices:
                candidate = self.from_genes(genes[:i] + (genes[i] + 1,) + genes[i + 1 :])
                if candidate in self and candidate != spec:
                    bigger.append(candidate)
        return bigger

    def validate(self, spec: SubnetSpec) -> None:
        """Raise a ValueError saying why ``spec`` is not a member of this space."""
        if spec not in self:
            raise ValueError(f"{spec} is not a subnet of this supernet's space {self!r}.")


def randint(high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [0, high) drawn from a torch generator (the one RNG every space uses)."""
    return int(torch.randint(high, (1,), generator=generator).item())
