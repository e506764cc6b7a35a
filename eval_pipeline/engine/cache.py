"""A response cache of small files, safe for concurrent writers on a shared filesystem.

One JSON file per request hash (``<dir>/<hash[:2]>/<hash>.json``), written to a unique
temporary name and renamed into place. Renames are atomic on local filesystems and NFS,
so readers see a whole entry or none, concurrent runs and SLURM nodes may write the same
entry without a lock (both write the same content), and a killed run loses only the
requests that were in flight. Errors are never cached.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval_pipeline.core.hashing import content_hash
from eval_pipeline.core.types import (
    ChoiceScores,
    ContinuationScore,
    GenerationResponse,
    Message,
    SamplingParams,
)


def request_hash(
    identity: dict[str, Any],
    sampling: SamplingParams,
    messages: Sequence[Message],
    choices: Sequence[str] = (),
    prompt_format: str = "chat",
    request_type: str = "",
) -> str:
    """The cache key of one request: model identity, sampling parameters and messages.

    ``choices`` (choice decoding), a ``prompt_format`` other than ``chat`` and a
    ``request_type`` join the key only when given, so the keys of ordinary chat requests
    do not depend on them.
    """
    key: dict[str, Any] = {
        "model": identity,
        "sampling": sampling.model_dump(mode="json"),
        "messages": [m.as_dict() for m in messages],
    }
    if choices:
        key["choices"] = list(choices)
    if prompt_format != "chat":
        key["prompt_format"] = prompt_format
    if request_type:
        key["request_type"] = request_type
    return content_hash(key, 24)


class ResponseCache:
    """Content-addressed store of successful responses."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> GenerationResponse | None:
        path = self._path(key)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            return None  # a damaged entry is a miss; the next success rewrites it
        return GenerationResponse(
            completion=data["completion"],
            finish_reason=data["finish_reason"],
            input_tokens=data.get("input_tokens", 0),
            output_tokens=data.get("output_tokens", 0),
            latency_s=data.get("latency_s", 0.0),
            info=data.get("info", {}),
            choice_scores=_choice_scores(data),
        )

    def put(self, key: str, response: GenerationResponse) -> None:
        """Store a successful response (errors are ignored) atomically under ``key``.

        Safe to call from several threads, processes and machines at once. The async
        engine calls it once per response, so it avoids ``mkstemp`` and a ``mkdir`` per
        call: a random temporary name cannot collide across hosts on a shared filesystem.
        """
        if not response.ok:
            return
        path = self._path(key)
        record: dict[str, object] = {
            "completion": response.completion,
            "finish_reason": response.finish_reason,
            "input_tokens": response.input_tokens,
            "output_tokens": response.output_tokens,
            "latency_s": response.latency_s,
            "info": response.info,
        }
        if response.choice_scores is not None:
            record["choice_scores"] = response.choice_scores.to_json()
        data = json.dumps(record, sort_keys=True).encode()
        tmp = path.parent / f".{key}.{os.urandom(6).hex()}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, flags, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def __contains__(self, key: str) -> bool:
        return self._path(key).exists()


def _choice_scores(data: dict[str, Any]) -> ChoiceScores | None:
    """A cached response's choice scores (``data`` is a parsed entry: any JSON).

    Entries written before scores had their own field keep them in ``info`` as
    ``choice_logprobs`` / ``choice_tokens`` / ``choice_greedy`` (choice text -> value);
    those are read into the same type and taken out of ``info``.
    """
    if "choice_scores" in data:
        return ChoiceScores.from_json(data["choice_scores"])
    info = data.get("info") or {}
    logprobs = info.pop("choice_logprobs", None)
    if not isinstance(logprobs, dict):
        return None
    tokens = info.pop("choice_tokens", None) or {}
    greedy = info.pop("choice_greedy", None) or {}
    return ChoiceScores(
        tuple(
            ContinuationScore(c, float(lp), int(tokens.get(c, 0)), greedy.get(c))
            for c, lp in logprobs.items()
        ),
        int(data.get("input_tokens", 0)),
    )
