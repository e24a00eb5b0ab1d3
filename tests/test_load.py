"""Load profiles: many concurrent streams from one event loop, against real servers on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from servers import ScriptedServer, ServedModel

from pytest_mathperf.backends import BackendOptions, GenerationRequest, Message
from pytest_mathperf.backends.openai import OpenAIBackend, OpenAISettings
from pytest_mathperf.load import LoadProfile, LoadResult, run_load
from pytest_mathperf.metrics import statistic
from pytest_mathperf.thresholds import evaluate, load_thresholds

QUICK = OpenAISettings(first_byte_timeout_s=5.0, read_timeout_s=5.0, retries=1, backoff_s=0.01)


def prompts(*questions: str, max_new_tokens: int = 64) -> list[GenerationRequest]:
    return [GenerationRequest(messages=(Message("user", q),), max_new_tokens=max_new_tokens) for q in questions]


@pytest.fixture
def scripted_backend(scripted_server: ScriptedServer):
    backend = OpenAIBackend(BackendOptions(model="scripted-model", endpoint=scripted_server.base_url), QUICK)
    yield backend
    backend.close()


# ---- the profile -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"users": 0, "requests": 1}, "load.users must be a whole number >= 1"),
        ({"users": 2}, "exactly one of duration_s or requests"),
        ({"users": 2, "requests": 4, "duration_s": 1.0}, "exactly one of duration_s or requests"),
        ({"users": 2, "requests": 0}, "load.requests must be a whole number from 1"),
        ({"users": 2, "duration_s": -1.0}, "load.duration_s must be > 0"),
        ({"users": 2, "requests": 4, "ramp_s": -1.0}, "load.ramp_s must be >= 0"),
        ({"users": 2, "duration_s": 1.0, "ramp_s": 2.0}, "longer than load.duration_s"),
    ],
)
def test_profile_validation(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoadProfile(**arguments)  # type: ignore[arg-type]


def test_users_ramp_up_linearly() -> None:
    profile = LoadProfile(users=4, requests=8, ramp_s=2.0)
    assert [profile.start_offset_s(user) for user in range(4)] == [0.0, 0.5, 1.0, 1.5]
    assert profile.describe() == "4 users, 8 requests, ramp 2 s"


# ---- against the scripted server ---------------------------------------------------------------


def test_request_count_profile_cycles_through_the_prompts(scripted_backend: OpenAIBackend) -> None:
    result = run_load(scripted_backend, LoadProfile(users=64, requests=300), prompts("a?", "b?", "c?"))
    assert len(result.records) == 300 and result.success_rate == 1.0
    assert [record.prompt_index for record in result.records] == [index % 3 for index in range(300)]
    assert len({record.user for record in result.records}) == 64
    metrics = result.metrics()
    assert metrics["load.success_rate"] == 1.0 and metrics["load.failed"] == 0
    assert metrics["load.e2e_ms.p50"] <= metrics["load.e2e_ms.p95"] <= metrics["load.e2e_ms.p99"]
    assert metrics["load.ttft_ms.p50"] <= metrics["load.e2e_ms.p50"]
    assert metrics["load.requests_per_s"] > 0 and metrics["load.tokens_per_s"] > 0
    # Budgets apply their statistic to the samples, as thresholds.yaml spells it.
    samples = result.samples()
    assert statistic(samples["load.e2e_ms"], "p95") == metrics["load.e2e_ms.p95"]
    assert result.budget_samples("load.e2e_ms") == samples["load.e2e_ms"]
    assert result.budget_samples("load.success_rate") == [1.0]
    assert len(samples["load.e2e_ms"]) == 300
    # The client measured itself: its whole CPU time, spread over the requests it issued.
    assert result.client_cpu_s > 0
    assert metrics["load.client_cpu_ms_per_request"] == result.client_cpu_s * 1000 / 300
    assert metrics["load.retries"] == 0


def test_budgets_spelled_as_in_the_issue_evaluate_a_load_result(scripted_backend: OpenAIBackend, tmp_path: Path) -> None:
    thresholds_file = tmp_path / "thresholds.yaml"
    thresholds_file.write_text(
        "version: 1\n"
        "cards:\n"
        "  cpu:\n"
        "    models:\n"
        "      scripted-model:\n"
        "        load.success_rate: {min: 1.0}\n"
        "        load.e2e_ms: {p95: {max: 890}}\n"
        "        load.tokens_per_s: {min: 1000000}\n",
        "utf-8",
    )
    budgets = load_thresholds(thresholds_file).budgets_for("cpu", "scripted-model", ["load"])
    assert budgets is not None
    result = run_load(scripted_backend, LoadProfile(users=8, requests=16), prompts("a?"))
    outcomes = {budget.name: evaluate(budget, result.budget_samples(budget.metric)) for budget in budgets}
    assert set(outcomes) == {"load.success_rate", "load.e2e_ms.p95", "load.tokens_per_s"}
    assert outcomes["load.success_rate"].passed and outcomes["load.success_rate"].measured == 1.0
    assert outcomes["load.e2e_ms.p95"].passed and outcomes["load.e2e_ms.p95"].samples == 16
    assert not outcomes["load.tokens_per_s"].passed  # a million tokens/s is out of reach


def test_duration_profile_stops_issuing_at_the_deadline(
    scripted_server: ScriptedServer, scripted_backend: OpenAIBackend
) -> None:
    scripted_server.script.delay_s = 0.01  # about 60 ms per request
    started = time.perf_counter()
    result = run_load(scripted_backend, LoadProfile(users=8, duration_s=0.3, ramp_s=0.1), prompts("a?"))
    elapsed = time.perf_counter() - started
    assert 0.3 <= elapsed < 0.3 + 1.0  # the streams in flight finish, nothing new starts
    assert result.success_rate == 1.0
    assert max(record.started_s for record in result.records) < 0.3
    first_start = {}
    for record in result.records:
        first_start.setdefault(record.user, record.started_s)
    assert first_start[7] >= 0.1 * 7 / 8 - 0.01  # the last user waited for its ramp
    assert len(result.records) > 8  # users went on issuing requests until the deadline


def test_failures_are_counted_with_their_messages(scripted_server: ScriptedServer, scripted_backend: OpenAIBackend) -> None:
    scripted_server.script.mode = "drop"
    result = run_load(scripted_backend, LoadProfile(users=4, requests=8), prompts("a?"))
    assert result.success_rate == 0.0
    metrics = result.metrics()
    assert metrics["load.failed"] == 8 and "load.e2e_ms.p95" not in metrics
    assert result.errors() == [
        f"8× stream from {scripted_server.base_url}/chat/completions cut off after 3 chunks: "
        "the server closed the connection before the body was complete"
    ]


def test_busy_server_retries_show_in_the_records(scripted_server: ScriptedServer, scripted_backend: OpenAIBackend) -> None:
    scripted_server.script.mode = "flaky"
    scripted_server.script.failures = 1
    result = run_load(scripted_backend, LoadProfile(users=1, requests=3), prompts("a?"))
    assert result.success_rate == 1.0
    assert [record.retries for record in result.records] == [1, 0, 0]
    assert result.records[0].retry_wait_ms > 0 and result.records[1].retry_wait_ms == 0
    assert result.metrics()["load.retries"] == 1


# ---- against transformers serve ----------------------------------------------------------------


def test_32_users_through_transformers_serve(served_model: ServedModel) -> None:
    backend = OpenAIBackend(BackendOptions(model=served_model.model, endpoint=served_model.base_url))
    backend.load()
    questions = [f"What is {a} + {b}?" for a, b in ((427, 385), (105, 768), (19, 23), (600, 401))]
    result: LoadResult = run_load(backend, LoadProfile(users=32, requests=32), prompts(*questions, max_new_tokens=16))
    backend.close()
    assert result.success_rate == 1.0, result.errors()
    metrics = result.metrics()
    assert 0 < metrics["load.ttft_ms.p50"] <= metrics["load.e2e_ms.p50"]
    assert metrics["load.e2e_ms.p50"] <= metrics["load.e2e_ms.p95"] <= metrics["load.e2e_ms.p99"]
    assert all(record.ttft_ms is not None and record.ttft_ms <= record.e2e_ms for record in result.records)
    assert metrics["load.tokens_per_s"] > 0
    assert sum(record.output_tokens for record in result.records) > 32
    # The client's CPU per request is reported (the benchmark compares it with locust's).
    assert metrics["load.client_cpu_ms_per_request"] > 0
