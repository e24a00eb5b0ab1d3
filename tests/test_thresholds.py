"""Budgets: matching by card and model, most specific wins, evaluation and schema errors."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from pytest_mathperf.thresholds import evaluate, load_thresholds
from pytest_mathperf.yamlfile import SchemaError

EXAMPLE = """
version: 1
unknown_card: fail
cards:
  "NVIDIA GeForce RTX 3090":
    models:
      "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B":
        ttft_ms: {p50: {max: 350}, p95: {max: 600}}
        tokens_per_s: {p50: {min: 95}}
        vram_peak_gb: {max: 7.5}
        accuracy: {min: 0.90}
        suites:
          algebra: {accuracy: {min: 0.95}}
      "*":
        ttft_ms: {p50: {max: 1000}}
        vram_peak_gb: {max: 20}
  "NVIDIA *":
    models:
      "deepseek-ai/*":
        ttft_ms: {p50: {max: 5000}}
        e2e_ms: {p99: {max: 60000}}
"""


def thresholds_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "thresholds.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def by_name(budgets):
    return {(budget.suite, budget.name): budget for budget in budgets}


def test_most_specific_match_wins_per_metric(tmp_path: Path) -> None:
    thresholds = load_thresholds(thresholds_file(tmp_path, EXAMPLE))
    budgets = by_name(thresholds.budgets_for("NVIDIA GeForce RTX 3090", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", ["algebra"]))
    assert budgets[(None, "ttft_ms.p50")].maximum == 350  # exact card and model beat every glob
    assert budgets[(None, "e2e_ms.p99")].maximum == 60000  # only the glob card defines it
    assert budgets[(None, "vram_peak_gb")].maximum == 7.5
    assert budgets[("algebra", "accuracy")].minimum == 0.95  # suite over model
    assert budgets[(None, "accuracy")].minimum == 0.90
    assert budgets[(None, "ttft_ms.p50")].line == 7


MIG_CARDS = """
version: 1
cards:
  "NVIDIA A100*":
    models:
      "*": {vram_peak_gb: {max: 70}}
  "*":
    models:
      "*": {ttft_ms: {p50: {max: 900}}}
  "NVIDIA A100* MIG 1g.*":
    models:
      "*": {vram_peak_gb: {max: 9}}
"""


def test_a_whole_card_budget_never_judges_a_mig_slice_of_it(tmp_path: Path) -> None:
    thresholds = load_thresholds(thresholds_file(tmp_path, MIG_CARDS))
    slice_ = "NVIDIA A100-SXM4-80GB MIG 1g.10gb"
    assert thresholds.card_entries(slice_) == ["NVIDIA A100* MIG 1g.*"]
    assert by_name(thresholds.budgets_for(slice_, "any", []))[(None, "vram_peak_gb")].maximum == 9
    assert thresholds.budgets_for("NVIDIA A100-SXM4-80GB MIG 2g.20gb", "any", []) is None
    whole = by_name(thresholds.budgets_for("NVIDIA A100-SXM4-80GB", "any", []))
    assert (whole[(None, "vram_peak_gb")].maximum, whole[(None, "ttft_ms.p50")].maximum) == (70, 900)


def test_model_glob_and_suites_not_in_the_run(tmp_path: Path) -> None:
    thresholds = load_thresholds(thresholds_file(tmp_path, EXAMPLE))
    other = by_name(thresholds.budgets_for("NVIDIA GeForce RTX 3090", "Qwen/Qwen2.5-Math-1.5B", ["geometry"]))
    assert other[(None, "ttft_ms.p50")].maximum == 1000
    assert ("algebra", "accuracy") not in other
    assert thresholds.budgets_for("cpu", "Qwen/Qwen2.5-Math-1.5B", []) is None
    assert thresholds.no_budget == "fail" and thresholds.policy_key == "unknown_card"


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("cards:\n  cpu:\n    models:\n      m:\n        ttft: {p50: {max: 1}}\n", 5, "cards.'cpu'.models.'m'.ttft: unknown metric 'ttft'"),
        ("cards:\n  cpu:\n    models:\n      m:\n        ttft_ms: {median: {max: 1}}\n", 5, "ttft_ms.median: unknown statistic"),
        ("cards:\n  cpu:\n    models:\n      m:\n        ttft_ms: {max: 1}\n", 5, "name the statistic first"),
        ("cards:\n  cpu:\n    models:\n      m:\n        load_s: {max: fast}\n", 5, "load_s.max: must be a number, got 'fast'"),
        ("cards:\n  cpu:\n    models:\n      m:\n        accuracy: {min: 90}\n", 5, "a share is between 0 and 1"),
        ("cards:\n  cpu:\n    models:\n      m:\n        vram_peak_gb: {most: 1}\n", 5, "unknown key 'most'"),
        ("unknown_card: ignore\n", 1, "unknown_card: must be one of skip, fail, record"),
        ("cards:\n  cpu:\n    model: {}\n", 3, "unknown key 'model' in cards.'cpu'; did you mean 'models'?"),
        ("cards:\n  cpu:\n    models:\n      m:\n        suites:\n          algebra: {vram_peak_gb: {max: 1}}\n", 6, "measured per model, not per suite"),
        ("cards: [\n", 1, "YAML syntax error"),  # where the bracket opened, a line the file has
        ("cards:\n  cpu:\n    models:\n      m:\n        ttft_ms: {p50: {min: 10, max: 5}}\n", 5, "ttft_ms.p50: min 10 is above max 5; no value could pass"),
        ("cards:\n  cpu:\n    models:\n      m:\n        load_s: {max: -5}\n", 5, "load_s.max: must be a number ≥ 0, got -5"),
        ("cards:\n  cpu:\n    models:\n      m:\n        load_s: {max: .nan}\n", 5, "'.nan' is not a finite number; write a number"),  # refused as it is read
        (
            "cards:\n  cpu:\n    models:\n      m:\n        compare:\n          tokens_per_s:\n            mean: {max_ratio: 1.25}\n",
            7,
            "compare.tokens_per_s.mean.max_ratio: tokens_per_s is better higher, so its margin is a min_ratio (e.g. min_ratio: 0.8)",
        ),
        (
            "cards:\n  cpu:\n    models:\n      m:\n        compare:\n          load_s:\n            min_ratio: 0.9\n",
            7,
            "compare.load_s.min_ratio: load_s is better lower, so its margin is a max_ratio (e.g. max_ratio: 1.11)",
        ),
    ],
)
def test_schema_errors_name_key_path_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = thresholds_file(tmp_path, "version: 1\n" + body)
    with pytest.raises(SchemaError) as error:
        load_thresholds(path)
    assert error.value.line == line + 1
    assert message in str(error.value)
    assert str(error.value).startswith(f"{path}:{line + 1}: ")


def test_evaluate_statistics_bounds_and_accuracy(tmp_path: Path) -> None:
    thresholds = load_thresholds(thresholds_file(tmp_path, EXAMPLE))
    budgets = by_name(thresholds.budgets_for("NVIDIA GeForce RTX 3090", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", ["algebra"]))
    ttft = evaluate(budgets[(None, "ttft_ms.p50")], [300.0, 340.0, 420.0])
    assert ttft.passed and ttft.measured == 340.0 and ttft.samples == 3
    slow = evaluate(budgets[(None, "ttft_ms.p95")], [300.0, 340.0, 700.0])
    assert not slow.passed and slow.measured == pytest.approx(664.0)
    accuracy = evaluate(budgets[("algebra", "accuracy")], [1.0] * 19 + [0.0])
    assert accuracy.passed and accuracy.measured == 0.95
    assert accuracy.measured_text == "95.0% (19/20, 95% CI 76%–99%)"
    nothing = evaluate(budgets[(None, "vram_peak_gb")], [])
    assert not nothing.passed and nothing.measured_text == "nothing measured"
    assert budgets[(None, "tokens_per_s.p50")].bound_text == "≥ 95 tok/s"


def test_a_load_budget_holds_for_every_profile_not_the_last_one(tmp_path: Path) -> None:
    text = "version: 1\ncards:\n  cpu:\n    models:\n      m:\n        load.success_rate: {min: 0.99}\n        load.failed: {max: 0}\n"
    budgets = by_name(load_thresholds(thresholds_file(tmp_path, text)).budgets_for("cpu", "m", ["a", "b"]))
    # one value per suite's load profile: suite a lost half its requests, suite b none
    success = evaluate(budgets[(None, "load.success_rate")], [0.5, 1.0])
    assert not success.passed and success.measured == 0.5 and success.samples == 2
    failed = evaluate(budgets[(None, "load.failed")], [5.0, 0.0])
    assert not failed.passed and failed.measured == 5.0
    assert evaluate(budgets[(None, "load.success_rate")], [1.0, 1.0]).passed


def test_a_confidence_judges_the_bound_against_evidence(tmp_path: Path) -> None:
    text = """
version: 1
cards:
  cpu:
    models:
      m:
        accuracy: {min: 0.9, confidence: 0.95}
        ttft_ms: {p95: {max: 500, confidence: 0.95}, mean: {max: 100, confidence: 0.95}}
"""
    budgets = by_name(load_thresholds(thresholds_file(tmp_path, text)).budgets_for("cpu", "m", []))
    accuracy, p95, mean = budgets[(None, "accuracy")], budgets[(None, "ttft_ms.p95")], budgets[(None, "ttft_ms.mean")]
    assert evaluate(accuracy, [1.0] * 100).status == "passed"  # Wilson low 96 % ≥ 90 %
    assert evaluate(accuracy, [1.0] * 9 + [0.0]).status == "inconclusive"  # 90 %, interval 60–98 %
    assert evaluate(accuracy, [1.0] * 5 + [0.0] * 15).status == "failed"
    # p95 ≤ 500: 0 of 100 above is evidence; 1 of 10 above is not; 40 of 100 above is a failure
    assert evaluate(p95, [100.0] * 100).status == "passed"
    inconclusive = evaluate(p95, [100.0] * 9 + [600.0])
    assert inconclusive.status == "inconclusive" and "1 of 10 samples beyond 500 ms" in inconclusive.reason
    assert evaluate(p95, [100.0] * 60 + [600.0] * 40).status == "failed"
    assert evaluate(mean, [50.0, 52.0, 48.0, 51.0, 49.0]).status == "passed"
    assert evaluate(mean, [50.0, 150.0]).status == "inconclusive"
    # without confidence, the same samples fail outright (p95 = 600); with it, 2 of 10 beyond is no evidence
    two_slow = [100.0] * 8 + [600.0] * 2
    assert evaluate(dataclasses.replace(p95, confidence=None), two_slow).status == "failed"
    assert evaluate(p95, two_slow).status == "inconclusive"


def test_a_confidence_on_a_statistic_without_an_interval_is_refused(tmp_path: Path) -> None:
    text = "version: 1\ncards:\n  cpu:\n    models:\n      m:\n        ttft_ms: {max: {max: 5, confidence: 0.95}}\n"
    with pytest.raises(SchemaError, match=r":6: .*ttft_ms.max.confidence: needs a percentile or the mean"):
        load_thresholds(thresholds_file(tmp_path, text))
