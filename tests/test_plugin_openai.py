"""The gate through a real OpenAI-compatible server on loopback (`transformers serve` with the demo model)."""

from __future__ import annotations

import pytest
from conftest import ARITHMETIC_SUITE, write


def verdicts(run, slug: str) -> dict[str, tuple[str, str]]:
    found = {}
    for name in ("add", "sub", "sub-en"):
        properties = run.properties(f"::{name}[{slug}]")
        found[name] = (properties["mathperf.verdict"], properties["mathperf.extracted"])
    return found


def test_served_model_gets_the_same_verdicts_beside_the_in_process_one(pytester, run_gate, served_model) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_gate(f"--mathperf-model=openai:{served_model.model}", "--mathperf-endpoint", served_model.base_url)
    run.result.assert_outcomes(passed=6)
    expected = {"add": ("correct", "1288"), "sub": ("correct", "-384"), "sub-en": ("correct", "51")}
    assert verdicts(run, "mathperf-tiny") == verdicts(run, "mathperf-tiny-openai") == expected
    header = next(line for line in run.output.splitlines() if line.startswith(" ") and "openai:" in line)
    assert header.split() == ["mathperf-tiny", f"openai:{served_model.model}"]
    run.result.stdout.fnmatch_lines(["RSS peak (GB) *–", "TTFT p50 (ms) *", "TTFAT p50 (ms) *"])
    served = run.properties("::add[mathperf-tiny-openai]")
    assert 0 < float(served["ttft_ms"]) <= float(served["ttfat_ms"]) <= float(served["e2e_ms"])
    in_process = run.properties("::add[mathperf-tiny]")  # the streamer measures TTFAT in-process too
    assert 0 < float(in_process["ttft_ms"]) <= float(in_process["ttfat_ms"]) <= float(in_process["e2e_ms"])


def test_load_profile_reports_and_gates_on_its_figures(pytester, run_gate, served_model) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE + "load: {users: 4, requests: 8}\n")
    write(
        pytester,
        "thresholds.yaml",
        f"""
        version: 1
        cards:
          cpu:
            models:
              "{served_model.model}":
                load.success_rate: {{min: 1.0}}
                load.e2e_ms: {{p95: {{max: 600000}}}}
                load.requests_per_s: {{min: 1000000}}
                vram_peak_gb: {{max: 1}}
        """,
    )
    run = run_gate(
        "--mathperf-backend", "openai", "--mathperf-endpoint", served_model.base_url, "-rs", model=served_model.model
    )
    run.result.assert_outcomes(passed=6, failed=1, skipped=1)
    load = run.properties("::load[")
    assert load["mathperf.load"] == "4 users, 8 requests"
    assert float(load["load.success_rate"]) == 1.0 and float(load["load.requests"]) == 8
    assert float(load["load.e2e_ms.p95"]) >= float(load["load.e2e_ms.p50"]) > 0
    run.result.stdout.fnmatch_lines(
        [
            "*budget load.requests_per_s failed for *",
            "*measured : * req/s over 1 samples",
            "*budget   : ≥ 1000000 req/s*",
        ]
    )
    assert "its memory is the server's, not measured here" in run.output
    run.result.stdout.fnmatch_lines(["load: success rate *100.0%"])


def test_a_dead_server_is_one_error_for_the_model(pytester, run_gate, closed_port_url) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    # one retry, after 0.5 s: the default three would wait 3.5 s for a server that is not coming
    run = run_gate(
        "--mathperf-backend", "openai", "--mathperf-endpoint", closed_port_url, "--mathperf-retries", "1", model="served-tiny"
    )
    run.result.assert_outcomes(failed=1, skipped=2)
    run.result.stdout.fnmatch_lines(
        [f"*model served-tiny did not load: cannot reach {closed_port_url}: connection refused (tried 2 times)*"]
    )
    assert "Traceback" not in run.output
    negative = run_gate("--mathperf-backend", "openai", "--mathperf-endpoint", closed_port_url, "--mathperf-retries", "-1")
    assert negative.result.ret == pytest.ExitCode.USAGE_ERROR
    negative.result.stderr.fnmatch_lines(["*--mathperf-retries: must be at least 0, got -1*"])


def test_openai_backend_needs_an_endpoint(pytester, run_gate) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_gate("--mathperf-backend", "openai")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["*--mathperf-backend openai needs --mathperf-endpoint URL*"])
