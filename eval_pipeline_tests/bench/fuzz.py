"""Hostile answers, rows and programs, in bulk: ``.bench/fuzz.json``.

- ``provider_shapes_tried``: generated response bodies per provider fed to its reader
  (``openai``, ``openai_completions``, ``anthropic``) and generated local-backend answers
  (``local``: vLLM, transformers, llama.cpp) fed to the gate every answer passes before the
  cache; each accepted answer is cached and read back.
- ``cached_malformed``: answers cached that do not read back as themselves (or as the text
  the body held), plus malformed answers the cache wrote: 0 expected.
- ``row_cases_tried``: generated rows per loader (``jsonl``, ``csv``, ``parquet``), each
  loaded as a generative and as a multiple-choice dataset.
- ``unnamed_errors``: readers or loaders that raised anything but their named error.
- ``peak_rss_mb_200mb_line``: peak RSS of a process loading a JSONL file whose second line
  is 200 MB (refused at the 1 MiB row limit), and ``..._refused``.
- ``sandbox_attacks`` / ``sandbox_attacks_passed``: the standing attack table, guard on
  and off; an attack passed when a wrong program scored ``passed`` or touched the outside.

``python -m eval_pipeline_tests.bench.run_all fuzz``; part of ``make bench``.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from eval_pipeline.core.types import ChoiceScores, ContinuationScore, GenerationResponse
from eval_pipeline.engine import ResponseCache
from eval_pipeline.providers import RequestFailure, checked_response
from eval_pipeline_tests import processes
from eval_pipeline_tests.hostile_rows import LOADERS, RowBench, random_rows
from eval_pipeline_tests.hostile_shapes import READERS, random_shape

# Loads the file named by argv[1] with the default limits; prints the outcome and peak RSS.
_BIG_LINE_CHILD = """
import resource, sys
from pathlib import Path
from eval_pipeline.catalog._bounds import read_jsonl
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.specs import RowLimits
try:
    read_jsonl(Path(sys.argv[1]), "big.jsonl", RowLimits())
    outcome = "accepted"
except CatalogError as exc:
    outcome = "refused: " + str(exc)[:200]
# VmHWM: this program's own peak (ru_maxrss keeps the forking parent's size across exec).
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
peak_kb = int(status["VmHWM"].split()[0]) if "VmHWM" in status else (
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
)
print(peak_kb // 1024)
print(outcome)
"""


def _local_answer(rng: random.Random) -> GenerationResponse:
    """A local backend's answer with each field right or hostile."""

    def pick(valid: Any, *bad: Any) -> Any:
        return valid if rng.randrange(4) else rng.choice(bad)

    return GenerationResponse(
        completion=pick("an answer", None, 7, ["a"], b"bytes", "x" * 1_000_001),
        finish_reason=pick("stop", None, 3, ["stop"]),
        input_tokens=pick(3, -1, 1.5, True, 2**60, "3"),
        output_tokens=pick(5, -2, float("nan"), None),
        latency_s=pick(0.1, math.nan, math.inf, -1.0, "0.1"),
        info=pick(
            {"backend": "vllm", "load_s": 0.5},
            {"load_s": math.nan},
            {1: "x"},
            {"x": object()},
            [],
            {"deep": [[[[[[[[[[[[1]]]]]]]]]]]]},
        ),
        choice_scores=pick(
            None,
            ChoiceScores((ContinuationScore("A", math.nan, 1),)),
            ChoiceScores((ContinuationScore("A", -0.5, -1),)),
            ChoiceScores((ContinuationScore("A", -0.5, 1, "yes"),)),  # type: ignore[arg-type]
            ChoiceScores((ContinuationScore("A", math.inf, 1),)),
        )
        if rng.randrange(2)
        else pick(ChoiceScores((ContinuationScore("A", -0.5, 1, True),), 4), ["A"]),
    )


def _shapes(per_provider: int, cache: ResponseCache, seed: int) -> dict[str, Any]:
    tried: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    cached_malformed = 0
    unnamed: list[str] = []
    rng = random.Random(seed)
    for p, provider in enumerate([*READERS, "local"]):
        for i in range(per_provider):
            tried[provider] += 1
            key = f"{p:02d}{i:022d}"
            try:
                if provider == "local":
                    expected = None
                    response = checked_response(_local_answer(rng))
                else:
                    shape = random_shape(provider, rng)
                    expected = shape.expected
                    answer = READERS[provider](shape.body)
                    response = checked_response(
                        GenerationResponse(
                            answer.text,
                            answer.finish_reason,
                            answer.input_tokens,
                            answer.output_tokens,
                            0.01,
                        )
                    )
            except RequestFailure as failure:
                if failure.kind != "malformed":
                    unnamed.append(f"{provider}: {failure.kind}: {failure}")
                # A malformed answer never reaches the cache: nothing may be there.
                if key in cache:
                    cached_malformed += 1
                continue
            except Exception as exc:  # the figure counts them; the bench goes on
                unnamed.append(f"{provider}: {type(exc).__name__}: {exc}")
                continue
            accepted[provider] += 1
            cache.put(key, response)
            back = cache.get(key)
            if back != response or (expected is not None and response.completion != expected):
                cached_malformed += 1
    return {
        "provider_shapes_tried": dict(tried),
        "provider_shapes_accepted": dict(accepted),
        "cached_malformed": cached_malformed + len(cache.damaged),
        "unnamed_answer_errors": unnamed[:10],
        "unnamed_answer_error_count": len(unnamed),
    }


def _rows(per_loader: int, root: Path, seed: int) -> dict[str, Any]:
    bench = RowBench(root)
    rng = random.Random(seed)
    tried: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    unnamed: list[str] = []
    cases = max(1, per_loader // 2)  # each case loads as two datasets
    for _ in range(cases):
        rows = random_rows(rng)
        for loader in LOADERS:
            for kind in ("gen", "mc"):
                tried[loader] += 1
                try:
                    outcomes[f"{loader}:{bench.load(kind, loader, rows)}"] += 1
                except Exception as exc:  # counted as an unnamed error
                    unnamed.append(f"{loader}/{kind}: {type(exc).__name__}: {exc}"[:300])
    return {
        "row_cases_tried": dict(tried),
        "row_outcomes": dict(outcomes),
        "unnamed_row_errors": unnamed[:10],
        "unnamed_row_error_count": len(unnamed),
    }


def _big_line(megabytes: int, root: Path) -> dict[str, Any]:
    path = root / "big.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"id": 1, "q": "x", "answer": "a"}\n{"id": 2, "q": "')
        chunk = b"x" * (1 << 20)
        for _ in range(megabytes):
            handle.write(chunk)
        handle.write(b'", "answer": "a"}\n')
    with processes.started(
        [sys.executable, "-c", _BIG_LINE_CHILD, str(path)],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        out, _ = proc.communicate(timeout=300)
    path.unlink()
    peak, outcome = out.strip().split("\n", 1)
    return {
        f"peak_rss_mb_{megabytes}mb_line": int(peak),
        f"line_{megabytes}mb_outcome": outcome,
        f"line_{megabytes}mb_refused": outcome.startswith("refused"),
    }


def _attacks(names: list[str] | None, root: Path) -> dict[str, Any]:
    from eval_pipeline.scoring.sandbox import bwrap_path
    from eval_pipeline_tests.sandbox_attacks import ATTACKS, run_attack

    if bwrap_path() is None:
        return {"sandbox_attacks": 0, "sandbox_attacks_passed": None, "sandbox_error": "no bwrap"}
    outcomes = [
        run_attack(name, root, guard=guard)
        for name in (names if names is not None else sorted(ATTACKS))
        for guard in (True, False)
    ]
    return {
        "sandbox_attacks": len(outcomes),
        "sandbox_attacks_passed": sum(o.passed for o in outcomes),
        "sandbox_attack_statuses": dict(Counter(f"{o.status}" for o in outcomes).most_common()),
        "sandbox_attacks_that_passed": [o.name for o in outcomes if o.passed],
    }


def run(
    shapes_per_provider: int = 10_000,
    rows_per_loader: int = 10_000,
    big_line_mb: int = 200,
    attacks: list[str] | None = None,
    seed: int = 20261207,
) -> dict[str, Any]:
    """Run every part at the given sizes; ``attacks`` None runs the whole table."""
    result: dict[str, Any] = {
        "sizes": {
            "shapes_per_provider": shapes_per_provider,
            "rows_per_loader": rows_per_loader,
            "big_line_mb": big_line_mb,
        }
    }
    with tempfile.TemporaryDirectory(prefix="fuzz-bench-") as scratch:
        root = Path(scratch)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        result.update(_shapes(shapes_per_provider, ResponseCache(root / "cache"), seed))
        timings["shapes_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        result.update(_rows(rows_per_loader, root / "rows", seed))
        timings["rows_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        result.update(_big_line(big_line_mb, root))
        timings["big_line_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        (root / "attacks").mkdir()
        result.update(_attacks(attacks, root / "attacks"))
        timings["attacks_s"] = round(time.perf_counter() - start, 1)
    result["unnamed_errors"] = (
        result["unnamed_answer_error_count"] + result["unnamed_row_error_count"]
    )
    result["timings"] = timings
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
