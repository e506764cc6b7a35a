"""The single entry point: ``workspace.yaml`` and ``dagster -m`` load ``defs`` from here."""

from eval_pipeline.defs import build_definitions

defs = build_definitions()
