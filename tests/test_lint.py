"""``mathperf lint`` passes on what the project ships and names file and line on a broken copy."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pytest_mathperf.cli import main

ROOT = Path(__file__).resolve().parent.parent
SUITES = ROOT / "suites"
THRESHOLDS = ROOT / "thresholds.yaml"


@pytest.fixture
def broken(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the shipped suites and thresholds, ready to be damaged."""
    shutil.copytree(SUITES, tmp_path / "suites", ignore=shutil.ignore_patterns("demo"))
    shutil.copy(THRESHOLDS, tmp_path / "thresholds.yaml")
    return tmp_path / "suites", tmp_path / "thresholds.yaml"


def lint(capsys: pytest.CaptureFixture[str], *paths: Path, thresholds: Path) -> tuple[int, list[str]]:
    code = main(["lint", *map(str, paths), "--thresholds", str(thresholds)])
    return code, capsys.readouterr().out.splitlines()


def line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text("utf-8").splitlines(), 1) if text in line)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), "utf-8")


def test_the_command_passes_on_everything_shipped(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)  # as CI runs it, with the paths relative to the checkout
    code, lines = lint(capsys, Path("suites"), thresholds=Path("thresholds.yaml"))
    assert code == 0, "\n".join(lines)
    assert re.fullmatch(r"mathperf lint: \d+ suite files, \d+ cases, thresholds\.yaml ok", lines[-1]), lines[-1]


def test_a_wrong_expected_answer_fails_naming_file_and_line(
    broken: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    suites, thresholds = broken
    algebra = suites / "algebra.yaml"
    edit(algebra, '    prompt: "解方程 3x + 7 = 25，求 x 的值。"\n    answer: 6', '    prompt: "解方程 3x + 7 = 25，求 x 的值。"\n    answer: 5')
    code, lines = lint(capsys, algebra, thresholds=thresholds)
    assert code == 1
    case_line = line_of(algebra, "- id: linear-equation")
    assert f"{algebra}:{case_line}: case 'linear-equation': derivation gives \\boxed{{6}}" in lines[0]
    assert f"{algebra}:{case_line}: case 'linear-equation'" in lines[0]
    # only that: the budgets for the other suites are no problem, the suites folder defines them
    assert lines[-1].endswith(", 1 problem")


def test_every_kind_of_problem_is_reported_with_its_line(
    broken: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    suites, thresholds = broken
    edit(suites / "geometry.yaml", "    answer: 40\n", "    answr: 40\n")
    edit(suites / "calculus.yaml", "suite: calculus", "suite: algebra")
    edit(suites / "sequences.yaml", "    answer: 79\n", "    answer: 79\n    budgets: {ttft: {p50: {max: 1}}}\n")
    edit(suites / "number-theory.yaml", '{expr: "Mod(2024, 7)"}', '{expr: "Mod(2024, 7) + os.system(1)"}')
    data = suites / "data" / "gsm8k-sample.jsonl"
    data.write_text(data.read_text("utf-8").replace('"answer":', '"answr":', 1), "utf-8")
    edit(thresholds, "vram_peak_gb: {max: 7.7}", "vram_top_gb: {max: 7.7}")

    damaged = ("geometry", "algebra", "calculus", "sequences", "number-theory", "gsm8k-sample")
    code, lines = lint(capsys, *(suites / f"{name}.yaml" for name in damaged), thresholds=thresholds)
    output = "\n".join(lines)
    assert code == 1
    geometry = suites / "geometry.yaml"
    assert f"{geometry}:{line_of(geometry, 'answr: 40')}: unknown key 'answr'" in output
    calculus = suites / "calculus.yaml"
    assert f"{calculus}:{line_of(calculus, 'suite: algebra')}: suite name 'algebra' is also used by" in output
    sequences = suites / "sequences.yaml"
    assert f"{sequences}:{line_of(sequences, 'budgets: {ttft')}: budgets.ttft:" in output
    theory = suites / "number-theory.yaml"
    assert f"{theory}:{line_of(theory, '- id: remainder-2024-by-7')}: case 'remainder-2024-by-7': derivation:" in output
    assert f"{data.resolve()}:1: missing field 'answer'" in output
    assert f"{thresholds}:{line_of(thresholds, 'vram_top_gb')}:" in output and "unknown metric 'vram_top_gb'" in output
    assert ", 6 problems" in lines[-1]


def test_a_budget_for_a_suite_no_file_defines_is_an_error_and_one_for_another_file_is_not(
    broken: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    suites, thresholds = broken  # the copy leaves out suites/demo, whose suite the cpu budget names
    monkeypatch.chdir(suites.parent)
    code, lines = lint(capsys, Path("suites/seed.yaml"), thresholds=thresholds)
    assert code == 1
    # geometry, algebra and word-problems are in the suites folder: linting one file does not make them errors
    assert lines == [
        f"{thresholds}:{line_of(thresholds, 'arithmetic:') + 1}: budget accuracy is for suite 'arithmetic', which neither "
        "the linted suite files nor the suites folder define, so it judges nothing (add the suite, or remove the budget)",
        f"mathperf lint: 1 suite files, 4 cases, {thresholds} has problems, 1 problem",
    ]


def test_a_model_entry_a_typo_away_from_another_is_an_error(
    broken: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    suites, thresholds = broken
    text = thresholds.read_text(encoding="utf-8")
    thresholds.write_text(text.replace("      mathperf-tiny:", "      mathperf-tnyi:\n        accuracy: {min: 0.5}\n      mathperf-tiny:", 1), "utf-8")
    code, lines = lint(capsys, suites, thresholds=thresholds)
    assert code == 1
    assert f"{thresholds}:{line_of(thresholds, 'mathperf-tnyi:')}: model entry 'mathperf-tnyi' under card 'cpu'" in "\n".join(lines)


def test_missing_paths_are_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("suite: s\n", "utf-8")
    code, lines = lint(capsys, tmp_path / "nowhere", tmp_path / "empty", tmp_path / "notes.txt", thresholds=tmp_path / "thresholds.yaml")
    assert code == 1
    assert f"{tmp_path / 'nowhere'}: no such file or folder" in lines
    assert f"{tmp_path / 'empty'}: no suite files (*.yaml, *.yml) found" in lines
    assert f"{tmp_path / 'notes.txt'}: not a suite file (*.yaml, *.yml)" in lines  # the gate would not collect it
    assert f"{tmp_path / 'thresholds.yaml'}: no such file (--thresholds)" in lines  # named, as the gate refuses it
    # not named: a project may gate on answers alone
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suites").mkdir()
    shutil.copy(SUITES / "demo" / "arithmetic.yaml", tmp_path / "suites")
    assert main(["lint"]) == 0
    assert "thresholds.yaml: warning: not found, budgets not checked (pass --thresholds PATH)" in capsys.readouterr().out
