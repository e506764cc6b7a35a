"""Headless Chromium for the browser tests and the explorer bench (Playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from eval_pipeline_tests.projects import REPO

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = REPO / ".test-artifacts" / "screenshots"
# Headless on a machine without a network: no GPU, no sandbox as root, nothing that phones out.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def need(condition: bool, why: str) -> None:
    """Skip the test unless ``condition``; fail instead where services are required (CI)."""
    if condition:
        return
    if os.environ.get("EVAL_PIPELINE_REQUIRE_SERVICES") == "1":
        pytest.fail(why)
    pytest.skip(why)


def need_chromium() -> None:
    need(Path(CHROMIUM).exists(), f"{CHROMIUM} missing; scripts/ensure-chromium.sh installs it")


@contextmanager
def launched() -> Iterator:
    """A Playwright browser on the system Chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # Playwright starts each launch with a fresh, empty profile of its own.
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()
