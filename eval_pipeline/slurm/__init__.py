"""SLURM through submitit: cluster profiles, job arrays, progress, cancellation, requeue.

The only package that imports submitit. It knows nothing about Dagster or about what the
jobs compute: callers hand it an importable function and plain-data arguments.
"""

from eval_pipeline.slurm._launcher import (
    FINISHED_STATES,
    JOB_ENV_PATTERNS,
    JobOutcome,
    JobStatus,
    ResumableCall,
    SlurmBatch,
    job_environment_names,
    make_executor,
    submit_array,
    tail,
)
from eval_pipeline.slurm._profiles import (
    SlurmProfile,
    load_profile,
    profile_names,
    profiles_dir,
)

__all__ = [
    "FINISHED_STATES",
    "JOB_ENV_PATTERNS",
    "JobOutcome",
    "JobStatus",
    "ResumableCall",
    "SlurmBatch",
    "SlurmProfile",
    "job_environment_names",
    "load_profile",
    "make_executor",
    "profile_names",
    "profiles_dir",
    "submit_array",
    "tail",
]
