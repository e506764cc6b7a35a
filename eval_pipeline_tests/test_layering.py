"""The layering of STYLE.md.

Only resources/, defs/, definitions.py and cli.py import dagster; only slurm/ imports
submitit; importing the plain layers pulls in no heavy SDK.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "eval_pipeline"
DAGSTER_ALLOWED = ("resources/", "defs/", "definitions.py", "cli.py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), _imports(path)


def test_no_dagster_import_below_resources_and_defs():
    offenders = [
        rel
        for rel, names in _sources()
        if "dagster" in names and not rel.startswith(DAGSTER_ALLOWED)
    ]
    assert offenders == []


def test_only_the_slurm_package_imports_submitit():
    offenders = [
        rel for rel, names in _sources() if "submitit" in names and not rel.startswith("slurm/")
    ]
    assert offenders == []


def test_plain_layers_do_not_import_the_dagster_glue():
    plain = (
        "core/",
        "catalog/",
        "providers/",
        "engine/",
        "scoring/",
        "storage/",
        "stages/",
        "slurm/",
    )
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith(plain):
            continue
        text = path.read_text()
        if "eval_pipeline.defs" in text or "eval_pipeline.resources" in text:
            offenders.append(rel)
    assert offenders == []


def test_importing_the_stages_loads_neither_dagster_nor_heavy_sdks():
    code = (
        "import sys, eval_pipeline.stages, eval_pipeline.catalog, eval_pipeline.engine;"
        "heavy = [m for m in ('dagster', 'torch', 'transformers', 'openai', 'anthropic', 'submitit', 'vllm')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
