"""Hostile suites and thresholds from a pull request: refused at their file and line, never a hang or a crash."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from conftest import ARITHMETIC_SUITE, write

from pytest_mathperf.answers import check_answer, deadline
from pytest_mathperf.cli import main
from pytest_mathperf.suite import load_suite
from pytest_mathperf.thresholds import load_thresholds
from pytest_mathperf.yamlfile import SchemaError

CATASTROPHIC = {"regex": "(a+)+$"}

BOMB = "suite: bomb\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n" for previous, name in zip("abcdefgh", "bcdefghi")
) + "cases: []\n"

DEEP = "suite: deep\ncases:\n  - id: x\n    prompt: p\n    answer: " + "[" * 300 + "1" + "]" * 300 + "\n"

GOOD = 'suite: good\ncases:\n  - id: one\n    prompt: "What is 1 + 2?"\n    answer: 3\n'


def test_a_backtracking_regex_is_an_error_verdict_within_the_limit() -> None:
    started = time.monotonic()
    verdict = check_answer("a" * 30_000 + "!", CATASTROPHIC, time_limit_s=0.3)
    assert time.monotonic() - started < 5  # Python's re takes hours here
    assert verdict.status == "error"
    assert verdict.reason == "checking the answer took longer than 0.3 s; simplify the case's expected answer or regex"


def test_the_limit_bounds_the_whole_check_and_gives_an_outer_timer_back() -> None:
    fired: list[int] = []
    outer = signal.signal(signal.SIGPROF, lambda *_: fired.append(1))
    signal.setitimer(signal.ITIMER_PROF, 30.0)
    try:
        with pytest.raises(deadline.CheckTimedOut), deadline.time_limit(0.1):
            while True:  # any Python the check runs, not only the regex engine
                pass
        left, _ = signal.getitimer(signal.ITIMER_PROF)
        assert 25 < left <= 30
        assert signal.getsignal(signal.SIGPROF) is not deadline._raise_timed_out
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, outer)
    assert fired == []


def test_a_backtracking_regex_fails_its_case_and_the_gate_finishes(pytester, run_scripted, monkeypatch) -> None:
    monkeypatch.setattr(deadline, "ANSWER_CHECK_LIMIT_S", 0.3)
    monkeypatch.setattr("pytest_mathperf.answers.check.ANSWER_CHECK_LIMIT_S", 0.3)
    write(pytester, "suites/evil.yaml", 'suite: evil\ncases:\n  - id: redos\n    prompt: "say a"\n    answer: {regex: "(a+)+$"}\n')
    run = run_scripted(scripts={"*": {"answers": {"say a": "a" * 30_000 + "!"}}})
    run.result.assert_outcomes(failed=1)
    assert run.properties("redos[mathperf-tiny]")["mathperf.verdict"] == "error"
    run.result.stdout.fnmatch_lines(["*evil::redos*", "error: 0 of 1 generations correct*", "*extracted: (nothing)*checking the answer took longer than 0.3 s*"])


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (BOMB, 7, "aliases here expand to more than 100,000 values (an alias bomb?)"),
        (DEEP, 5, "nested more than 64 levels deep; flatten the document"),
    ],
    ids=["alias-bomb", "deep-nesting"],
)
def test_alias_bombs_and_deep_nesting_are_refused_at_their_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SchemaError) as raised:
        load_suite(path)
    assert str(raised.value).startswith(f"{path}:{line}: {message}")


def test_lint_reports_every_hostile_file_and_still_checks_the_others(tmp_path: Path, capsys) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    for name, text in {"bomb.yaml": BOMB, "deep.yaml": DEEP, "good.yaml": GOOD}.items():
        (suites / name).write_text(text, encoding="utf-8")
    (tmp_path / "thresholds.yaml").write_text("version: 1\n", encoding="utf-8")
    code = main(["lint", str(suites), "--thresholds", str(tmp_path / "thresholds.yaml")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[0].startswith(f"{suites / 'bomb.yaml'}:7: aliases here expand")
    assert lines[1].startswith(f"{suites / 'deep.yaml'}:5: nested more than 64 levels")
    assert lines[-1] == f"mathperf lint: 3 suite files, 1 cases, {tmp_path / 'thresholds.yaml'} has problems, 2 problems"


def test_the_gate_reports_a_bomb_as_one_collection_error_and_runs_the_rest(pytester, run_scripted) -> None:
    write(pytester, "suites/bomb.yaml", BOMB)
    write(pytester, "suites/good.yaml", GOOD)
    run = run_scripted()
    run.result.assert_outcomes(passed=1, errors=1)
    run.result.stdout.fnmatch_lines(["*suites/bomb.yaml:7: aliases here expand to more than 100,000 values*"])


@pytest.mark.parametrize(
    ("field", "value"),
    [("rel_tol", ".nan"), ("temperature", ".inf"), ("top_p", "-.Inf"), ("repetition_penalty", ".NaN")],
)
def test_nan_and_infinity_are_refused_in_a_suite_at_their_line(tmp_path: Path, field: str, value: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(GOOD + f"    {field}: {value}\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=rf"^{path}:6: '{value}' is not a finite number; write a number"):
        load_suite(path)


def test_a_nan_margin_is_refused_by_lint_and_by_the_gate(pytester, run_scripted, tmp_path: Path, capsys) -> None:
    budgets = "version: 1\ncards:\n  cpu:\n    models:\n      '*':\n        compare:\n          rss_peak_gb: {max_ratio: .nan}\n"
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(budgets, encoding="utf-8")
    with pytest.raises(SchemaError, match=rf"^{thresholds}:7: '.nan' is not a finite number"):
        load_thresholds(thresholds)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "good.yaml").write_text(GOOD, encoding="utf-8")
    assert main(["lint", str(tmp_path / "suites"), "--thresholds", str(thresholds)]) == 1
    assert f"{thresholds}:7: '.nan' is not a finite number" in capsys.readouterr().out
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", budgets)
    run = run_scripted(models=("a", "b"))
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["*thresholds.yaml:7: '.nan' is not a finite number*"])


def test_a_nan_in_imported_jsonl_is_refused_at_its_record(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text('{"q": "1 + 2?", "a": 3}\n{"q": "0/0?", "a": NaN}\n', encoding="utf-8")
    path = tmp_path / "suite.yaml"
    path.write_text("suite: s\ncases_from: {path: data.jsonl, prompt: q, answer: a}\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=rf"^{tmp_path / 'data.jsonl'}:2: not a record a suite can take: NaN is not a finite number"):
        load_suite(path, root=tmp_path)


@pytest.mark.parametrize("where", ["absolute", "parent", "symlink"])
def test_cases_from_stays_inside_the_project(tmp_path: Path, where: str) -> None:
    project, outside = tmp_path / "project", tmp_path / "secrets"
    (project / "suites").mkdir(parents=True)
    outside.mkdir()
    (outside / "token.jsonl").write_text('{"q": "ghp_secret", "a": 1}\n', encoding="utf-8")
    (project / "suites" / "link.jsonl").symlink_to(outside / "token.jsonl")
    given = {"absolute": str(outside / "token.jsonl"), "parent": "../../secrets/token.jsonl", "symlink": "link.jsonl"}[where]
    path = project / "suites" / "s.yaml"
    path.write_text(f"suite: s\ncases_from:\n  path: {given}\n  prompt: q\n  answer: a\n", encoding="utf-8")
    with pytest.raises(SchemaError) as raised:
        load_suite(path, root=project)
    assert str(raised.value) == f"{path}:3: cases_from: {given} is outside the project ({project}); move the file under it"


def test_the_gate_confines_cases_from_to_its_rootdir(pytester, run_scripted, tmp_path: Path) -> None:
    (tmp_path / "token.jsonl").write_text('{"q": "What is 1 + 2? ghp_secret", "a": 3}\n', encoding="utf-8")
    write(pytester, "suites/s.yaml", f"suite: s\ncases_from: {{path: {tmp_path / 'token.jsonl'}, prompt: q, answer: a}}\n")
    write(pytester, "suites/good.yaml", GOOD)
    run = run_scripted()
    run.result.assert_outcomes(passed=1, errors=1)
    run.result.stdout.fnmatch_lines(["*suites/s.yaml:2: cases_from: * is outside the project*"])
    assert "ghp_secret" not in run.output


@pytest.mark.parametrize("target", ["thresholds.yaml", "suites/x.yaml"])
def test_report_never_writes_over_a_file_that_is_not_a_report(tmp_path: Path, capsys, target: str) -> None:
    output = tmp_path / target
    output.parent.mkdir(exist_ok=True)
    output.write_text("version: 1\n", encoding="utf-8")
    assert main(["report", "--history", str(tmp_path / "history.db"), "-o", str(output)]) == 2
    assert capsys.readouterr().err == (
        f"mathperf report: -o {output} is a file that is not an HTML page; writing the report there would replace it\n"
    )
    assert output.read_text(encoding="utf-8") == "version: 1\n"


@pytest.mark.parametrize(("target", "what"), [("thresholds.yaml", "the budgets file"), ("suites/good.yaml", "a suite file under")])
def test_the_gate_refuses_a_junit_file_over_its_inputs(pytester, heavy_modules, target: str, what: str) -> None:
    from scripted import conftest_source

    write(pytester, "conftest.py", conftest_source({"*": {}}))
    write(pytester, "suites/good.yaml", GOOD)
    write(pytester, "thresholds.yaml", "version: 1\n")
    result = pytester.runpytest("--mathperf", "--mathperf-backend=scripted", "--mathperf-model=m", f"--junitxml={target}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--junitxml: {target} is {what}*; writing the output there would replace it"])
    assert (pytester.path / target).read_text(encoding="utf-8").startswith(("version: 1", "suite: good"))


def test_a_suite_folder_outside_the_project_may_import_its_own_data(pytester, run_scripted, tmp_path: Path) -> None:
    shared = tmp_path / "shared-suites"
    shared.mkdir()
    (shared / "data.jsonl").write_text('{"q": "What is 1 + 2?", "a": 3}\n', encoding="utf-8")
    (shared / "s.yaml").write_text("suite: s\ncases_from: {path: data.jsonl, prompt: q, answer: a}\n", encoding="utf-8")
    run = run_scripted(f"--mathperf-suites={shared}")
    run.result.assert_outcomes(passed=1)
