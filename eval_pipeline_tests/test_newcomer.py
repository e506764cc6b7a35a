"""A new user's first command on a machine of this kind: a fresh clone, an empty home, `make run`.

The clone builds its own virtualenv from pip's download cache (the only thing kept from
this machine), installs what the default run needs through the project's own scripts,
and must evaluate every default partition: no cache in a home folder, no package
installed by hand, no download at run time can stand in.
"""

from __future__ import annotations

import pytest

from eval_pipeline_tests.newcomer import (
    default_partitions,
    empty_home_env,
    fresh_clone,
    leaderboard_partitions,
    make,
)


@pytest.mark.slow
def test_make_run_in_a_fresh_clone_with_an_empty_home_evaluates_every_default_partition(
    tmp_path,
):
    clone = fresh_clone(tmp_path)
    env = empty_home_env(tmp_path)
    run = make(clone, "run", env, tmp_path / "make-run.log", timeout_s=1800)
    tail = run.log.read_text()[-4000:]
    assert run.returncode == 0, (
        f"make run exited {run.returncode} after {run.seconds:.0f}s:\n{tail}"
    )
    expected = default_partitions(clone)
    assert len(expected) >= 5
    assert expected <= leaderboard_partitions(clone), tail
    # Nothing was written into the home folders but what the run keeps as caches.
    assert not any((tmp_path / "home").rglob("*.parquet"))
    print(f"make run in a fresh clone: {run.seconds:.0f} s")
