"""The gate through a real OpenAI-compatible server on loopback (`transformers serve` with the demo model)."""

from __future__ import annotations

import pytest
from conftest import ARITHMETIC_SUITE, write


def verdicts(run) -> dict[str, tuple[str, str]]:
    names = ("add", "sub", "sub-en")
    return {
        name: (run.properties(f"::{name}[")["mathperf.verdict"], run.properties(f"::{name}[")["mathperf.extracted"])
        for name in names
    }


def test_served_model_gets_the_same_verdicts_as_in_process(pytester, run_gate, served_model) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    in_process = run_gate()
    in_process.result.assert_outcomes(passed=3)
    served = run_gate(
        "--mathperf-backend", "openai", "--mathperf-endpoint", served_model.base_url, model=served_model.model
    )
    served.result.assert_outcomes(passed=3)
    assert verdicts(served) == verdicts(in_process) == {
        "add": ("correct", "812"), "sub": ("correct", "-663"), "sub-en": ("correct", "581")
    }
    served.result.stdout.fnmatch_lines(["mathperf: models * · backend openai at http://127.0.0.1:*/v1*"])
    assert "TTFAT p50 (ms)" in served.output and "RSS peak" not in served.output
    properties = served.properties("::add[")
    assert 0 < float(properties["ttft_ms"]) <= float(properties["ttfat_ms"]) <= float(properties["e2e_ms"])


def test_load_profile_reports_and_gates_on_its_figures(pytester, run_gate, served_model) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE + "load: {users: 32, requests: 32}\n")
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
    assert load["mathperf.load"] == "32 users, 32 requests"
    assert float(load["load.success_rate"]) == 1.0 and float(load["load.requests"]) == 32
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
    run = run_gate("--mathperf-backend", "openai", "--mathperf-endpoint", closed_port_url, model="served-tiny")
    run.result.assert_outcomes(failed=1, skipped=2)
    run.result.stdout.fnmatch_lines([f"*model served-tiny did not load: cannot reach {closed_port_url}*"])
    assert "Traceback" not in run.output


def test_openai_backend_needs_an_endpoint(pytester, run_gate) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_gate("--mathperf-backend", "openai")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["*--mathperf-backend openai needs --mathperf-endpoint URL*"])
