#!/usr/bin/env bash
# Stop the local SLURM cluster started by start-slurm.sh. Jobs still queued or running are
# cancelled first so no job step outlives its daemons. Daemons are stopped through their
# pid files only. Packages, configuration and job state stay; EVAL_SLURM_PURGE=1 also
# wipes the job state (job ids then restart at 1: use a fresh submitit folder afterwards).
set -uo pipefail

say() { echo "[slurm-down] $*"; }

[ "$(id -u)" -eq 0 ] || { say "run as root"; exit 1; }
exec 9>/run/eval-pipeline-slurm.lock
flock 9

running() {
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}

halt() {
  if ! running "$1" "$2"; then
    say "$1 is not running"
    return 0
  fi
  local pid
  pid=$(cat "$2")
  kill "$pid" 2>/dev/null
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { say "$1 stopped"; return 0; }
    sleep 0.1
  done
  say "$1 ignored SIGTERM for 10 s; killing it"
  kill -9 "$pid" 2>/dev/null
}

if running slurmctld /run/slurmctld.pid; then
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    say "cancelling jobs $jobs"
    # shellcheck disable=SC2086  # one argument per job id
    scancel $jobs 2>/dev/null
    for _ in $(seq 50); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

halt slurmd /run/slurmd.pid
halt slurmctld /run/slurmctld.pid
halt munged /run/munge/munged.pid

if [ "${EVAL_SLURM_PURGE:-0}" = 1 ]; then
  say "wiping job state"
  rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
fi
exit 0
