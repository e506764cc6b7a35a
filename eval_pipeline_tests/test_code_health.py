"""scripts/code_health.py on a small package made here: each figure, and labelled snapshots."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "code_health.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("code_health", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _package(root: Path) -> Path:
    package = root / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    body = "".join(f"    x += {i}\n" for i in range(105))
    (package / "long.py").write_text(
        "from typing import Any\n\n\n"
        "def long(x: int) -> int:\n" + body + "    return x\n\n\n"
        "def short(value: Any) -> 'dict[str, Any]':\n"
        "    return {'v': value}\n\n\n"
        "class Box:\n"
        "    def get(self) -> int:\n"
        "        return 1\n"
    )
    # One definition without annotations: the checker's one error.
    (package / "loose.py").write_text("def loose(a, b):\n    return a + b\n")
    (root / "pyproject.toml").write_text(
        "[tool.mypy]\ndisallow_untyped_defs = true\ncheck_untyped_defs = true\n"
    )
    return package


def test_figures_of_a_small_package(tmp_path: Path) -> None:
    health = _script()
    package = _package(tmp_path)
    figures = health.measure(package)

    # Any: one in the signature, one inside the quoted return annotation (the import
    # line does not count).
    assert figures["any_count"] == 2
    assert figures["functions"] == 4  # long, short, Box.get, loose
    assert figures["functions_over_100"] == 1
    assert figures["largest_function"] == {"name": "pkg.long:long", "lines": 107}
    assert figures["functions_over_100_list"] == [{"name": "pkg.long:long", "lines": 107}]
    assert figures["largest_module"]["path"] == "pkg/long.py"
    assert figures["median_function_lines"] == 2.0  # 107, 2, 2, 2
    if figures["mypy_errors"] is None:
        pytest.fail(f"mypy did not run: {figures.get('mypy_note')}")
    assert figures["mypy_errors"] == 1
    assert figures["mypy_error_codes"] == {"no-untyped-def": 1}
    if shutil.which("duplicates") is None:
        assert figures["duplicates_pairs"] is None
        assert "not on PATH" in figures["duplicates_note"]
    else:
        assert isinstance(figures["duplicates_pairs"], int)


def test_labelled_snapshots_are_kept_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    health = _script()
    package = _package(tmp_path)
    out = tmp_path / "bench" / "code_health.json"
    base = ["--package", str(package), "--out", str(out), "--no-mypy"]
    assert health.main([*base, "--label", "before"]) == 0
    (package / "loose.py").write_text("def loose(a: int, b: int) -> int:\n    return a + b\n")
    (package / "long.py").unlink()
    assert health.main([*base, "--label", "after", "--table"]) == 0

    snapshots = json.loads(out.read_text())["snapshots"]
    assert list(snapshots) == ["before", "after"]
    assert snapshots["before"]["functions_over_100"] == 1
    assert snapshots["after"]["functions_over_100"] == 0
    assert snapshots["after"]["any_count"] == 0
    table = capsys.readouterr().out
    assert "| figure | before | after |" in table
    assert "| functions over 100 lines | 1 | 0 |" in table
    # Nothing half-written beside the file.
    assert sorted(p.name for p in out.parent.iterdir()) == ["code_health.json"]


def test_a_file_that_is_not_json_is_refused_by_name(tmp_path: Path) -> None:
    health = _script()
    package = _package(tmp_path)
    out = tmp_path / "code_health.json"
    out.write_text("{not json")
    with pytest.raises(SystemExit, match="code_health.json: not JSON"):
        health.main(["--package", str(package), "--out", str(out), "--no-mypy"])
    assert out.read_text() == "{not json"
