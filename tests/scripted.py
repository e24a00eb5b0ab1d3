"""A scripted backend for plugin tests whose logic does not depend on a model.

Budgets, pass rules, the unknown-card policy, selection and reporting are the plugin's own logic;
driving the real demo model through them only costs time. This backend answers arithmetic prompts
itself (or with text a test scripts), reports the timings a test sets, and is registered through
the plugin's own ``pytest_mathperf_backends`` hook, exactly as a third-party backend would be.
Real-model tests stay where a model matters (the demo gate, the served model, CUDA).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from pytest_mathperf.backends import (
    BackendError,
    BackendOptions,
    Generation,
    GenerationRequest,
    LoadInfo,
    ModelLoadError,
)

_ARITHMETIC = re.compile(r"(-?\d+)\s*([-+*])\s*(-?\d+)")


@dataclass(frozen=True)
class Script:
    """What one scripted model answers and how long it takes."""

    ttft_ms: Sequence[float] = (5.0,)  # cycled over the measured generations
    e2e_ms: Sequence[float] = (50.0,)
    output_tokens: int = 12
    answers: Mapping[str, str] = field(default_factory=dict)  # prompt substring → output text
    errors: Mapping[str, str] = field(default_factory=dict)  # prompt substring → backend error message
    timeouts: Mapping[str, float] = field(default_factory=dict)  # prompt substring → e2e_ms of a timed-out generation
    load_error: str | None = None
    in_process: bool = True
    sleep: bool = False  # really wait e2e_ms, so the host's counters see the generation's time
    counted_by_chunks: bool = False  # token counts are an estimate, as from a server that sends no usage
    batch_ttft_ms: float | None = None  # TTFT of a generation in a batch (--mathperf-concurrency); None: as alone


def arithmetic_answer(prompt: str) -> str:
    """What a model that can add and subtract says: reasoning, then the boxed result."""
    match = _ARITHMETIC.search(prompt)
    if match is None:
        return "<think>no idea</think>I cannot tell."
    left, operator, right = int(match.group(1)), match.group(2), int(match.group(3))
    value = {"+": left + right, "-": left - right, "*": left * right}[operator]
    return f"<think>{left} {operator} {right}</think>\\boxed{{{value}}}"


class ScriptedBackend:
    """Answers from a ``Script``; never loads a model, so a plugin test runs in milliseconds."""

    name: ClassVar[str] = "scripted"
    in_process: ClassVar[bool] = True
    scripts: ClassVar[Mapping[str, Script]] = {}

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.script = self.scripts.get(options.model, self.scripts.get("*", Script()))
        self._ttft: Iterator[float] = itertools.cycle(self.script.ttft_ms)
        self._e2e: Iterator[float] = itertools.cycle(self.script.e2e_ms)

    @classmethod
    def with_scripts(cls, scripts: Mapping[str, Script]) -> type[ScriptedBackend]:
        """A subclass answering with ``scripts`` (model name → Script; ``*`` for every other model)."""
        in_process = all(script.in_process for script in scripts.values())
        return type("ScriptedBackend", (cls,), {"scripts": dict(scripts), "in_process": in_process})

    def load(self) -> LoadInfo:
        if self.script.load_error:
            raise ModelLoadError(self.script.load_error)
        device = "cpu" if self.script.in_process else None
        return LoadInfo(self.options.model, "scripted", None, "float32", device, 0.01)

    def generate(self, request: GenerationRequest) -> Generation:
        prompt = request.messages[-1].content
        for part, message in self.script.errors.items():
            if part in prompt:
                raise BackendError(message)
        text = next((answer for part, answer in self.script.answers.items() if part in prompt), None)
        e2e_ms = next(self._e2e)
        if self.script.sleep:
            time.sleep(e2e_ms / 1000)
        timeout = next((e2e for part, e2e in self.script.timeouts.items() if part in prompt), None)
        return Generation(
            text=arithmetic_answer(prompt) if text is None else text,
            prompt_tokens=len(prompt.split()),
            output_tokens=self.script.output_tokens,
            reasoning_tokens=3,
            ttft_ms=next(self._ttft),
            e2e_ms=e2e_ms if timeout is None else timeout,
            finish_reason="stop" if timeout is None else "timeout",
            output_tokens_source="chunks" if self.script.counted_by_chunks else "token_ids",
        )

    def generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        """Each request as alone, its TTFT the batch's when the script sets one (answer-pass timings)."""
        generations = [self.generate(request) for request in requests]
        if self.script.batch_ttft_ms is None:
            return generations
        return [replace(generation, ttft_ms=self.script.batch_ttft_ms) for generation in generations]

    def close(self) -> None:
        pass


def conftest_source(scripts: Mapping[str, dict[str, Any]]) -> str:
    """A conftest.py registering scripted models (``Script`` keyword arguments per model name).

    It finds this module wherever it runs: inside ``pytester`` or in a gate started as a subprocess.
    """
    return (
        f"import sys\nsys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "from scripted import Script, ScriptedBackend\n\n\n"
        "def pytest_mathperf_backends():\n"
        f"    scripts = {{name: Script(**values) for name, values in {dict(scripts)!r}.items()}}\n"
        "    return {'scripted': ScriptedBackend.with_scripts(scripts)}\n"
    )
