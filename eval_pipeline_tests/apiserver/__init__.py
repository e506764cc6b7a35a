"""A local server speaking the OpenAI and Anthropic wire formats, for tests and benchmarks.

``ApiServer`` runs it in a subprocess on an ephemeral loopback port (so a client under
test, or a benchmark, never shares an interpreter or a core with it) and controls it over
HTTP: ``configure`` sets latency, rate limits and faults and resets the counts, ``stats``
returns them.
"""

from eval_pipeline_tests.apiserver._process import ApiServer, free_port
from eval_pipeline_tests.apiserver._project import (
    api_model,
    generation_config,
    make_api_project,
    materialize_api,
)
from eval_pipeline_tests.apiserver._server import (
    ServerConfig,
    answer,
    body_key,
    completion_tokens,
    token_logprob,
)

__all__ = [
    "ApiServer",
    "ServerConfig",
    "answer",
    "api_model",
    "body_key",
    "completion_tokens",
    "free_port",
    "generation_config",
    "make_api_project",
    "materialize_api",
    "token_logprob",
]
