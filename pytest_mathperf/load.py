"""Load profiles: many concurrent users streaming from a served model, as a production service sees it.

A suite's ``load:`` block (``users``, ``duration_s`` or ``requests``, ``ramp_s``) becomes a
:class:`LoadProfile`; :func:`run_load` drives that many concurrent streams from one asyncio event
loop, cycling through the suite's prompts, and returns a :class:`LoadResult` whose metrics
budgets check (``load.success_rate: {min: 1.0}``, ``load.e2e_ms: {p95: {max: 890}}``).

The client measures itself too: the CPU time this process spent per request (HTTP, event loop,
parsing and bookkeeping together), its CPU share and the event loop's lag, so a report can show
that the numbers are the server's and not the client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_mathperf.backends import BackendError, GenerationRequest
from pytest_mathperf.metrics import LOAD_METRICS, statistic

if TYPE_CHECKING:
    from pytest_mathperf.backends import Generation
    from pytest_mathperf.backends.openai import OpenAIBackend
    from pytest_mathperf.server_resources import ServerResources

#: Metrics of a load profile, with their units; per-request ones keep their samples for budgets.
#: Statistics reported for each sampled metric (budgets may use any of metrics.STATISTICS).
REPORTED_STATISTICS: tuple[str, ...] = ("mean", "p50", "p95", "p99")
#: No profile issues more requests than this, whatever its duration.
MAX_REQUESTS = 1_000_000
#: How often the event loop's lag is sampled. Every 10 ms cost the idle client 8 ms of CPU per second;
#: through a slow server each timer wake-up costs as much as a streamed chunk, so sample sparingly.
LOOP_LAG_INTERVAL_S = 0.25
#: Past these, the client may be what limits the measured latencies (see LoadResult.client_warning).
CLIENT_BUSY_CPU_SHARE = 0.8
CLIENT_BUSY_LAG_MS = 50.0


@dataclass(frozen=True)
class LoadProfile:
    """How many users, for how long (or how many requests), ramped up over how many seconds."""

    users: int
    duration_s: float | None = None
    requests: int | None = None
    ramp_s: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.users, int) or isinstance(self.users, bool) or self.users < 1:
            raise ValueError(f"load.users must be a whole number >= 1, got {self.users!r}")
        if (self.duration_s is None) == (self.requests is None):
            raise ValueError("load: give exactly one of duration_s or requests")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"load.duration_s must be > 0, got {self.duration_s!r}")
        whole = isinstance(self.requests, int) and not isinstance(self.requests, bool)
        if self.requests is not None and not (whole and 1 <= self.requests <= MAX_REQUESTS):
            raise ValueError(f"load.requests must be a whole number from 1 to {MAX_REQUESTS}, got {self.requests!r}")
        if not (math.isfinite(self.ramp_s) and self.ramp_s >= 0):
            raise ValueError(f"load.ramp_s must be >= 0, got {self.ramp_s!r}")
        if self.duration_s is not None and self.ramp_s > self.duration_s:
            raise ValueError(f"load.ramp_s ({self.ramp_s:g}) is longer than load.duration_s ({self.duration_s:g})")

    def start_offset_s(self, user: int) -> float:
        """When user number ``user`` (0-based) starts: linearly spread over ``ramp_s``."""
        return self.ramp_s * user / self.users

    def describe(self) -> str:
        amount = f"{self.duration_s:g} s" if self.duration_s is not None else f"{self.requests} requests"
        ramp = f", ramp {self.ramp_s:g} s" if self.ramp_s else ""
        return f"{self.users} users, {amount}{ramp}"


@dataclass(frozen=True)
class LoadRecord:
    """One request of a load run."""

    index: int  # order in which requests were issued
    user: int
    prompt_index: int
    started_s: float  # since the run began
    ok: bool
    error: str | None
    e2e_ms: float
    ttft_ms: float | None
    output_tokens: int
    finish_reason: str | None
    retries: int
    retry_wait_ms: float  # failed attempts and back-off before the measured attempt


@dataclass(frozen=True)
class LoadResult:
    """Everything one load profile measured; ``samples()`` and ``metrics()`` feed budgets and reports."""

    profile: LoadProfile
    records: tuple[LoadRecord, ...]
    wall_s: float  # first request issued -> last one finished
    client_cpu_s: float  # CPU time of this whole process during the run (HTTP, event loop, ours)
    loop_lag_ms: tuple[float, ...]  # how late a 250 ms timer fired: a busy client shows here first
    server: ServerResources | None = None  # the server's CPU, memory and card while it ran, where sampled

    @property
    def succeeded(self) -> tuple[LoadRecord, ...]:
        return tuple(record for record in self.records if record.ok)

    @property
    def failed(self) -> tuple[LoadRecord, ...]:
        return tuple(record for record in self.records if not record.ok)

    @property
    def success_rate(self) -> float:
        return len(self.succeeded) / len(self.records) if self.records else 0.0

    @property
    def requests_per_s(self) -> float:
        return len(self.succeeded) / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        """Aggregate output tokens per second of all successful streams together."""
        return sum(record.output_tokens for record in self.succeeded) / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def client_cpu_share(self) -> float:
        """CPU time of the client over the wall time: near 1.0 means one core is saturated."""
        return self.client_cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def client_cpu_ms_per_request(self) -> float:
        """The client's whole CPU cost of one request: process CPU time over requests issued."""
        return self.client_cpu_s * 1000.0 / len(self.records) if self.records else 0.0

    def samples(self) -> dict[str, list[float]]:
        """Per-request values, under the names budgets use; apply ``metrics.statistic`` to them."""
        ok = self.succeeded
        return {
            "load.e2e_ms": [record.e2e_ms for record in ok],
            "load.ttft_ms": [record.ttft_ms for record in ok if record.ttft_ms is not None],
            "load.loop_lag_ms": list(self.loop_lag_ms),
            **({name: list(values) for name, values in self.server.samples.items()} if self.server else {}),
        }

    def budget_samples(self, metric: str) -> list[float]:
        """What ``thresholds.evaluate`` takes for ``metric``: the per-request samples, or the one value."""
        samples = self.samples()
        if metric in samples:
            return samples[metric]
        values = self.metrics()
        if metric not in values:
            raise KeyError(f"unknown load metric {metric!r}; expected one of {', '.join(LOAD_METRICS)}")
        return [values[metric]]

    def metrics(self) -> dict[str, float]:
        """Flat values for reports and history: ``load.e2e_ms.p95`` and so on; empty samples are left out."""
        values: dict[str, float] = {
            "load.success_rate": self.success_rate,
            "load.requests": float(len(self.records)),
            "load.failed": float(len(self.failed)),
            "load.requests_per_s": self.requests_per_s,
            "load.tokens_per_s": self.tokens_per_s,
            "load.client_cpu_share": self.client_cpu_share,
            "load.client_cpu_ms_per_request": self.client_cpu_ms_per_request,
            "load.retries": float(sum(record.retries for record in self.records)),
        }
        for name, samples in self.samples().items():
            if samples:
                for stat in REPORTED_STATISTICS:
                    values[f"{name}.{stat}"] = statistic(samples, stat)
        return values

    def client_warning(self) -> str | None:
        """A line for the report when the client, not the server, may have set the pace; None when not."""
        lag = statistic(self.loop_lag_ms, "p99") if self.loop_lag_ms else 0.0
        if self.client_cpu_share < CLIENT_BUSY_CPU_SHARE and lag < CLIENT_BUSY_LAG_MS:
            return None
        return (
            f"the load client was busy ({self.client_cpu_share:.0%} of a core, event-loop lag p99 {lag:.0f} ms): "
            "latencies include client queuing; use fewer users or a faster machine for the client"
        )

    def errors(self, limit: int = 5) -> list[str]:
        """The most frequent failure messages, with their counts, for a failing budget's message."""
        counts: dict[str, int] = {}
        for record in self.failed:
            message = record.error or "unknown error"
            counts[message] = counts.get(message, 0) + 1
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:limit]
        return [f"{count}× {message}" for message, count in ranked]


def run_load(
    backend: OpenAIBackend, profile: LoadProfile, requests: Sequence[GenerationRequest]
) -> LoadResult:
    """Run ``profile`` against ``backend``'s server, cycling through ``requests``; blocks until done.

    Bounded: a request-count profile issues exactly ``profile.requests``; a duration profile stops
    issuing at ``duration_s`` and waits for the streams in flight, each bounded by its timeout.
    """
    if not requests:
        raise ValueError("run_load needs at least one request to cycle through")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("run_load() is synchronous: call it from a thread without a running event loop")
    from pytest_mathperf.backends.openai.transport import new_event_loop

    loop = new_event_loop()
    try:
        return loop.run_until_complete(_run_load(backend, profile, tuple(requests)))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class _Issuer:
    """Hands out request numbers to users until the profile's count or duration is used up."""

    def __init__(self, profile: LoadProfile, started: float) -> None:
        self.limit = profile.requests if profile.requests is not None else MAX_REQUESTS
        self.deadline = started + profile.duration_s if profile.duration_s is not None else math.inf
        self.issued = 0

    def next(self) -> int | None:
        if self.issued >= self.limit or time.perf_counter() >= self.deadline:
            return None
        self.issued += 1
        return self.issued - 1


async def _run_load(
    backend: OpenAIBackend, profile: LoadProfile, requests: tuple[GenerationRequest, ...]
) -> LoadResult:
    records: list[LoadRecord] = []
    lags: list[float] = []
    running = True

    async def watch_loop_lag() -> None:
        for _ in range(100_000_000):  # ends with the run; the bound only guards against a runaway
            expected = time.perf_counter() + LOOP_LAG_INTERVAL_S
            await asyncio.sleep(LOOP_LAG_INTERVAL_S)
            if not running:
                return
            lags.append(max(0.0, (time.perf_counter() - expected) * 1000.0))

    started = time.perf_counter()
    cpu_started = time.process_time()
    issuer = _Issuer(profile, started)

    async def user(number: int) -> None:
        await asyncio.sleep(profile.start_offset_s(number))
        # One session and connection per user, like real users: each keeps its connection alive.
        async with backend.new_session(max_connections=1) as session:
            for _ in range(MAX_REQUESTS):
                index = issuer.next()
                if index is None:
                    return
                prompt_index = index % len(requests)
                issued_at = time.perf_counter()
                try:
                    result: Generation | BackendError = await backend.astream(requests[prompt_index], session)
                except BackendError as exc:
                    result = exc
                records.append(_record(index, number, prompt_index, issued_at - started, issued_at, result))

    watcher = asyncio.ensure_future(watch_loop_lag())
    try:
        await asyncio.gather(*(user(number) for number in range(profile.users)))
    finally:
        running = False
        watcher.cancel()  # not worth a last sleep
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    wall_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    records.sort(key=lambda record: record.index)
    return LoadResult(profile, tuple(records), wall_s, cpu_s, tuple(lags))


def _record(
    index: int, user: int, prompt_index: int, started_s: float, issued_at: float, result: Generation | BackendError
) -> LoadRecord:
    if isinstance(result, BackendError):
        return LoadRecord(
            index, user, prompt_index, started_s, ok=False, error=str(result),
            e2e_ms=(time.perf_counter() - issued_at) * 1000.0, ttft_ms=None, output_tokens=0, finish_reason=None,
            retries=0, retry_wait_ms=0.0,
        )  # fmt: skip
    return LoadRecord(
        index, user, prompt_index, started_s, ok=True, error=None, e2e_ms=result.e2e_ms,
        ttft_ms=result.ttft_ms, output_tokens=result.output_tokens, finish_reason=result.finish_reason,
        retries=result.retries or 0, retry_wait_ms=result.retry_wait_ms,
    )  # fmt: skip
