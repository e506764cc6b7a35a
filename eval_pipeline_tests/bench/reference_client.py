"""The minimal reference client of ``api_throughput``: asyncio, ``AsyncOpenAI`` and a semaphore.

No cache, no retries, no rate limits, no result table: the fastest way to send the same
requests with the same SDK, so the ratio isolates what the pipeline's engine adds.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def send_all(
    base_url: str,
    model: str,
    conversations: list[list[dict[str, str]]],
    *,
    concurrency: int,
    max_tokens: int,
    api_key: str = "sk-reference",
) -> list[str | None]:
    """Send one chat completion per conversation, ``concurrency`` at a time."""
    import openai

    client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=60.0)
    slots = asyncio.Semaphore(concurrency)

    async def one(messages: list[dict[str, str]]) -> str | None:
        async with slots:
            response: Any = await client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=0.0,
                top_p=1.0,
                seed=0,
            )
            return response.choices[0].message.content

    try:
        return await asyncio.gather(*(one(m) for m in conversations))
    finally:
        await client.close()


def run(
    base_url: str, model: str, conversations: list[list[dict[str, str]]], **kwargs: Any
) -> list[str | None]:
    return asyncio.run(send_all(base_url, model, conversations, **kwargs))
