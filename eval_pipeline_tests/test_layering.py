"""The layering of docs/architecture.md ("The pieces").

Only resources/, defs/, definitions.py and cli/ import dagster; only slurm/ imports
submitit; importing the plain layers pulls in no heavy SDK.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "eval_pipeline"
DAGSTER_ALLOWED = ("resources/", "defs/", "definitions.py", "cli/")


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
        "model_task/",
        "runners/",
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
        "import sys, eval_pipeline.stages, eval_pipeline.catalog, eval_pipeline.engine,"
        " eval_pipeline.model_task;"
        "heavy = [m for m in ('dagster', 'torch', 'transformers', 'openai', 'anthropic', 'submitit', 'vllm')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# The layer of each top-level module; a module imports only from lower layers.
LAYERS = {
    "core": 0,
    "providers": 1,
    "scoring": 1,
    "storage": 1,
    "slurm": 1,
    "catalog": 2,
    "regression": 2,
    "report": 2,
    "engine": 2,
    "judge": 3,
    "operations": 3,
    "stages": 4,
    "training": 4,
    "model_task": 5,
    "runners": 6,
    "resources": 7,
    "defs": 8,
    "cli": 9,
    "definitions": 9,
}


def _package_imports():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        package = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if package == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            for module in modules:
                parts = module.split(".")
                if parts[0] == "eval_pipeline" and len(parts) > 1 and parts[1] != package:
                    yield rel.as_posix(), package, parts


def test_every_module_has_a_layer():
    packages = {p for _, p, _ in _package_imports()} | {
        parts[1] for _, _, parts in _package_imports()
    }
    assert packages - set(LAYERS) == set()


def test_modules_import_only_from_lower_layers():
    offenders = [
        f"{rel} imports {'.'.join(parts)}"
        for rel, package, parts in _package_imports()
        if LAYERS[parts[1]] >= LAYERS[package]
    ]
    assert offenders == []


def test_no_module_imports_another_packages_private_modules():
    offenders = [
        f"{rel} imports {'.'.join(parts)}"
        for rel, _, parts in _package_imports()
        if any(part.startswith("_") for part in parts[2:])
    ]
    assert offenders == []


def test_tests_import_helpers_from_helper_modules_not_from_conftest():
    tests = Path(__file__).resolve().parent
    offenders = [
        path.relative_to(tests).as_posix()
        for path in sorted(tests.rglob("*.py"))
        if "eval_pipeline_tests.conftest" in _imports_full(path)
    ]
    assert offenders == []


def _imports_full(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    }
