#!/usr/bin/env bash
# What the default run (`make run`) needs from the machine beyond the virtualenv: today
# bubblewrap, which the HumanEval scorer runs every program under. `make run` and
# scripts/test.sh both call this script, so the two README commands cannot drift apart.
# Idempotent: instant when everything is present. Needs root (or passwordless sudo) only
# when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-bwrap.sh
