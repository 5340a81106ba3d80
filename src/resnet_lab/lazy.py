"""Package exports imported on first use (PEP 562), so that importing a package costs nothing.

``resnet-lab --help``, ``resnet-lab report`` and the background report renderer import
``resnet_lab`` and its packages but never use torch; eager package ``__init__`` s would import it
(about 1.5 s). A package lists each name under the module that defines it::

    __all__, __getattr__, __dir__ = lazy_exports(__name__, {".check": ["run_gradient_check"]})

``"NAME as ALIAS"`` exports a module's ``NAME`` as ``ALIAS``.
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, modules: dict[str, list[str]]):
    """``__all__`` (sorted), ``__getattr__`` and ``__dir__`` for ``package``; ``modules`` maps a
    module (relative to ``package``, e.g. ``".models"``) to the names it exports."""
    where = {}  # exported name -> (module, its name there)
    for module, names in modules.items():
        for entry in names:
            name, _, alias = (part.strip() for part in entry.partition(" as "))
            where[alias or name] = (module, name)

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = where[name]
        value = getattr(importlib.import_module(module, package), attribute)
        setattr(importlib.import_module(package), name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(where) | set(vars(importlib.import_module(package))))

    return sorted(where), __getattr__, __dir__
