"""Submitting plain functions to SLURM with submitit, watching them, cancelling them.

This module (with the rest of ``eval_pipeline.slurm``) is the only code that imports
submitit. What runs on a node is any importable top-level function taking one plain-data
argument; it is wrapped in :class:`ResumableCall` so that a timeout or a preemption
requeues the same call instead of losing it.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Any: the job's function and result (any picklable value); submitit's params.
from typing import Any

import submitit
from submitit.core.utils import FailedJobError, UncompletedJobError

from eval_pipeline.slurm._profiles import SlurmProfile

# SLURM states after which a job will not run again.
FINISHED_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
    }
)


# What a job's environment is made of (exact names, or patterns with ``*``). sbatch sends
# the environment it exports to slurmctld, which keeps it in its spool for the job's
# life, so a job gets only these, plus the variables its caller names (the API key
# variables of the models it runs) and SLURM's own SLURM_* variables.
JOB_ENV_PATTERNS = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TMPDIR",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "HF_*",
    "TRANSFORMERS_*",
    "TOKENIZERS_*",
    "EVAL_PIPELINE_*",
    "DAGSTER_HOME",
    "CUDA_*",
    "OMP_NUM_THREADS",
)


def job_environment_names(
    extra: Iterable[str] = (), environ: Mapping[str, str] | None = None
) -> list[str]:
    """The variables of ``environ`` (default: this process's) a submitted job receives.

    Those matching :data:`JOB_ENV_PATTERNS`, and the names in ``extra`` that are set.
    Everything else (other credentials, tokens, a shell's history of exports) stays out
    of the job and out of the scheduler's spool.
    """
    environ = os.environ if environ is None else environ
    wanted = set(extra)
    return sorted(
        name
        for name in environ
        if name in wanted or any(fnmatch.fnmatchcase(name, p) for p in JOB_ENV_PATTERNS)
    )


class ResumableCall(submitit.helpers.Checkpointable):
    """``fn(arg)`` as a submitit job that is requeued, unchanged, on timeout or preemption.

    Resuming is the called function's business: the generation entry point reuses every
    response already in the shared response cache, so a requeued job repeats at most the
    requests that were in flight when the signal came.
    """

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn

    def __call__(self, arg: Any) -> Any:
        return self.fn(arg)


@dataclass(frozen=True)
class JobStatus:
    """What the scheduler says about one job right now."""

    key: Hashable
    job_id: str
    state: str
    node: str | None
    elapsed_s: float

    def message(self) -> str:
        node = f" on {self.node}" if self.node else ""
        return f"SLURM job {self.job_id} ({self.key}): {self.state}{node}, {self.elapsed_s:.0f}s"


@dataclass(frozen=True)
class JobOutcome:
    """How one job ended: its return value, or the error with the tail of its log."""

    key: Hashable
    job_id: str
    state: str
    node: str | None
    result: Any = None
    error: str | None = None
    log_tail: str = ""
    stdout_path: str = ""
    stderr_path: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def make_executor(
    folder: str | os.PathLike[str],
    profile: SlurmProfile,
    *,
    name: str = "eval_pipeline",
    array_parallelism: int | None = None,
    cluster: str | None = None,
    env_names: Iterable[str] = (),
) -> submitit.AutoExecutor:
    """An executor shaped by ``profile`` that keeps its files under ``folder``.

    ``cluster`` is submitit's cluster name (``None`` detects SLURM; ``"local"`` and
    ``"debug"`` run without a scheduler, for unit tests). On SLURM the jobs get only
    :func:`job_environment_names` (with ``env_names`` added) of this environment,
    through sbatch's ``--export``, unless the profile's ``additional`` sets ``export``.
    """
    kwargs: dict[str, Any] = {"slurm_max_num_timeout": profile.max_requeues}
    if profile.python:
        kwargs["slurm_python"] = profile.python
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster, **kwargs)
    params = profile.executor_parameters(array_parallelism=array_parallelism)
    if executor.cluster != "slurm":
        # The local executors take the generic parameters only.
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    else:
        params = _restricted_environment(params, env_names)
    executor.update_parameters(name=name, **params)
    return executor


def _restricted_environment(params: dict[str, Any], env_names: Iterable[str]) -> dict[str, Any]:
    """``params`` with sbatch told to export only the variables a job needs."""
    additional = dict(params.get("slurm_additional_parameters") or {})
    if "export" in additional:
        return params  # the profile decides what its jobs get
    additional["export"] = ",".join(job_environment_names(env_names))
    # sbatch hands its --export list to the srun inside the script as SLURM_EXPORT_ENV;
    # the job's environment is already the restricted one, so srun passes all of it,
    # including what the script itself exports (the profile's env, SUBMITIT_EXECUTOR).
    setup = ["export SLURM_EXPORT_ENV=ALL", *params.get("slurm_setup", [])]
    return {**params, "slurm_additional_parameters": additional, "slurm_setup": setup}


class SlurmBatch:
    """Jobs submitted together, keyed by the caller (e.g. one job per model)."""

    def __init__(self, jobs: dict[Hashable, submitit.Job], *, log_lines: int = 40):
        self.jobs = jobs
        self.log_lines = log_lines
        self.started = time.monotonic()
        self._outcomes: dict[Hashable, JobOutcome] = {}

    @classmethod
    def merge(cls, batches: Sequence[SlurmBatch]) -> SlurmBatch:
        """One batch over the jobs of several (e.g. one job array per profile)."""
        jobs: dict[Hashable, submitit.Job] = {}
        for batch in batches:
            jobs.update(batch.jobs)
        merged = cls(jobs, log_lines=max((b.log_lines for b in batches), default=40))
        merged.started = min((b.started for b in batches), default=merged.started)
        return merged

    @property
    def job_ids(self) -> dict[Hashable, str]:
        return {key: str(job.job_id) for key, job in self.jobs.items()}

    def poll(self) -> list[JobStatus]:
        """Ask the scheduler once for every job's state and node."""
        elapsed = time.monotonic() - self.started
        statuses = []
        refreshed: set[int] = set()
        for key, job in self.jobs.items():
            # One forced query refreshes every job of a watcher; the others read it.
            mode = "standard" if id(job.watcher) in refreshed else "force"
            refreshed.add(id(job.watcher))
            try:
                info = job.get_info(mode=mode)
            except Exception:  # a scheduler hiccup must not end the wait
                info = {}
            node = info.get("NodeList")
            if node in (None, "", "None assigned"):
                node = None
            statuses.append(
                JobStatus(key, str(job.job_id), info.get("State", "UNKNOWN"), node, elapsed)
            )
        return statuses

    def wait(
        self,
        *,
        poll_s: float = 5.0,
        on_progress: Callable[[list[JobStatus]], None] | None = None,
        timeout_s: float | None = None,
    ) -> dict[Hashable, JobOutcome]:
        """Wait for every job; report progress every ``poll_s`` seconds.

        Any exception while waiting (including the interrupt Dagster raises when a run is
        terminated) cancels the jobs still queued or running before it propagates.

        Raises:
            TimeoutError: ``timeout_s`` passed (the jobs are cancelled first).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while True:
                statuses = self.poll()
                if on_progress is not None:
                    on_progress(statuses)
                for status in statuses:
                    if status.key not in self._outcomes and self._finished(status):
                        self._outcomes[status.key] = self._collect(status)
                if len(self._outcomes) == len(self.jobs):
                    return dict(self._outcomes)
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"SLURM jobs {sorted(self.job_ids.values())} still running")
                time.sleep(poll_s)
        except BaseException:
            self.cancel()
            raise

    def _finished(self, status: JobStatus) -> bool:
        job = self.jobs[status.key]
        if job.paths.result_pickle.exists():
            return True
        return status.state.split()[0] in FINISHED_STATES

    def _collect(self, status: JobStatus) -> JobOutcome:
        job = self.jobs[status.key]
        paths = {"stdout_path": str(job.paths.stdout), "stderr_path": str(job.paths.stderr)}
        try:
            result = job.result()
        except (FailedJobError, UncompletedJobError) as exc:
            return JobOutcome(
                status.key,
                status.job_id,
                status.state,
                status.node,
                error=_summary(exc),
                log_tail=self.log_tail(status.key),
                **paths,
            )
        return JobOutcome(status.key, status.job_id, status.state, status.node, result, **paths)

    def log_tail(self, key: Hashable, lines: int | None = None) -> str:
        """The last lines of a job's stderr (where tracebacks and submitit's notes go)."""
        job = self.jobs[key]
        return tail(Path(job.paths.stderr), lines or self.log_lines)

    def cancel(self) -> list[str]:
        """Cancel every job that has not finished; returns their ids."""
        cancelled = []
        for key, job in self.jobs.items():
            if key in self._outcomes:
                continue
            try:
                job.cancel(check=False)
                cancelled.append(str(job.job_id))
            except Exception:  # already gone: nothing to cancel
                continue
        return cancelled


def submit_array(
    fn: Callable[[Any], Any],
    args: Sequence[Any],
    keys: Sequence[Hashable],
    *,
    profile: SlurmProfile,
    folder: str | os.PathLike[str],
    name: str = "eval_pipeline",
    array_parallelism: int | None = None,
    cluster: str | None = None,
    log_lines: int = 40,
    env_names: Iterable[str] = (),
) -> SlurmBatch:
    """Submit ``fn(arg)`` for every arg as one job array and return the batch.

    At most ``array_parallelism`` jobs of the array run at once (the profile's cap when
    None). The batch is keyed by ``keys``, one per argument. The jobs get the
    environment of :func:`job_environment_names`: pass in ``env_names`` the further
    variables they need (``Catalog.secret_env_names`` of the models they run).
    """
    if len(args) != len(keys):
        raise ValueError("one key per argument")
    executor = make_executor(
        folder,
        profile,
        name=name,
        array_parallelism=array_parallelism,
        cluster=cluster,
        env_names=env_names,
    )
    jobs = executor.map_array(ResumableCall(fn), list(args)) if args else []
    return SlurmBatch(dict(zip(keys, jobs, strict=True)), log_lines=log_lines)


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist yet)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _summary(exc: Exception) -> str:
    """One line for a failed job: the remote exception, or why there is no result."""
    lines = [
        line.strip()
        for line in str(exc).splitlines()
        if line.strip() and set(line.strip()) != {"-"}
    ]
    if not lines:
        return type(exc).__name__
    # A FailedJobError carries the remote traceback: its last line is the exception.
    return lines[-1] if isinstance(exc, FailedJobError) else lines[0]
