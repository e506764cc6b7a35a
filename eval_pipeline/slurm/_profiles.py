"""Cluster profiles: how a SLURM job is shaped, read from ``slurm/<name>.yaml``."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

# Any: submitit's executor parameters (any value it takes).
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.specs import validation_error_to_catalog_error

PROFILES_DIR = "slurm"


class SlurmProfile(BaseModel):
    """One cluster profile (``slurm/<name>.yaml``); see ``slurm/README.md`` for each field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    description: str = ""
    partition: str | None = None
    gres: str | None = None
    gpus_per_node: int | None = Field(None, ge=1)
    cpus_per_task: int = Field(1, ge=1)
    mem_gb: float | None = Field(None, gt=0)
    timeout_min: int = Field(60, ge=1)
    qos: str | None = None
    account: str | None = None
    constraint: str | None = None
    array_parallelism: int = Field(8, ge=1)
    signal_delay_s: int = Field(90, ge=0)
    max_requeues: int = Field(3, ge=0)
    setup: tuple[str, ...] = ()
    python: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    additional: dict[str, Any] = Field(default_factory=dict)

    def executor_parameters(self, *, array_parallelism: int | None = None) -> dict[str, Any]:
        """The profile as ``submitit.AutoExecutor.update_parameters`` keywords."""
        params: dict[str, Any] = {
            "timeout_min": self.timeout_min,
            "cpus_per_task": self.cpus_per_task,
            "slurm_array_parallelism": array_parallelism or self.array_parallelism,
            "slurm_signal_delay_s": self.signal_delay_s,
            # Environment first, then the profile's own lines (which may rely on it).
            "slurm_setup": [
                *(f"export {k}={shlex.quote(v)}" for k, v in sorted(self.env.items())),
                *self.setup,
            ],
        }
        if self.mem_gb is not None:
            params["mem_gb"] = self.mem_gb
        # submitit drops the GPU variable when gpus_per_node=0 is combined with a gres, so
        # only the fields that are set are passed.
        optional = {
            "slurm_partition": self.partition,
            "slurm_gres": self.gres,
            "gpus_per_node": self.gpus_per_node,
            "slurm_qos": self.qos,
            "slurm_account": self.account,
            "slurm_constraint": self.constraint,
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        if self.additional:
            params["slurm_additional_parameters"] = dict(self.additional)
        return params


def profiles_dir(project_root: str | os.PathLike[str]) -> Path:
    """Where a project keeps its cluster profiles."""
    return Path(project_root) / PROFILES_DIR


def profile_names(directory: str | os.PathLike[str]) -> list[str]:
    """The profiles defined in ``directory`` (file names without ``.yaml``)."""
    return sorted(p.stem for p in Path(directory).glob("*.yaml"))


def load_profile(directory: str | os.PathLike[str], name: str) -> SlurmProfile:
    """Read and validate ``<directory>/<name>.yaml``.

    Raises:
        CatalogError: the file is missing or not a valid profile (naming file and field).
    """
    path = Path(directory) / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(profile_names(directory)) or "none"
        raise CatalogError(str(path), "", f"no SLURM profile '{name}' (known: {known})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise CatalogError(str(path), "", f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogError(str(path), "", "must be a mapping of profile fields")
    try:
        return SlurmProfile.model_validate({**data, "name": name})
    except ValidationError as exc:
        raise validation_error_to_catalog_error(str(path), exc) from exc
