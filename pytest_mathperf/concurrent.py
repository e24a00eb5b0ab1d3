"""Up to N generations in flight on one backend: one batched call in-process, N streams over HTTP.

The answer pass needs only the tokens. A backend with ``generate_batch`` (transformers) gets the
requests in batches of N that share their sampling settings; one with ``astream`` (an
OpenAI-compatible server) gets N concurrent streams, which the server batches itself; any other
backend runs them one at a time, and the concurrency it reports back says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pytest_mathperf.backends import BackendError, Generation, GenerationRequest

Outcome = Generation | BackendError


def generate_many(backend: Any, requests: Sequence[GenerationRequest], concurrency: int) -> tuple[list[Outcome], int]:
    """Every request's generation or error, in order, and the concurrency they actually ran at."""
    if concurrency > 1 and callable(getattr(backend, "generate_batch", None)):
        return _batched(backend, requests, concurrency), concurrency
    if concurrency > 1 and callable(getattr(backend, "astream", None)):
        return _streamed(backend, requests, concurrency), concurrency
    return [_one(backend, request) for request in requests], 1


def _one(backend: Any, request: GenerationRequest) -> Outcome:
    try:
        return backend.generate(request)
    except BackendError as error:
        return error


def _batched(backend: Any, requests: Sequence[GenerationRequest], size: int) -> list[Outcome]:
    """Batches of up to ``size`` requests that ``generate`` can take in one call; a failed batch fails its rows."""
    from pytest_mathperf.backends.hf_batch import batch_key

    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(batch_key(request), []).append(index)
    outcomes: list[Outcome | None] = [None] * len(requests)
    for indices in groups.values():
        for start in range(0, len(indices), size):
            chunk = indices[start : start + size]
            try:
                results: Sequence[Outcome] = backend.generate_batch([requests[index] for index in chunk])
            except BackendError as error:
                results = [error] * len(chunk)
            for index, result in zip(chunk, results):
                outcomes[index] = result
    return [outcome for outcome in outcomes if outcome is not None]


def _streamed(backend: Any, requests: Sequence[GenerationRequest], streams: int) -> list[Outcome]:
    """``streams`` concurrent streams on one event loop, each taking the next request when its last one ends."""
    from pytest_mathperf.backends.openai.transport import new_event_loop

    loop = new_event_loop()
    try:
        return loop.run_until_complete(_stream_all(backend, requests, streams))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _stream_all(backend: Any, requests: Sequence[GenerationRequest], streams: int) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(requests)
    queue = iter(range(len(requests)))

    async def stream(session: Any) -> None:
        for index in queue:  # a shared iterator: each stream takes the next request not yet taken
            try:
                outcomes[index] = await backend.astream(requests[index], session)
            except BackendError as error:
                outcomes[index] = error

    async with backend.new_session(max_connections=streams) as session:
        await asyncio.gather(*(stream(session) for _ in range(min(streams, len(requests)))))
    return [outcome for outcome in outcomes if outcome is not None]
