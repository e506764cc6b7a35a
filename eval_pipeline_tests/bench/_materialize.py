"""One whole materialization of the evaluation job, as a command.

``python -m eval_pipeline_tests.bench._materialize PROJECT STORE PARTITION`` (the peers are
timed as commands too, imports included).
"""

from __future__ import annotations

import sys
from pathlib import Path

from eval_pipeline_tests.apiserver import materialize_api


def main() -> None:
    project, store, partition = sys.argv[1:4]
    result = materialize_api(Path(project), Path(store), partition)
    sys.exit(0 if result.success else 1)


if __name__ == "__main__":
    main()
