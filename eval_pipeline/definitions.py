"""The single entry point: ``workspace.yaml``, ``dagster -m`` and ``dg`` load ``defs`` from here.

The project has ``dg``'s layout (``[tool.dg.project]`` in ``pyproject.toml``): every module
of the ``eval_pipeline/defs`` folder is loaded, and the Dagster objects it holds at module
level are collected. The grid itself comes from the catalog, so one ``@dg.definitions``
function there (``defs/build.py``) builds assets, checks, jobs, schedules and sensors; an
asset or sensor written at module level in a new ``defs/`` module joins them.
"""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
