"""eval_pipeline: LLM evaluations as Dagster assets, partitioned by model x dataset, stored as Parquet.

Importing the package stays light: heavy SDKs (torch, transformers, openai, anthropic,
submitit) are imported by the code that needs them, never here.
"""

__version__ = "0.1.0"
