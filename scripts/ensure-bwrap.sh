#!/usr/bin/env bash
# Make sure bubblewrap (bwrap) is installed: the code-execution scorer runs every program
# under it (docs/sandbox.md). Idempotent; instant when present. `apt-get update` runs only
# when a plain install fails (stale or missing package lists).
set -euo pipefail
if command -v bwrap >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "ensure-bwrap.sh: bwrap is missing and apt-get is not available" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
echo "ensure-bwrap.sh: installing bubblewrap with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null 2>&1; then
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
fi
bwrap --version >&2
