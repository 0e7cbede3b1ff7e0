"""Checks of user-settable config fields at construction: each field's type and range, with an error that names the
field, the value and the valid values (instead of a failure deep inside torch at the first forward pass).

A config lists its rules as ``{field: Rule(...)}`` and calls :func:`check_fields` first thing in ``__post_init__``;
checks between fields (divisibility, folding depths, ...) stay with the config.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a field may hold.

    ``kind``: ``int``, ``float`` (ints accepted), ``bool``, ``str``, ``list`` or ``dict``; ``items``: the kind of a
    list's items (``int``, ``float``, ``bool``, ``str``, ``"int_or_pair"`` for an int or a list of ints);
    ``minimum``/``maximum``: inclusive bounds of a number (``positive=True``: strictly above ``minimum``);
    ``choices``: the allowed values; ``optional``: ``None`` allowed."""

    kind: type
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    choices: Collection[Any] | None = None
    optional: bool = False
    items: Any = None


def _is_kind(value, kind) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is list:
        return isinstance(value, (list, tuple))
    if kind == "int_or_pair":
        return _is_kind(value, int) or (_is_kind(value, list) and all(_is_kind(v, int) for v in value))
    return isinstance(value, kind)


def _kind_name(kind) -> str:
    return {int: "an int", float: "a number", bool: "True or False", str: "a string", list: "a list", dict: "a dict",
            "int_or_pair": "an int or a list of ints"}[kind]


_ITEM_NAMES = {int: "ints", float: "numbers", bool: "booleans", str: "strings", dict: "dicts",
               "int_or_pair": "ints or lists of ints"}


def _describe(rule: Rule) -> str:
    if rule.choices is not None:
        text = f"one of {list(rule.choices)}"
    else:
        text = _kind_name(rule.kind)
        if rule.kind is list and rule.items is not None:
            text += f" of {_ITEM_NAMES[rule.items]}"
        low = None if rule.minimum is None else f"{'>' if rule.positive else '>='} {rule.minimum:g}"
        high = None if rule.maximum is None else f"<= {rule.maximum:g}"
        bounds = " and ".join(b for b in (low, high) if b)
        if bounds:
            text += f" {bounds}"
    return text + (" (or None)" if rule.optional else "")


def check_fields(config, rules: Mapping[str, Rule]) -> None:
    """Raise ``ValueError`` (a wrong type: ``TypeError``) for the first field of ``config`` that breaks its rule,
    naming the field, the value given and what is valid."""
    owner = type(config).__name__
    for name, rule in rules.items():
        value = getattr(config, name)
        if value is None and rule.optional:
            continue
        valid = f"{owner}.{name} must be {_describe(rule)}, got {value!r}."
        if not _is_kind(value, rule.kind) or (
            rule.kind is list and rule.items is not None and not all(_is_kind(v, rule.items) for v in value)
        ):
            raise TypeError(valid)
        if rule.choices is not None and value not in rule.choices:
            raise ValueError(valid)
        if rule.kind in (int, float):
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(valid)
            if rule.minimum is not None and (value <= rule.minimum if rule.positive else value < rule.minimum):
                raise ValueError(valid)
            if rule.maximum is not None and value > rule.maximum:
                raise ValueError(valid)


SIZE = Rule(int, minimum=1)
STEPS = Rule(int, minimum=0)
PROBABILITY = Rule(float, minimum=0.0, maximum=1.0)
FLAG = Rule(bool)
