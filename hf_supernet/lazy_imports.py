"""Public names imported on first use, as transformers' ``_LazyModule`` does, with a module ``__getattr__`` (PEP 562).

A package lists which module defines each of its public names; ``import package`` then runs none of those modules,
and ``package.Name`` (or ``from package import Name``) imports the defining module when the name is first asked for.
Submodules are reachable as attributes the same way (``package.training``).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable


def lazy_module_attributes(
    package: str, import_structure: dict[str, list[str]], namespace: dict
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``, whose public names are ``import_structure``'s values,
    each defined by the submodule its key names (relative, e.g. ``"models.foldable"``). ``namespace`` is the
    package's ``globals()``: a name, once imported, is stored there, so later lookups do not come back here."""
    defined_in = {name: module for module, names in import_structure.items() for name in names}

    def __getattr__(name: str) -> object:
        module = defined_in.get(name)
        if module is not None:
            value = getattr(importlib.import_module(f".{module}", package), name)
        elif not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f".{name}", package)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(defined_in))

    return __getattr__, __dir__, sorted(defined_in)
