"""A response cache of small files, safe for concurrent writers on a shared filesystem.

One JSON file per request hash (``<dir>/<hash[:2]>/<hash>.json``), written to a unique
temporary name and renamed into place. Renames are atomic on local filesystems and NFS,
so readers see a whole entry or none, concurrent runs and SLURM nodes may write the same
entry without a lock (both write the same content), and a killed run loses only the
requests that were in flight. Errors are never cached, and neither is an answer that
fails :func:`~eval_pipeline.providers.checked_response`.

An entry that does not read back as a well-formed answer (truncated or hand-edited JSON,
a field of the wrong type) is a miss: the request is sent again and the new answer
replaces the entry. Each such entry is logged as a warning naming its file and counted in
:attr:`ResponseCache.damaged`, so a damaged cache is seen, never a failed partition.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

# Any: a request's identity as JSON (any JSON value).
from typing import Any

from eval_pipeline.core.hashing import content_hash
from eval_pipeline.core.types import (
    ChoiceScores,
    ContinuationScore,
    GenerationResponse,
    Message,
    SamplingParams,
)
from eval_pipeline.providers import RequestFailure, checked_response

log = logging.getLogger(__name__)


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

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        # ``(entry path, why it was unreadable)`` of every damaged entry read as a miss.
        self.damaged: list[tuple[str, str]] = []

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> GenerationResponse | None:
        """The cached answer under ``key``; ``None`` when absent or damaged (reported)."""
        path = self._path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._damaged(path, f"unreadable ({exc.strerror or exc})")
            return None
        try:
            return _decode(raw)
        except (ValueError, RequestFailure) as exc:  # JSONDecodeError is a ValueError
            self._damaged(path, str(exc))
            return None

    def _damaged(self, path: Path, why: str) -> None:
        self.damaged.append((str(path), why))
        log.warning("response cache entry %s is damaged (%s); the request is sent again", path, why)

    def put(self, key: str, response: GenerationResponse) -> None:
        """Store a successful response (errors are ignored) atomically under ``key``.

        Safe to call from several threads, processes and machines at once. The async
        engine calls it once per response, so it avoids ``mkstemp`` and a ``mkdir`` per
        call: a random temporary name cannot collide across hosts on a shared filesystem.
        """
        if not response.ok:
            return
        checked_response(response)  # raises RequestFailure ("malformed"): nothing is written
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


_FIELDS = frozenset(
    {
        "completion",
        "finish_reason",
        "input_tokens",
        "output_tokens",
        "latency_s",
        "info",
        "choice_scores",
    }
)


def _decode(raw: bytes) -> GenerationResponse:
    """The answer stored in ``raw``; ``ValueError`` or a ``malformed`` failure when damaged."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError(f"the entry is {type(data).__name__}, not an object")
    extra = sorted(set(data) - _FIELDS)
    if extra or "completion" not in data or "finish_reason" not in data:
        raise ValueError(f"the entry's fields are {sorted(data)}")
    info = data.get("info", {})
    if not isinstance(info, dict):
        raise ValueError(f"the entry's info is {type(info).__name__}, not an object")
    try:
        scores = _choice_scores(data)  # takes an old entry's choice keys out of info
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ValueError(f"unreadable choice scores ({type(exc).__name__}: {exc})") from None
    response = GenerationResponse(
        completion=data["completion"],
        finish_reason=data["finish_reason"],
        input_tokens=data.get("input_tokens", 0),
        output_tokens=data.get("output_tokens", 0),
        latency_s=data.get("latency_s", 0.0),
        info=info,
        choice_scores=scores,
    )
    if response.completion is None:
        raise ValueError("the entry has no completion")
    return checked_response(response)
