"""Test projects: the repository root and a throwaway project root with fake models.

Helpers tests import live here; ``conftest.py`` holds only fixtures and hooks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

FAKE_MODELS = {
    "models": [
        {
            "slug": "fake-good",
            "provider": "fake",
            "model_id": "fake/reference",
            "options": {"mode": "reference"},
            "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
        {
            "slug": "fake-echo",
            "provider": "fake",
            "model_id": "fake/echo",
            "options": {"mode": "echo"},
        },
    ]
}


def make_project(
    root: Path,
    models: dict | None = None,
    datasets: tuple[str, ...] = ("qa", "json-extract", "humaneval"),
) -> Path:
    """Copy the shipped datasets and prompts into ``root`` next to a models.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "models.yaml").write_text(yaml.safe_dump(models or FAKE_MODELS, sort_keys=False))
    for name in datasets:
        shutil.copytree(REPO / "datasets" / name, root / "datasets" / name)
    shutil.copytree(REPO / "prompts", root / "prompts")
    return root
