#!/usr/bin/env bash
# Make sure Debian's Prometheus server and promtool are installed for the metrics tests
# (idempotent; instant when present). The tests start their own server on loopback.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "ensure-prometheus.sh: prometheus is missing and apt-get is not available" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
echo "ensure-prometheus.sh: installing prometheus with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
# The image keeps apt from starting daemons (policy-rc.d); the tests start their own.
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
  || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
prometheus --version 2>&1 | head -1 >&2
