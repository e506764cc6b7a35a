"""Fetch BIG-bench's task files once: ``python scripts/fetch_bigbench.py [--dir DIR]``.

Streams the ``bigbench==1.0.0`` source distribution from PyPI (about 358 MB, never
stored), checks its sha256 against PyPI's index and keeps only the 1,041 ``task.json``
files (1.7 GB on disk) in ``~/.cache/eval_pipeline/bigbench/1.0.0/`` or ``DIR``. The
``bigbench`` loader does the same on first use; this script is for machines that should
fetch ahead (a SLURM cluster without internet: fetch on a login node, point
``EVAL_PIPELINE_BIGBENCH_DIR`` at a shared folder).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from eval_pipeline.catalog._bigbench import CACHE_ENV, VERSION, cache_root, fetch, is_cached


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, help=f"cache folder (default ${CACHE_ENV} or ~/.cache/...)"
    )
    args = parser.parse_args()
    if args.dir:
        os.environ[CACHE_ENV] = str(args.dir)
    root = cache_root()
    if is_cached(root):
        print(f"BIG-bench {VERSION} task files already cached in {root}")
        return 0
    start = time.perf_counter()
    try:
        fetch(root)
    except OSError as exc:
        print(f"fetch_bigbench: {exc}", file=sys.stderr)
        return 1
    print(f"done in {time.perf_counter() - start:.0f} s: {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
