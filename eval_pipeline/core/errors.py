"""Exceptions with messages a user can act on."""

from __future__ import annotations


class EvalPipelineError(Exception):
    """Base class for every error this project raises on purpose."""


class CatalogError(EvalPipelineError):
    """A catalog file (model, dataset spec, data row or prompt) is invalid.

    The message always names the file, the field and the problem, e.g.
    ``datasets/qa/dataset.yaml: scorers[1].name: unknown scorer 'exact'``.
    """

    def __init__(self, file: str, field: str, problem: str):
        self.file = str(file)
        self.field = field
        self.problem = problem
        where = f"{self.file}: {field}" if field else self.file
        super().__init__(f"{where}: {problem}")
