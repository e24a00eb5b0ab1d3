"""The in-process backend's clocks and counts, on the bundled demo model (CPU).

The streamer's TTFT is cross-checked against an independent clock: a StoppingCriteria, which
``generate`` calls once per step after the new token is chosen. If a transformers release calls
streamers at another point (one step late, as its deferred stop check does on some devices), the
two disagree by a decode step and this test says so. Two clocks in one run are compared; nothing
here asserts how fast anything is.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

from pytest_mathperf.backends import BackendOptions, GenerationRequest, Message
from pytest_mathperf.backends.hf import BUNDLED_MODELS_DIR, HFBackend, resolve_model_source
from pytest_mathperf.backends.thinking import THINK_CLOSE, THINK_OPEN

QUESTIONS = ("What is 427 + 385?", "What is 705 + 583?", "What is 527 - 476?", "What is 19 + 23?", "What is 600 + 401?")


def ask(question: str, max_new_tokens: int = 48) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", question),), max_new_tokens=max_new_tokens)


@pytest.fixture(scope="module")
def demo_backend():
    backend = HFBackend(BackendOptions(model="mathperf-tiny", device="cpu"))
    backend.load()
    backend.generate(ask(QUESTIONS[0], 8))  # warm-up: first calls allocate and pick kernels
    yield backend
    backend.close()


class _StepClock:
    """A StoppingCriteria that notes when generate() finished each step; it never stops anything."""

    def __init__(self) -> None:
        self.steps: list[float] = []

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        self.steps.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def test_streamer_ttft_agrees_with_an_independent_stopping_criteria_clock(demo_backend: HFBackend) -> None:
    from transformers import StoppingCriteriaList

    model = demo_backend.model
    original_generate = model.generate
    streamer_ms: list[float] = []
    independent_ms: list[float] = []
    try:
        for question in QUESTIONS * 2:
            step_clock = _StepClock()

            def generate_with_step_clock(*args: Any, _clock: _StepClock = step_clock, **kwargs: Any) -> Any:
                return original_generate(*args, stopping_criteria=StoppingCriteriaList([_clock]), **kwargs)

            model.generate = generate_with_step_clock
            started = time.perf_counter()  # the backend's clock starts inside, a hair later
            generation = demo_backend.generate(ask(question))
            assert generation.ttft_ms is not None and step_clock.steps
            streamer_ms.append(generation.ttft_ms)
            independent_ms.append((step_clock.steps[0] - started) * 1000.0)
            assert generation.output_tokens == len(step_clock.steps)  # one stopping check per token
    finally:
        model.generate = original_generate
    streamer, independent = statistics.median(streamer_ms), statistics.median(independent_ms)
    assert abs(streamer - independent) <= 0.10 * independent, (streamer_ms, independent_ms)


def test_ttft_includes_templating_and_tokenization(demo_backend: HFBackend) -> None:
    generation = demo_backend.generate(ask(QUESTIONS[1]))
    assert generation.prepare_ms is not None and generation.ttft_ms is not None
    assert 0 < generation.prepare_ms < generation.ttft_ms <= generation.e2e_ms
    metrics = generation.metrics()
    assert metrics["prepare_ms"] == generation.prepare_ms
    assert "retries" not in metrics and generation.retries is None  # nothing in-process is retried
    assert generation.first_chunk_late is False


def test_reasoning_counted_from_token_ids_and_ttfat_measured(demo_backend: HFBackend) -> None:
    generation = demo_backend.generate(ask(QUESTIONS[0], max_new_tokens=96))
    tokenizer = demo_backend.tokenizer
    assert THINK_OPEN in generation.text and THINK_CLOSE in generation.text, generation.text
    assert generation.output_tokens_source == generation.reasoning_tokens_source == "token_ids"
    assert not generation.counts_are_estimates and generation.estimated_metrics() == frozenset()
    # The demo tokenizer has <think> and </think> as single tokens: count the ids between them.
    prompt = demo_backend.render_prompt(ask(QUESTIONS[0]))
    ids = tokenizer(prompt + generation.text, add_special_tokens=False)["input_ids"]
    open_id, close_id = tokenizer.convert_tokens_to_ids([THINK_OPEN, THINK_CLOSE])
    between = ids.index(close_id) - ids.index(open_id) - 1
    assert generation.reasoning_tokens == between > 0
    # The answer starts after </think>: later than the first token, no later than the last.
    assert generation.ttft_ms is not None and generation.ttfat_ms is not None
    assert generation.ttft_ms < generation.ttfat_ms <= generation.e2e_ms
    assert generation.metrics()["ttfat_ms"] == generation.ttfat_ms


def test_no_ttfat_while_still_thinking(demo_backend: HFBackend) -> None:
    generation = demo_backend.generate(ask(QUESTIONS[0], max_new_tokens=3))
    assert generation.finish_reason == "length" and generation.output_tokens == 3
    assert generation.text.startswith(THINK_OPEN) and THINK_CLOSE not in generation.text
    assert generation.ttfat_ms is None and "ttfat_ms" not in generation.metrics()
    assert generation.reasoning_tokens == 2  # <think> then two reasoning tokens


def test_a_timeout_already_spent_before_the_prefill_stops_the_generation_there() -> None:
    from pytest_mathperf.backends import BackendOptions, GenerationRequest, Message
    from pytest_mathperf.backends.hf import HFBackend

    backend = HFBackend(BackendOptions(model="mathperf-tiny", device="cpu"))
    backend.load()
    try:
        request = GenerationRequest(messages=(Message("user", "What is 705 + 583?"),), max_new_tokens=64, timeout_s=1e-9)
        generation = backend.generate(request)
    finally:
        backend.close()
    assert generation.finish_reason == "timeout" and generation.output_tokens == 0 and generation.ttft_ms is None


def test_a_sampled_generation_is_reproduced_by_its_seed(demo_backend: HFBackend) -> None:
    def sample(seed: int) -> str:
        request = GenerationRequest(
            messages=(Message("user", "What is 427 + 385?"),), max_new_tokens=24, temperature=5.0, top_p=1.0, seed=seed
        )
        return demo_backend.generate(request).text

    first = sample(7)
    assert sample(7) == first
    # a temperature this high makes even the demo model's sharp choices differ from seed to seed
    assert len({sample(seed) for seed in range(1, 5)} | {first}) > 1
    # in between, a greedy generation draws nothing and leaves the seeding to the sampled ones
    demo_backend.generate(ask(QUESTIONS[1], 8))
    assert sample(7) == first


def test_the_load_time_is_the_weights_alone() -> None:
    import gc

    import transformers.models.qwen2.modeling_qwen2  # noqa: F401 - loaded before the clock in any case

    backend = HFBackend(BackendOptions(model="mathperf-tiny", device="cpu"))
    enabled = gc.isenabled()
    try:
        info = backend.load()
        assert gc.isenabled() == enabled  # paused for the load only
        assert info.load_s > 0
        assert backend.tokenizer is not None and backend.model is not None
    finally:
        backend.close()


def test_a_path_names_a_folder_and_a_bare_name_the_bundled_model(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = str(BUNDLED_MODELS_DIR / "mathperf-tiny")
    monkeypatch.chdir(tmp_path)  # "." is this folder, never the bundled models' folder
    assert resolve_model_source(".") == (str(tmp_path.resolve()), True)
    assert resolve_model_source("mathperf-tiny") == (bundled, True)
    (tmp_path / "mathperf-tiny").mkdir()
    assert resolve_model_source("./mathperf-tiny") == (str((tmp_path / "mathperf-tiny").resolve()), True)
    assert resolve_model_source("org/name") == ("org/name", False)  # a hub id, from the cache
