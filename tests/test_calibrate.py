"""mathperf calibrate: budgets derived from runs, written into thresholds.yaml as a person would."""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_mathperf.calibrate import accuracy_floor, prediction_bound, round_outward
from pytest_mathperf.cli import main
from pytest_mathperf.history import History
from pytest_mathperf.results import CaseRecord, GenerationRecord, ModelRecord, RunRecord
from pytest_mathperf.thresholds import load_thresholds

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "thresholds.yaml"
ENVIRONMENT = {
    "card": "cpu", "device": "cpu", "driver": "", "cuda": "", "backend": "hf", "cpu": "x86_64",
    "torch": "2.13.0+cpu", "transformers": "4.57.0", "math-verify": "0.8.0", "pytest-mathperf": "0.1.0",
    "suite_fingerprint.arithmetic": "abc123def456",
}


#: The facts of a generation whose token counts a server did not send: counted from stream chunks.
ESTIMATED = {"output_tokens_source": "chunks", "estimated_metrics": "decode_tokens_per_s,output_tokens,tokens_per_s,tpot_ms"}


def make_run(
    ttft: float, tokens_per_s: float, *, correct: int = 10, cases: int = 10, busy: str = "", dtype: str = "float32",
    facts: dict[str, str] | None = None, **environment: str,
) -> RunRecord:
    generations = lambda passed: (  # noqa: E731
        GenerationRecord(0, 0, "correct" if passed else "wrong", "1", "", "stop",
                         {"ttft_ms": ttft, "tokens_per_s": tokens_per_s}, "1", facts=facts or {}),
    )
    records = tuple(
        CaseRecord("m", "arithmetic", f"c{i}", f"arithmetic.yaml::m::c{i}", "p", "1", (), "all", i < correct, generations(i < correct))
        for i in range(cases)
    )
    card = environment.get("card", ENVIRONMENT["card"])
    model = ModelRecord("m", "hf", card, "cpu", dtype, None, "/models/m", {"load_s": 1.2, "rss_peak_gb": 0.38}, "rss",
                        details={"host_busy": busy})
    return RunRecord(1_700_000_000.0, 1_700_000_060.0, {**ENVIRONMENT, **environment}, (model,), records, ())


def history_of(tmp_path: Path, runs: list[RunRecord]) -> Path:
    path = tmp_path / "history.db"
    with History(path) as history:
        for run in runs:
            history.append(run)
    return path


def calibrate(tmp_path: Path, history: Path | str, *extra: str, thresholds: Path | None = None) -> int:
    return main(["calibrate", "--model", "m", "--card", "cpu", "--from-history", "--history", str(history),
                 "--thresholds", str(thresholds or tmp_path / "thresholds.yaml"), *extra])


QUIET = [make_run(3.6, 632), make_run(3.7, 631), make_run(3.6, 647)]


def test_an_accuracy_floor_fails_an_unchanged_model_about_alpha_of_the_time() -> None:
    from scipy.stats import binom

    # the floor's own promise, checked against the next run's binomial count for a model whose
    # accuracy is what the runs showed; a confidence bound on the accuracy failed 11-21 % of runs
    for correct, total, cases in ((137, 144, 48), (54, 60, 12), (432, 480, 48)):
        floor = accuracy_floor(correct, total, cases, 0.01)
        assert binom.cdf(floor - 1, cases, correct / total) <= 0.02
        assert binom.cdf(floor, cases, correct / total) > 0.001  # and not needlessly low
    assert accuracy_floor(144, 144, 48, 0.01) == 46  # all right three times: two misses are still chance


def test_prediction_bound_and_rounding() -> None:
    bound = prediction_bound([3.6, 3.7, 3.6], alpha=0.01, floor_margin=0.10)
    # mean 3.633, s 0.0577, t(0.99, 2) = 6.965, √(4/3): margin 0.464, above the 10 % floor
    assert bound.mean == pytest.approx(3.6333, abs=1e-4)
    assert bound.margin == pytest.approx(0.4641, abs=1e-3)
    assert not bound.floored
    assert prediction_bound([5.0, 5.0, 5.0], 0.01, 0.10).margin == pytest.approx(0.5)  # never zero-width
    assert round_outward(4.097, up=True) == 4.1
    assert round_outward(4.11, up=True) == 4.2
    assert round_outward(568.8, up=False) == 560
    assert round_outward(0.418, up=True) == 0.42


def test_writes_every_budget_with_its_source_and_keeps_the_rest_byte_for_byte(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    shutil.copy(SHIPPED, thresholds)
    original = thresholds.read_text()
    history = history_of(tmp_path, [make_run(9, 9), *QUIET])  # the oldest run is not among the last 3
    assert calibrate(tmp_path, history, "--compare", thresholds=thresholds) == 0
    written = thresholds.read_text()
    out = capsys.readouterr().out
    assert out.startswith(f"--- {thresholds} (before)")
    new_lines = [line[1:] for line in out.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert all(line in written for line in new_lines)
    # only lines inserted in one place: every byte of the original is still there, in order
    matcher = difflib.SequenceMatcher(None, original.splitlines(keepends=True), written.splitlines(keepends=True), autojunk=False)
    changes = [opcode for opcode in matcher.get_opcodes() if opcode[0] != "equal"]
    assert [tag for tag, *_ in changes] == ["insert"]
    assert matcher.b[changes[0][3]:changes[0][4]] == [line + "\n" for line in new_lines]
    assert written[written.index("      m:"):].startswith("".join(line + "\n" for line in new_lines) + "\n  # The seed write-up")
    assert "      m:\n        ttft_ms:\n          p50: {max: 4.1}" in written
    assert "# 3 runs (2/3/4) 2023-11-14: 3.60 / 3.70 / 3.60 ms; t-bound α=0.01" in written
    assert "mean: {min: 560}" in written  # mean 636.7 − 10 % floor (the t-bound is wider: 636.7 − 74.6 = 562)
    assert "rss_peak_gb: {max: 0.42}" in written
    # 30/30 over three runs of 10 cases: the next run gets at least 8 of 10 right, but with 1 %
    assert "accuracy: {min: 0.8}" in written and "next run ≥ 8/10 but with α=0.01 (beta-binomial)" in written
    assert "max_ratio: 1.13" in written
    entry = load_thresholds(thresholds).cards["cpu"]["m"]
    assert {budget.name: (budget.minimum, budget.maximum) for budget in entry.budgets} == {
        "ttft_ms.p50": (None, 4.1), "ttft_ms.p95": (None, 4.1), "tokens_per_s.mean": (560, None),
        "load_s": (None, 1.4), "rss_peak_gb": (None, 0.42), "accuracy": (0.8, None),
    }
    assert {c.name for c in entry.comparisons} == {"ttft_ms.p50", "ttft_ms.p95", "tokens_per_s.mean", "load_s", "rss_peak_gb", "accuracy"}


def test_replacing_an_entry_needs_update_and_keeps_what_follows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    shutil.copy(SHIPPED, thresholds)
    original = thresholds.read_text()
    history = history_of(tmp_path, QUIET)
    args = ("--model", "mathperf-tiny")
    runs = [run for run in QUIET]
    with History(history) as stored:  # the same runs under the shipped model's name
        for run in runs:
            stored.append(RunRecord(run.started_at, run.finished_at, run.environment,
                                    tuple(ModelRecord(**{**m.__dict__, "model": "mathperf-tiny"}) for m in run.models),
                                    tuple(CaseRecord(**{**c.__dict__, "model": "mathperf-tiny"}) for c in run.cases), ()))
    assert main(["calibrate", *args, "--card", "cpu", "--from-history", "--history", str(history), "--thresholds", str(thresholds)]) == 1
    error = capsys.readouterr().err
    line = original.splitlines().index("      mathperf-tiny:") + 1
    assert f"{thresholds}:{line}: card 'cpu' already has an entry for 'mathperf-tiny'; pass --update" in error
    assert thresholds.read_text() == original
    assert main(["calibrate", *args, "--card", "cpu", "--from-history", "--history", str(history),
                 "--thresholds", str(thresholds), "--update"]) == 0
    written = thresholds.read_text()
    tail = original[original.index("\n  # The seed write-up"):]
    assert written.endswith(tail)  # the next card's comment and entries, byte for byte
    assert written.startswith(original[: original.index("      mathperf-tiny:")])
    assert "measured 631–647" not in written


def test_update_replaces_the_calibrated_numbers_and_keeps_every_other_budget(tmp_path: Path) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(
        "version: 1\n"
        "cards:\n"
        "  cpu:\n"
        "    models:\n"
        "      m:\n"
        "        ttft_ms: {p50: {max: 9, confidence: 0.95}}  # by hand\n"
        "        warmup_s: {max: 3}                          # by hand\n"
        "        compare:\n"
        "          ttft_ms: {p50: {max_ratio: 1.2}}\n"
        "        suites:\n"
        "          geometry: {accuracy: {min: 0.5}}\n",
        "utf-8",
    )
    assert calibrate(tmp_path, history_of(tmp_path, QUIET), "--update", thresholds=thresholds) == 0
    entry = load_thresholds(thresholds).cards["cpu"]["m"]
    budgets = {(budget.suite, budget.name): budget for budget in entry.budgets}
    assert budgets[(None, "ttft_ms.p50")].maximum == 4.1  # calibrated: the old 9 is replaced
    assert budgets[(None, "ttft_ms.p50")].confidence == 0.95  # what else the leaf said stays
    assert budgets[(None, "warmup_s")].maximum == 3 and budgets[("geometry", "accuracy")].minimum == 0.5
    assert [(rule.name, rule.max_ratio) for rule in entry.comparisons] == [("ttft_ms.p50", 1.2)]
    written = thresholds.read_text()
    assert "warmup_s: {max: 3}                          # by hand" in written
    # the flow mapping the numbers went into is now a block, one commented line per number
    assert "        ttft_ms:                                    # by hand\n          p50: {max: 4.1, confidence: 0.95} # 3 runs" in written


def test_token_rates_from_estimated_counts_are_not_written_as_the_gate_would_not_judge_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [make_run(ttft, rate, facts=ESTIMATED) for ttft, rate in ((50.0, 100.0), (51.0, 102.0), (50.5, 98.0))]
    assert calibrate(tmp_path, history_of(tmp_path, runs)) == 0
    entry = load_thresholds(tmp_path / "thresholds.yaml").cards["cpu"]["m"]
    names = {budget.name for budget in entry.budgets}
    assert "ttft_ms.p50" in names and not any(name.startswith("tokens_per_s") for name in names)
    assert "tokens_per_s.mean: rests on token counts estimated from stream chunks" in capsys.readouterr().err


def test_dry_run_prints_the_diff_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    shutil.copy(SHIPPED, thresholds)
    before = thresholds.stat().st_mtime_ns, thresholds.read_bytes()
    assert calibrate(tmp_path, history_of(tmp_path, QUIET), "--dry-run", thresholds=thresholds) == 0
    out = capsys.readouterr().out
    assert "+      m:" in out and "--dry-run" in out
    assert (thresholds.stat().st_mtime_ns, thresholds.read_bytes()) == before
    fresh = tmp_path / "fresh.yaml"
    assert calibrate(tmp_path, tmp_path / "history.db", "--dry-run", thresholds=fresh) == 0
    assert "+version: 1" in capsys.readouterr().out
    assert not fresh.exists()


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ({"torch": "2.14.0+cpu"}, "torch differs (run 1: 2.13.0+cpu, run 2: 2.13.0+cpu, run 3: 2.14.0+cpu)"),
        ({"suite_fingerprint.arithmetic": "ffffffffffff"}, "suite_fingerprint.arithmetic differs"),
        ({"driver": "550.54"}, "driver differs"),
        ({"dtype": "bfloat16"}, "m dtype differs (run 1: float32, run 2: float32, run 3: bfloat16)"),
    ],
)
def test_refuses_runs_that_disagree_on_the_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str], changed: dict[str, str], named: str) -> None:
    history = history_of(tmp_path, [*QUIET[:2], make_run(3.6, 640, **changed)])
    assert calibrate(tmp_path, history) == 1
    error = capsys.readouterr().err
    assert "the runs disagree on their environment" in error and named in error
    assert not (tmp_path / "thresholds.yaml").exists()


def test_refuses_a_busy_host_naming_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    busy = "other processes used 1.4 of 2 cores while it was measured (busy above 0.3)"
    history = history_of(tmp_path, [QUIET[0], make_run(9.0, 200, busy=busy), QUIET[2]])
    assert calibrate(tmp_path, history) == 1
    assert f"run 2: {busy}" in capsys.readouterr().err


def test_too_few_runs_says_how_many(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = history_of(tmp_path, QUIET[:2] + [make_run(3.6, 640, card="NVIDIA H100")])
    assert calibrate(tmp_path, history, "--runs", "3") == 1
    error = capsys.readouterr().err
    assert f"{history} holds 2 complete runs of 'm' on card 'cpu'; calibration needs 3 (--runs 3)" in error
    assert calibrate(tmp_path, tmp_path / "none.db") == 1
    assert "holds 0 complete runs" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--floor-margin", "-1", "argument --floor-margin: must be a number ≥ 0, got -1"),
        ("--memory-margin", "nan", "argument --memory-margin: must be a number ≥ 0, got nan"),
        ("--busy-retries", "-3", "argument --busy-retries: must be a number ≥ 0, got -3"),
    ],
)
def test_a_margin_or_retry_count_below_zero_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    history = history_of(tmp_path, QUIET)
    with pytest.raises(SystemExit) as exit:  # argparse's usage error: nothing derived, nothing written
        calibrate(tmp_path, history, option, value)
    assert exit.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "thresholds.yaml").exists()


SMALL_SUITE = """\
suite: arithmetic
defaults: {template: "{prompt}", max_new_tokens: 64, temperature: 0.0, repeats: 1}
cases:
  - {id: a, prompt: "What is 705 + 583?", answer: 1288}
  - {id: b, prompt: "What is 527 - 476?", answer: 51}
  - {id: c, prompt: "计算 85 + 470。", answer: 555}
"""


def test_calibrates_the_demo_model_end_to_end(tmp_path: Path, no_server_starting: None) -> None:
    """Three real gate runs of the demo model, then a gate run judged by what was written."""
    suite = tmp_path / "suites" / "small.yaml"
    suite.parent.mkdir()
    suite.write_text(SMALL_SUITE)
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("# ours\nversion: 1\nno_budget: fail\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest_mathperf.cli", "calibrate", "--model", "mathperf-tiny", "--suites", str(suite),
         "--runs", "3", "--card", "cpu", "--device", "cpu", "--thresholds", str(thresholds)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    if done.returncode == 1 and "measured on a busy host and left out" in done.stderr:  # the guard did its job
        pytest.skip(f"the shared host stayed busy through every try: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    assert "calibrate: run 1 of 3, mathperf-tiny" in done.stderr and "run 3 of 3" in done.stderr
    assert "+      mathperf-tiny:" in done.stdout
    written = thresholds.read_text()
    assert written.startswith("# ours\nversion: 1\nno_budget: fail\ncards:\n  cpu:\n    models:\n      mathperf-tiny:\n")
    entry = load_thresholds(thresholds).cards["cpu"]["mathperf-tiny"]
    names = {budget.name for budget in entry.budgets}
    assert {"ttft_ms.p50", "ttft_ms.p95", "rss_peak_gb", "load_s", "accuracy"} <= names
    # three runs beside other work can spread too widely for a lower bound; then calibrate says so, never writes 0
    assert "tokens_per_s.mean" in names or "calibrate: tokens_per_s.mean: the runs spread too widely" in done.stderr
    assert "3/3, 3/3, 3/3 correct" in written
    gate = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--mathperf", "--mathperf-model", "mathperf-tiny",
         "--mathperf-suites", str(suite), "--mathperf-thresholds", str(thresholds), "--mathperf-card", "cpu",
         "--mathperf-device", "cpu", "--mathperf-no-history", "-rA"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    # judged by the calibrated budgets (accuracy and memory are not timings: no host load excuses them)
    judged = [line for line in gate.stdout.splitlines() if line.startswith(("PASSED", "FAILED")) and "mathperf-tiny::" in line]
    assert any("accuracy" in line for line in judged) and any("rss_peak_gb" in line for line in judged), gate.stdout
    assert not [line for line in judged if line.startswith("FAILED") and ("accuracy" in line or "rss_peak_gb" in line)]


def test_reads_the_runs_from_a_postgresql_history(postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with History(postgres_url) as history:
        for run in QUIET:
            history.append(run)
    assert calibrate(tmp_path, postgres_url) == 0
    assert "p50: {max: 4.1}" in (tmp_path / "thresholds.yaml").read_text()


def test_a_shared_host_calibrates_from_ten_runs_with_their_load_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    busy = "other processes used 1.4 of 2 cores while it was measured (busy above 0.3)"
    runs = [make_run(3.6 + 0.1 * (i % 3), 630 - 5 * (i % 4), busy=busy if i % 2 else "") for i in range(10)]
    history = history_of(tmp_path, runs)
    assert calibrate(tmp_path, history, "--runs", "10") == 1
    refused = capsys.readouterr().err
    assert "Calibrate on a quiet host, or, where the host is never quiet, with --shared-host --runs 10." in refused
    assert calibrate(tmp_path, history, "--runs", "3", "--shared-host") == 2
    assert "--shared-host needs --runs 10 or more" in capsys.readouterr().err
    assert calibrate(tmp_path, history, "--runs", "10", "--shared-host") == 0
    assert "--shared-host: 5 of 10 runs met a busy host; their load is part of the spread the budgets allow" in capsys.readouterr().err
    assert "ttft_ms" in (tmp_path / "thresholds.yaml").read_text()
