"""A served model that is not what it claims, or that echoes the API key: seen, recorded, never leaked."""

from __future__ import annotations

import pytest
from conftest import write
from servers import ScriptedServer

from pytest_mathperf.history import History

SUITE = 'suite: served\ncases:\n  - id: sum\n    prompt: "What is 427 + 385?"\n    answer: 812\n'
KEY = "sk-mathperf-secret-0123456789"


def _gate(pytester: pytest.Pytester, server: ScriptedServer, *args: str) -> pytest.RunResult:
    write(pytester, "suites/served.yaml", SUITE)
    return pytester.runpytest(
        "--mathperf", "--mathperf-backend=openai", f"--mathperf-endpoint={server.base_url}", "--mathperf-model=scripted-model",
        "--mathperf-busy-guard=off", "-p", "no:cacheprovider", f"--junitxml={pytester.path / 'junit.xml'}", *args,
    )


def test_an_answer_from_another_model_is_recorded_and_reported(pytester, heavy_modules, scripted_server: ScriptedServer) -> None:
    scripted_server.script.served_as = "gpt-evil-other"
    result = _gate(pytester, scripted_server, "--mathperf-history=history.db")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["mathperf: scripted-model: the server answered as 'gpt-evil-other' (1 generations), not 'scripted-model'"])
    with History(pytester.path / "history.db") as history:
        [summary] = history.summaries()
        run = history.run(summary.run_id)
    assert run.cases[0].generations[0].facts["served_model"] == "gpt-evil-other"
    assert "'gpt-evil-other' (1 generations)" in run.models[0].details["served_model_mismatch"]


def test_an_answer_from_another_model_fails_when_asked_to(pytester, heavy_modules, scripted_server: ScriptedServer) -> None:
    scripted_server.script.served_as = "gpt-evil-other"
    result = _gate(pytester, scripted_server, "--mathperf-no-history", "--mathperf-model-mismatch=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the server answered as model 'gpt-evil-other', not 'scripted-model' (--mathperf-model-mismatch fail)*"])
    honest = ScriptedServer().start()  # the model asked for answers: nothing to report
    try:
        clean = _gate(pytester, honest, "--mathperf-no-history", "--mathperf-model-mismatch=fail")
    finally:
        honest.stop()
    clean.assert_outcomes(passed=1)
    assert "answered as" not in clean.stdout.str()


def test_a_server_echoing_the_api_key_never_gets_it_into_an_output(
    pytester, heavy_modules, scripted_server: ScriptedServer, monkeypatch
) -> None:
    monkeypatch.setenv("MATHPERF_API_KEY", KEY)
    scripted_server.script.pieces = (f"Your key is {KEY}. ", "427 + 385 = 812, ", "\\boxed{813}")
    result = _gate(
        pytester, scripted_server, "--mathperf-strict", "--mathperf-history=history.db",
        "--mathperf-html=report.html", "--mathperf-markdown=summary.md",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Your key is ***. 427 + 385 = 812, \\boxed{813}*"])
    files = [pytester.path / name for name in ("junit.xml", "report.html", "summary.md")]
    files += sorted(pytester.path.glob("history.db*"))  # the WAL too, should a commit still sit there
    leaked = [path.name for path in files if KEY.encode() in path.read_bytes()]
    assert leaked == [] and KEY not in result.stdout.str() + result.stderr.str()
    assert b"Your key is ***" in files[0].read_bytes() and b"Your key is ***" in files[1].read_bytes()
