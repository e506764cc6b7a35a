"""``make bench``'s run of the scale bench under a real daemon (``.bench/scale_daemon.json``).

The same as ``python -m eval_pipeline_tests.bench.scale --daemon``: the seeded nightly
tick, one night's run created both ways (``run_create_s``), and the first night of the
100 x 100 grid on three instances, ``first_night_runs``, ``first_night_launch_s`` (bound
60 s) and ``first_night_automation_runs`` (bound 0) among its figures. About 15 minutes,
five of them ``make ui``'s night watched.
"""

from __future__ import annotations

from typing import Any

from eval_pipeline_tests.bench import scale


def run() -> dict[str, Any]:
    return scale.run(daemon=True)
