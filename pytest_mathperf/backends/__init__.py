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


@dataclass(frozen=True)
class Generation:
    """What one generation produced and how long it took (the README's metric table defines every field)."""

    text: str
    prompt_tokens: int
    output_tokens: int
    reasoning_tokens: int
    ttft_ms: float | None  # None when not a single token arrived
    e2e_ms: float
    finish_reason: FinishReason
    token_count_source: Literal["tokenizer", "usage", "chunks"] = "tokenizer"  # chunks: an estimate, one per streamed chunk
    extra_metrics: Mapping[str, float] = field(default_factory=dict)  # e.g. ttfat_ms over HTTP

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

    def metrics(self) -> dict[str, float]:
        """Every per-generation metric that has a value, under its registered name (see metrics.py)."""
        values: dict[str, float | None] = {
            "ttft_ms": self.ttft_ms,
            "tpot_ms": self.tpot_ms,
            "e2e_ms": self.e2e_ms,
            "tokens_per_s": self.tokens_per_s,
            "decode_tokens_per_s": self.decode_tokens_per_s,
            "output_tokens": float(self.output_tokens),
            "prompt_tokens": float(self.prompt_tokens),
            "reasoning_tokens": float(self.reasoning_tokens),
            **self.extra_metrics,
        }
        return {name: float(value) for name, value in values.items() if value is not None}

    def facts(self) -> dict[str, str]:
        """What is known about how the numbers were taken, kept beside them in every record."""
        return {"token_count_source": self.token_count_source}


@dataclass(frozen=True)
class BackendOptions:
    """What the user asked for on the command line, as one backend sees it."""

    model: str
    device: str = "auto"
    dtype: str = "auto"
    endpoint: str | None = None


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
