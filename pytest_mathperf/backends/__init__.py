"""The backend protocol: how the gate loads a model and asks it for one generation.

A backend is found by name: the built-in ``hf`` (transformers, in-process) and ``openai``
(an OpenAI-compatible server), any third-party class registered under the
``pytest_mathperf.backends`` entry-point group, or one returned by a ``pytest_mathperf_backends``
hook (a conftest or plugin), so a new engine plugs in without editing ours.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "timeout"]

ENTRY_POINT_GROUP = "pytest_mathperf.backends"
BUILTIN_BACKENDS: dict[str, str] = {
    "hf": "pytest_mathperf.backends.hf:HFBackend",
    "openai": "pytest_mathperf.backends.openai:OpenAIBackend",
}


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """One generation, with the case's sampling settings; the backend applies the chat template."""

    messages: tuple[Message, ...]
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float | None = None
    seed: int = 0
    timeout_s: float | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


#: Where a token count came from. ``token_ids``: the generated ids, in-process; ``usage``: the
#: server's own count; ``tokenizer``: the streamed text re-tokenized with the model's tokenizer;
#: ``chunks``: one token per streamed chunk, an estimate (servers may put several tokens in a chunk,
#: or send none for a tag their reasoning parser swallows).
TokenCountSource = Literal["token_ids", "usage", "tokenizer", "chunks"]
ESTIMATED_SOURCES: frozenset[str] = frozenset({"chunks"})
#: Metrics whose value rests on the output token count (and so on its source).
OUTPUT_COUNT_METRICS: tuple[str, ...] = ("tpot_ms", "tokens_per_s", "decode_tokens_per_s", "output_tokens")


@dataclass(frozen=True)
class Generation:
    """What one generation produced and how long it took.

    Both clocks start when the backend begins work on the request, before the chat template is
    applied (in-process by us, over HTTP by the server), and stop when a token is on this host:
    ``ttft_ms`` at the first generated token, ``ttfat_ms`` at the first answer token after the
    reasoning, ``e2e_ms`` at the last. Over HTTP they start at the attempt that succeeded; time
    lost to earlier attempts and back-off is ``retry_wait_ms``, not latency.
    """

    text: str
    prompt_tokens: int
    output_tokens: int
    reasoning_tokens: int
    ttft_ms: float | None  # None when not a single token arrived
    e2e_ms: float
    finish_reason: FinishReason
    output_tokens_source: TokenCountSource = "token_ids"
    reasoning_tokens_source: TokenCountSource = "token_ids"
    ttfat_ms: float | None = None  # None when the answer never started (still inside <think>)
    prepare_ms: float | None = None  # in-process: templating + tokenization, inside ttft_ms; None over HTTP
    retries: int | None = None  # attempts that failed before the one measured; None where nothing is retried
    retry_wait_ms: float = 0.0  # first attempt sent -> the measured attempt sent (failed attempts + back-off)
    #: True when the first streamed chunk is known to carry the second token (the server sent no chunk
    #: for an opening ``<think>``), so ttft_ms is one decode step late; False when it carries the first
    #: token; None when the stream cannot tell.
    first_chunk_late: bool | None = None
    extra_metrics: Mapping[str, float] = field(default_factory=dict)  # a third-party backend's own metrics
    served_model: str | None = None  # the model id a server says answered (its stream's "model"); None in-process

    @property
    def tpot_ms(self) -> float | None:
        if self.ttft_ms is None or self.output_tokens < 2:
            return None
        return (self.e2e_ms - self.ttft_ms) / (self.output_tokens - 1)

    @property
    def tokens_per_s(self) -> float | None:
        return self.output_tokens / (self.e2e_ms / 1000.0) if self.e2e_ms > 0 else None

    @property
    def decode_tokens_per_s(self) -> float | None:
        if self.ttft_ms is None or self.output_tokens < 2 or self.e2e_ms <= self.ttft_ms:
            return None
        return (self.output_tokens - 1) / ((self.e2e_ms - self.ttft_ms) / 1000.0)

    @property
    def counts_are_estimates(self) -> bool:
        """Whether any token count here is an estimate, so token-derived budgets may refuse it."""
        return bool({self.output_tokens_source, self.reasoning_tokens_source} & ESTIMATED_SOURCES)

    def estimated_metrics(self) -> frozenset[str]:
        """Names in :meth:`metrics` whose value rests on an estimated token count."""
        names: set[str] = set()
        if self.output_tokens_source in ESTIMATED_SOURCES:
            names.update(OUTPUT_COUNT_METRICS)
        if self.reasoning_tokens_source in ESTIMATED_SOURCES:
            names.add("reasoning_tokens")
        return frozenset(names)

    def metrics(self) -> dict[str, float]:
        """Every per-generation metric that has a value, by its metric name."""
        values: dict[str, float | None] = {
            "ttft_ms": self.ttft_ms,
            "ttfat_ms": self.ttfat_ms,
            "tpot_ms": self.tpot_ms,
            "e2e_ms": self.e2e_ms,
            "tokens_per_s": self.tokens_per_s,
            "decode_tokens_per_s": self.decode_tokens_per_s,
            "output_tokens": float(self.output_tokens),
            "prompt_tokens": float(self.prompt_tokens),
            "reasoning_tokens": float(self.reasoning_tokens),
            "prepare_ms": self.prepare_ms,
            "retries": None if self.retries is None else float(self.retries),
            "retry_wait_ms": None if self.retries is None else self.retry_wait_ms,
            **self.extra_metrics,
        }
        return {name: float(value) for name, value in values.items() if value is not None}

    def facts(self) -> dict[str, str]:
        """What is known about how the numbers were taken, kept beside them in every record."""
        facts = {"output_tokens_source": self.output_tokens_source, "reasoning_tokens_source": self.reasoning_tokens_source}
        if self.first_chunk_late is not None:
            facts["first_chunk_late"] = "yes" if self.first_chunk_late else "no"
        estimated = self.estimated_metrics()
        if estimated:
            facts["estimated_metrics"] = ",".join(sorted(estimated))
        if self.served_model is not None:
            facts["served_model"] = self.served_model
        return facts


@dataclass(frozen=True)
class BackendOptions:
    """What the user asked for on the command line, as one backend sees it."""

    model: str
    device: str = "auto"
    dtype: str = "auto"
    endpoint: str | None = None
    retries: int = 3  # of a request that failed before its first byte, for backends that send requests


@dataclass(frozen=True)
class LoadInfo:
    """What was loaded, recorded with every run so that a result can be reproduced."""

    model: str
    source: str  # local folder, cache snapshot or endpoint the model came from
    revision: str | None
    dtype: str
    device: str | None  # the torch device holding the weights; None when the model is remote
    load_s: float
    details: Mapping[str, str] = field(default_factory=dict)


class BackendError(Exception):
    """One generation failed (OOM, timeout, HTTP error); its case gets the verdict `error`."""


class OutOfMemory(BackendError):
    """The device ran out of memory during one generation; the next cases can still run."""


class GenerationTimeout(BackendError):
    """A generation ran past the case's ``timeout_s``."""


class ModelLoadError(Exception):
    """The model cannot be loaded or reached at all: one clear error for every case of it."""


@runtime_checkable
class Backend(Protocol):
    """Loads one model once per session and runs generations on it, one at a time.

    ``in_process`` says whether the model runs in this process: then its card and memory are
    measured here; a served model's are the server's.
    """

    name: ClassVar[str]
    in_process: ClassVar[bool]

    def load(self) -> LoadInfo: ...

    def generate(self, request: GenerationRequest) -> Generation: ...

    def close(self) -> None: ...


#: Backends added for this process by the ``pytest_mathperf_backends`` hook (see the plugin).
_hook_backends: dict[str, type[Any]] = {}


def use_hook_backends(backends: Mapping[str, type[Any]]) -> None:
    """The backends this session's ``pytest_mathperf_backends`` hooks returned (replacing the last session's)."""
    shadowing = sorted(set(backends) & set(BUILTIN_BACKENDS))
    if shadowing:
        raise ValueError(f"backend {shadowing[0]!r} is built in; register yours under another name")
    _hook_backends.clear()
    _hook_backends.update(backends)


@functools.cache
def _entry_point_names() -> frozenset[str]:
    """Read once: scanning installed distributions costs milliseconds, and specs are split often."""
    return frozenset(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def backend_names() -> list[str]:
    """Built-in, entry-point and hook backends: what a model spec's prefix may name."""
    return sorted(set(BUILTIN_BACKENDS) | set(_hook_backends) | _entry_point_names())


def split_model_spec(spec: str, default_backend: str) -> tuple[str, str]:
    """``openai:NAME`` names a model behind a backend other than the session's default.

    So one run can put a served model beside an in-process one. Only a registered backend name
    counts as a prefix; hub ids and folders keep any colon they have.
    """
    prefix, colon, name = spec.partition(":")
    if colon and name and prefix in backend_names():
        return prefix, name
    return default_backend, spec


def backend_class(name: str) -> type[Any]:
    """The class of the backend called ``name``; imported only now, so the plugin stays light."""
    if name in BUILTIN_BACKENDS:
        module_name, _, class_name = BUILTIN_BACKENDS[name].partition(":")
        return getattr(importlib.import_module(module_name), class_name)
    if name in _hook_backends:
        return _hook_backends[name]
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        raise ValueError(f"--mathperf-backend: unknown backend {name!r}; available: {', '.join(backend_names())}")
    return matches[0].load()


def create_backend(name: str, options: BackendOptions) -> Backend:
    return backend_class(name)(options)
