"""What a team meets on its first day with a second model: the header says which suites each model
runs, a candidate judged only by comparisons is told what it lacks, and an inconclusive budget
reads as one."""

from __future__ import annotations

from conftest import TWELVE_CASES, write

COMPARE_ONLY = """
version: 1
no_budget: fail
cards:
  cpu:
    models:
      base:
        accuracy: {min: 0.5}
      cand:
        compare:
          accuracy: {max_drop: 0.05}
"""
CANDIDATE_ONLY_SUITE = """
suite: long
models: ["*", "!base"]
defaults: {max_new_tokens: 4096, repeats: 3}
cases:
  - {id: a, prompt: "What is 1 + 2?", answer: 3}
  - {id: b, prompt: "What is 2 + 2?", answer: 4}
"""


def test_the_header_says_which_suites_each_model_runs(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES)
    write(pytester, "suites/long.yaml", CANDIDATE_ONLY_SUITE)
    write(pytester, "thresholds.yaml", COMPARE_ONLY)
    run = run_scripted(models=("base", "cand"))
    run.result.stdout.fnmatch_lines(
        [
            "collected 26 items",
            "mathperf: base runs arithmetic (12 cases): 12 generations, max_new_tokens up to 2048",
            "mathperf: cand runs arithmetic (12 cases), long (2 cases): 18 generations, max_new_tokens up to 4096",
            "mathperf: the models run different suites; a comparison compares only the cases both ran",
        ]
    )
    accuracy = run.properties("cand::compare::accuracy")
    assert accuracy["mathperf.verdict"] == "within_margin"
    assert run.result.ret == 0


def test_a_candidate_judged_only_by_comparisons_is_told_it_needs_a_baseline(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES)
    write(pytester, "thresholds.yaml", COMPARE_ONLY)
    for models in (("cand", "base"), ("cand",)):  # the candidate first is the baseline; alone, it has none
        run = run_scripted(models=models)
        run.result.stdout.fnmatch_lines(
            [
                "the entry for 'cand' on 'cpu' in */thresholds.yaml (no_budget: fail) judges it by its compare: margins "
                "(line 8), and this run has no baseline for it: the first --mathperf-model is the baseline; run the "
                "baseline first (--mathperf-model BASELINE --mathperf-model cand) or compare with a blessed run "
                "(--mathperf-baseline blessed)"
            ]
        )
        assert "only for suites this run does not have" not in run.result.stdout.str()
        assert run.result.ret == 1
    run = run_scripted(models=("base", "cand"))  # as the candidate, its comparison judges it
    assert run.result.ret == 0
    run.result.stdout.fnmatch_lines(["mathperf: 0 budgets applied to cand on 'cpu', 1 comparisons against base"])


def test_an_inconclusive_budget_reads_as_inconclusive(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES)
    # 12 of 12 correct: the Wilson interval's low end (0.76) is below 0.9, its high end above
    write(pytester, "thresholds.yaml", "version: 1\ncards:\n  cpu:\n    models:\n      mathperf-tiny:\n        accuracy: {min: 0.9, confidence: 0.95}\n")
    run = run_scripted("-rs")
    run.result.stdout.fnmatch_lines(["suites/arithmetic.yaml ............ *", "thresholds.yaml i *"])
    run.result.stdout.fnmatch_lines(["INCONCLUSIVE [[]1] thresholds.yaml:6: inconclusive: *", "* 12 passed, 1 skipped in *"])  # still a skip for JUnit and xdist
    assert run.testcase("mathperf-tiny::accuracy").find("skipped") is not None
    verbose = run_scripted("-v")
    verbose.result.stdout.fnmatch_lines(["thresholds.yaml::mathperf-tiny::accuracy INCONCLUSIVE *"])


def test_the_command_help_is_plain_text(capsys) -> None:
    import pytest

    from pytest_mathperf.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and "the gate itself is pytest --mathperf" in " ".join(out.split())


def test_the_variants_tool_explains_its_variants_and_needs_its_folder() -> None:
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parent.parent / "tools" / "make_model_variants.py"
    done = subprocess.run([sys.executable, str(tool), "--help"], capture_output=True, text=True, timeout=60, check=True)
    for variant in ("- ``slow``: the same answers at about 3x the compute", "- ``noisy``: lower accuracy", "- ``copy``"):
        assert variant in done.stdout
    assert "folder to write the model into" in done.stdout
