"""CONTRIBUTING.md stays true: its worked examples run, in order, in an empty folder.

A fenced block whose first line is ``# file: <path>`` is saved under that path (a later
block of the same path replaces it, as a reader editing the file would); every other
``python`` block runs, all of them in one process, one namespace, in document order.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from eval_pipeline_tests.processes import started
from eval_pipeline_tests.projects import REPO

GUIDE = REPO / "CONTRIBUTING.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
FILE = re.compile(r"#\s*file:\s*(\S+)\s*\n")


def blocks() -> list[tuple[str, str | None, str]]:
    """(language, file path or None, body) of every fenced block, in order."""
    out = []
    for match in FENCE.finditer(GUIDE.read_text(encoding="utf-8")):
        language, body = match[1], match[2]
        header = FILE.match(body)
        if header:
            out.append((language, header[1], body[header.end() :]))
        else:
            out.append((language, None, body))
    return out


def test_the_guide_has_a_worked_example_for_each_kind_of_contribution():
    text = GUIDE.read_text(encoding="utf-8")
    for heading in (
        "## A dataset",
        "## A scorer",
        "## A loader",
        "## A provider",
        "## A fine-tuning recipe",
    ):
        assert heading in text
    runnable = [b for b in blocks() if b[0] == "python" and b[1] is None]
    assert len(runnable) >= 5


def test_the_guide_examples_run(tmp_path):
    # The files are written as the reader would, just before the code that reads them.
    script = ["import os, pathlib", f"os.chdir({str(tmp_path)!r})"]
    for language, path, body in blocks():
        if path is not None:
            target = tmp_path / path
            script.append(
                f"pathlib.Path({str(target)!r}).parent.mkdir(parents=True, exist_ok=True)\n"
                f"pathlib.Path({str(target)!r}).write_text({body!r})"
            )
        elif language == "python":
            script.append(body)
    program = tmp_path / "guide.py"
    program.write_text("\n".join(script))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
    }
    with started(
        [sys.executable, str(program)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
