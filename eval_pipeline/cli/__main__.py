"""``python -m eval_pipeline.cli``: the same as the ``eval-pipeline`` console script."""

import sys

from eval_pipeline.cli import main

sys.exit(main())
