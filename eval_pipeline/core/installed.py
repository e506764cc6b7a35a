"""Whether a Python package is installed, found without importing it (for the preflight)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys


def module_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    """The spec of top-level module ``name``, without importing it; None when it is absent.

    A namespace package (a folder of that name on the path, such as a project's own
    ``datasets/``) does not count. A module already imported counts even without a spec.
    """
    if name in sys.modules:
        module = sys.modules[name]
        if module is None:  # an import that is known to fail
            return None
        return getattr(module, "__spec__", None) or importlib.machinery.ModuleSpec(name, None)
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if found is None or found.origin in (None, "namespace"):
        return None
    return found


def missing_modules(*names: str) -> list[str]:
    """The modules of ``names`` that are not installed, in order."""
    return [name for name in names if module_spec(name) is None]
