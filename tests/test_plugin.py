"""The gate end to end: real suites, the real demo model through transformers, parsed JUnit XML."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ARITHMETIC_SUITE, COMPARE, MODEL_DIR, TWELVE_CASES, write

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")

CPU_BUDGETS = """
version: 1
cards:
  cpu:
    models:
      mathperf-tiny:
        {budgets}
"""


def test_plugin_is_dormant_without_the_flag(pytester: pytest.Pytester) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "suites")
    result.assert_outcomes()
    assert "collected 0 items" in result.stdout.str()
    assert "mathperf:" not in result.stdout.str()  # no report header, no summary section


def test_importing_the_plugin_loads_no_heavy_library() -> None:
    code = "import sys, pytest_mathperf.plugin; print(sorted(m for m in ('torch', 'transformers', 'math_verify', 'sympy') if m in sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_demo_cases_pass_and_carry_their_metrics_in_junit(pytester, run_gate) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_gate()
    run.result.assert_outcomes(passed=3)
    properties = run.properties("add[mathperf-tiny]")
    assert properties["mathperf.verdict"] == "correct"
    assert properties["mathperf.expected"] == "1288"
    assert properties["mathperf.extracted"] == "1288"
    assert properties["mathperf.correct"] == "1/1"
    assert "\\boxed{1288}" in properties["mathperf.output"]
    assert float(properties["ttft_ms"]) > 0
    assert float(properties["e2e_ms"]) >= float(properties["ttft_ms"])
    assert float(properties["output_tokens"]) > 1
    assert float(properties["reasoning_tokens"]) > 0
    assert "card 'cpu'" in run.output
    assert "accuracy arithmetic" in run.output and "100% (3/3" in run.output
    assert "RSS peak (GB)" in run.output


def test_a_gate_without_xdist_installed_raises_no_warning(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_scripted("-p", "no:xdist")
    run.result.assert_outcomes(passed=3, warnings=0)


def test_wrong_expected_answer_fails_with_expected_extracted_and_raw_output(pytester, run_gate) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE.replace("answer: 1288", "answer: 1289"))
    run = run_gate()
    run.result.assert_outcomes(passed=2, failed=1)
    run.result.stdout.fnmatch_lines(
        [
            "*wrong: 0 of 1 generations correct (pass rule: majority)*mathperf-tiny*",
            "*expected : 1289",
            "*extracted: 1288 *",
            "*raw output*",
            "*\\boxed{1288}*",
        ]
    )
    failure = run.testcase("add[mathperf-tiny]").find("failure")
    assert failure is not None and "expected : 1289" in failure.text
    assert run.properties("add[mathperf-tiny]")["mathperf.verdict"] == "wrong"


def test_impossible_budget_fails_with_its_numbers(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="ttft_ms: {p50: {max: 0.0001}}\n        rss_peak_gb: {max: 1000}"))
    run = run_scripted()
    run.result.assert_outcomes(passed=4, failed=1)
    run.result.stdout.fnmatch_lines(
        [
            "*budget ttft_ms.p50 failed for mathperf-tiny on cpu",
            "*measured : p50 * ms over 3 samples",
            "*budget   : ≤ 0.0001 ms*thresholds.yaml:6)",
            "*card     : cpu",
            "*samples  : 3",
        ]
    )
    budget = run.properties("mathperf-tiny::ttft_ms.p50")
    assert budget["mathperf.budget"] == "ttft_ms.p50" and budget["mathperf.samples"] == "3"
    assert float(budget["mathperf.measured"]) > 0.0001
    assert run.properties("mathperf-tiny::rss_peak_gb")["mathperf.card"] == "cpu"


def test_broken_suite_is_one_collection_error_and_the_other_suites_run(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "suites/broken.yaml", "suite: broken\ncases:\n  - id: a\n    prompt: [unclosed\n")
    run = run_scripted()
    run.result.assert_outcomes(passed=3, errors=1)
    run.result.stdout.fnmatch_lines(["*suites/broken.yaml:4: YAML syntax error*"])  # where the bracket opened
    assert "Traceback" not in run.output


def test_a_suite_name_two_files_use_is_a_collection_error_naming_both(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "suites/more/arithmetic.yaml", ARITHMETIC_SUITE.replace("answer: 1288", "answer: 1289"))
    run = run_scripted()
    run.result.assert_outcomes(passed=3, errors=1)  # the second file's cases would have replaced the first's results
    run.result.stdout.fnmatch_lines(
        ["*suites/more/arithmetic.yaml:1: suite name 'arithmetic' is also used by *suites/arithmetic.yaml; give one of them another `suite:` name"]
    )
    assert run.result.ret != pytest.ExitCode.OK


def test_unknown_key_names_the_line_and_suggests_the_fix(pytester, run_scripted) -> None:
    write(pytester, "suites/typo.yaml", "cases:\n  - id: a\n    prompt: What is 1 + 2?\n    answr: 3\n")
    run = run_scripted()
    run.result.stdout.fnmatch_lines(["*suites/typo.yaml:4: unknown key 'answr' in a case; did you mean 'answer'?"])


def test_broken_thresholds_file_is_a_usage_error_with_key_path_and_line(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="ttft_msec: {p50: {max: 100}}"))
    run = run_scripted()
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(
        ["*thresholds.yaml:6: cards.'cpu'.models.'mathperf-tiny'.ttft_msec: unknown metric 'ttft_msec'*"]
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("mathperf_strict = maybe", "ERROR: ini option mathperf_strict in */pytest.ini: invalid truth value 'maybe'"),
        ("mathperf_repeats = abc", "ERROR: ini option mathperf_repeats: expected a whole number, got 'abc'"),
    ],
)
def test_a_bad_ini_value_names_the_ini_option(pytester, run_scripted, line: str, message: str) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "pytest.ini", f"[pytest]\n{line}\n")
    run = run_scripted()
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines([message])


def test_an_empty_model_name_is_a_usage_error(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_scripted(models=("",))
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["ERROR: --mathperf-model: an empty model name; give an HF id, a folder or mathperf-tiny"])


def test_unknown_model_is_one_clear_failure_not_one_per_case(pytester, run_gate) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_gate(model="no-such-org/no-such-model")
    run.result.assert_outcomes(failed=1, skipped=2)
    run.result.stdout.fnmatch_lines(
        [
            "*model no-such-org/no-such-model did not load: --mathperf-model no-such-org/no-such-model: cannot load*",
            "NOT LOADED no-such-org/no-such-model: --mathperf-model no-such-org/no-such-model: cannot load*",
        ]
    )
    assert "Traceback" not in run.output


def test_generation_past_timeout_is_an_error_verdict(pytester, run_gate) -> None:
    write(pytester, "suites/slow.yaml", ARITHMETIC_SUITE.replace("max_new_tokens: 64", "max_new_tokens: 64\n  timeout_s: 0.000001"))
    run = run_gate("-k", "add")
    run.result.assert_outcomes(failed=1)
    run.result.stdout.fnmatch_lines(["*error: 0 of 1 generations correct*", "*generation exceeded timeout_s=1e-06*"])


def test_accuracy_budget_decides_and_wrong_case_is_reported_not_failed(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE.replace("answer: 1288", "answer: 1289"))
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="suites:\n          arithmetic: {accuracy: {min: 0.6}}"))
    run = run_scripted("-rs")
    run.result.assert_outcomes(passed=3, skipped=1)
    run.result.stdout.fnmatch_lines(["SKIPPED ?1? suites/arithmetic.yaml:* wrong (0/1 correct), left to the accuracy budget: expected 1289, extracted 1288*"])
    assert run.properties("mathperf-tiny::arithmetic::accuracy")["mathperf.measured"] == "0.6667"
    # CI pages (GitLab, Jenkins, pytest-html) show a skipped case's text, not its properties
    skipped = run.testcase("add[mathperf-tiny]").find("skipped")
    assert skipped is not None and "expected 1289, extracted 1288" in (skipped.text or "")

    strict = run_scripted("--mathperf-strict")
    strict.result.assert_outcomes(passed=3, failed=1)


def test_accuracy_budget_failure_shows_the_share_and_interval(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE.replace("answer: 1288", "answer: 1289"))
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="accuracy: {min: 0.9}"))
    run = run_scripted()
    run.result.assert_outcomes(passed=2, skipped=1, failed=1)
    run.result.stdout.fnmatch_lines(["*measured : 66.7% (2/3, 95% CI 21%–94%) over 3 cases", "*budget   : ≥ 90.0%*"])


@pytest.mark.parametrize(("policy", "outcome"), [("skip", {"skipped": 1}), ("fail", {"failed": 1})])
def test_unknown_card_policy(pytester, run_scripted, policy, outcome) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", f"version: 1\nunknown_card: {policy}\ncards:\n  'NVIDIA H100*':\n    models:\n      '*': {{accuracy: {{min: 1.0}}}}\n")
    run = run_scripted("-rs")
    run.result.assert_outcomes(passed=3, **outcome)
    run.result.stdout.fnmatch_lines(["*no entry for card 'cpu' in *thresholds.yaml (unknown_card: " + policy + ")*"])
    # the reason is in the summary, not only under -rs
    run.result.stdout.fnmatch_lines(["mathperf: NO budget applied to mathperf-tiny (*): no entry for card 'cpu'*"])


def test_markers_and_keywords_narrow_and_budgets_follow_the_selection(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "suites/other.yaml", ARITHMETIC_SUITE.replace("suite: arithmetic", "suite: other"))
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="suites:\n          other: {accuracy: {min: 1.0}}"))
    run = run_scripted("-m", "zh", "suites/arithmetic.yaml")
    # the only budget is for a suite not selected: nothing judges the model, and the summary says so
    run.result.assert_outcomes(passed=1, skipped=1)
    run.result.stdout.fnmatch_lines(["mathperf: NO budget applied to mathperf-tiny (nothing judged it): *only for suites this run does not have: other"])
    assert "sub[mathperf-tiny]" in run.output or run.testcase("sub[mathperf-tiny]") is not None
    assert not [case for case in run.junit.iter("testcase") if "accuracy" in case.get("name", "")]


def test_per_case_budget_is_its_own_item(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE.replace("tags: [en]\n  - id: sub\n", "tags: [en]\n    budgets: {e2e_ms: {max: {max: 0.001}}}\n  - id: sub\n", 1))
    run = run_scripted()
    run.result.assert_outcomes(passed=3, failed=1)
    run.result.stdout.fnmatch_lines(["*budget e2e_ms.max failed for mathperf-tiny in case add on cpu"])


def test_per_case_budgets_of_one_case_id_in_two_suites_stay_with_their_files(pytester, run_scripted) -> None:
    case = '  - id: c1\n    prompt: "What is 705 + 583?"\n    answer: 1288\n    budgets: {{e2e_ms: {{max: {{max: {bound}}}}}}}\n'
    write(pytester, "suites/fast.yaml", "suite: fast\ncases:\n" + case.format(bound=1000))
    write(pytester, "suites/slow.yaml", "suite: slow\ncases:\n" + case.format(bound=0.001))
    run = run_scripted()
    run.result.assert_outcomes(passed=3, failed=1)
    failed = [report.nodeid for report in run.result.reprec.getreports("pytest_runtest_logreport") if report.failed]
    assert failed == ["suites/slow.yaml::c1.e2e_ms.max[mathperf-tiny]"]
    run.result.stdout.fnmatch_lines(["*budget e2e_ms.max failed for mathperf-tiny in case c1 on cpu", "budgets * 1 passed, 1 failed"])


def test_cases_marked_skip_are_left_out_of_budgets_as_deselected_ones_are(pytester, run_scripted) -> None:
    skipped = '    skip: "not today"\n'
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE.replace("    tags: [en]\n  - id: sub\n", f"    tags: [en]\n    budgets: {{e2e_ms: {{max: {{max: 1000}}}}}}\n{skipped}  - id: sub\n", 1))
    write(pytester, "suites/slow.yaml", f'suite: slow\ncases:\n  - id: s1\n    prompt: "What is 1 + 2?"\n    answer: 3\n{skipped}')
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="ttft_ms: {p50: {max: 1000}}\n        suites:\n          slow: {accuracy: {min: 0.9}}"))
    run = run_scripted("-rs")
    run.result.assert_outcomes(passed=3, skipped=2)  # sub and sub-en, the model's ttft budget; add and s1
    run.result.stdout.fnmatch_lines(["SKIPPED * not today", "SKIPPED * not today"])
    assert "add.e2e_ms" not in run.output and "slow::accuracy" not in run.output
    assert run.properties("mathperf-tiny::ttft_ms.p50")["mathperf.samples"] == "2"


def test_two_models_are_compared_side_by_side(pytester, run_gate, tmp_path) -> None:
    second = tmp_path / "tiny-copy"
    shutil.copytree(MODEL_DIR, second)
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_gate(f"--mathperf-model={second}")
    run.result.assert_outcomes(passed=6)
    header = next(line for line in run.output.splitlines() if line.startswith(" ") and str(second) in line)
    assert header.index("mathperf-tiny") < header.index(str(second))
    run.result.stdout.fnmatch_lines(["accuracy arithmetic *100% (3/3*100% (3/3*"])


def test_repeats_and_pass_rule(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE.replace("max_new_tokens: 64", "max_new_tokens: 64\n  temperature: 0.6\n  top_p: 0.95\n  pass_rule: all"))
    run = run_scripted("--mathperf-repeats", "3", "-k", "add")
    run.result.assert_outcomes(passed=1)
    assert run.properties("add[mathperf-tiny]")["mathperf.correct"] == "3/3"


def test_xdist_keeps_properties_and_warns_about_shared_device(pytester, run_scripted) -> None:
    pytest.importorskip("xdist")
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_scripted("-n", "2", "--dist", "loadgroup")
    run.result.assert_outcomes(passed=3)
    assert run.properties("sub[mathperf-tiny]")["mathperf.verdict"] == "correct"
    assert "workers share the device" in run.output
    assert "accuracy arithmetic" in run.output


def test_xdist_is_refused_when_budgets_apply(pytester, run_scripted) -> None:
    pytest.importorskip("xdist")
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="accuracy: {min: 0.9}"))
    run = run_scripted("-n", "2")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["*budgets from *thresholds.yaml need one process*run the gate with -n 0*`version: 1`"])
    # the advice works: answers only, in parallel
    write(pytester, "answers-only.yaml", "version: 1\n")
    parallel = run_scripted("-n", "2", "--mathperf-thresholds", "answers-only.yaml")
    parallel.result.assert_outcomes(passed=3)


def test_a_budget_on_a_metric_this_run_cannot_measure_is_skipped(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="vram_peak_gb: {max: 8}\n        ttfat_ms: {p50: {max: 100}}"))
    run = run_scripted("-rs")
    run.result.assert_outcomes(passed=3, skipped=2)
    run.result.stdout.fnmatch_lines(["*vram_peak_gb is not measured for mathperf-tiny on cpu*"])
    # both budgets judged nothing, so the model meets the no_budget policy as one without budgets would
    unjudged = "mathperf: NO budget judged mathperf-tiny ({effect}): every budget applied to it could not be judged: vram_peak_gb: *"
    run.result.stdout.fnmatch_lines([unjudged.format(effect="nothing judged it")])
    assert run.result.ret == pytest.ExitCode.OK  # thresholds.yaml's default policy is skip
    write(pytester, "thresholds.yaml", "no_budget: fail\n" + CPU_BUDGETS.format(budgets="vram_peak_gb: {max: 8}\n        ttfat_ms: {p50: {max: 100}}"))
    failing = run_scripted("-rs")
    failing.result.assert_outcomes(passed=3, skipped=2)
    failing.result.stdout.fnmatch_lines([unjudged.format(effect="this fails the run")])
    assert failing.result.ret == pytest.ExitCode.TESTS_FAILED
    write(pytester, "thresholds.yaml", "no_budget: fail\n" + CPU_BUDGETS.format(budgets="vram_peak_gb: {max: 8}\n        accuracy: {min: 0.5}"))
    judged = run_scripted("-rs")  # one budget judged it: enough
    assert judged.result.ret == pytest.ExitCode.OK and "NO budget judged" not in judged.output


@pytest.mark.skipif(not shutil.which("nvidia-smi"), reason="needs an NVIDIA GPU: CUDA timing, NVML memory by PCI bus id")
def test_cuda_gate_reads_nvml_memory_and_the_card_name(pytester, run_gate) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_gate("--mathperf-device", "cuda")
    run.result.assert_outcomes(passed=3)
    assert "VRAM peak (GB)" in run.output
    assert "card 'cpu'" not in run.output


def test_runs_are_recorded_and_the_report_is_written(pytester, run_scripted) -> None:
    from pytest_mathperf.history import History

    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    history_path = pytester.path / "history.db"
    for _ in range(2):
        run = run_scripted("--mathperf-history", str(history_path), "--mathperf-html", "report.html", "--mathperf-label", "nightly", history=True)
        run.result.assert_outcomes(passed=3)
    run.result.stdout.fnmatch_lines([f"mathperf: recorded run 2 in {history_path}", "mathperf: wrote *report.html"])
    with History(history_path) as history:
        recorded = history.latest_run()
    assert recorded is not None
    assert {case.case for case in recorded.cases} == {"add", "sub", "sub-en"}
    assert recorded.environment["card"] == "cpu"
    assert recorded.environment["label"] == "nightly"
    assert len(recorded.environment["suite_fingerprint.arithmetic"]) == 12
    assert recorded.models[0].metrics["rss_peak_gb"] > 0
    html = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "mathperf-tiny" in html and "<svg" in html


def test_a_corrupt_history_is_refused_before_the_run(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    (pytester.path / "history.db").write_bytes(b"this is not sqlite" * 100)
    run = run_scripted("--mathperf-history", "history.db", history=True)
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["ERROR: --mathperf-history: *history.db is corrupt or not an SQLite file: file is not a database"])
    assert (pytester.path / "history.db").read_bytes() == b"this is not sqlite" * 100


def test_lf_reruns_a_failed_budget_with_every_case_it_judges(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="ttft_ms: {p50: {max: 1}}\n        accuracy: {min: 0.5}"))
    first = run_scripted(cache=True)
    first.result.assert_outcomes(passed=4, failed=1)
    rerun = run_scripted("--lf", cache=True)
    # the failed budget runs again over all three cases, never alone ("no case ran", green)
    rerun.result.assert_outcomes(passed=3, failed=1)
    rerun.result.stdout.fnmatch_lines(["*budget ttft_ms.p50 failed for mathperf-tiny on cpu", "*samples  : 3"])
    assert not [case for case in rerun.junit.iter("testcase") if case.get("name", "").endswith("accuracy")]


def test_lf_reruns_only_the_failed_case_and_ff_runs_it_first(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE.replace("answer: 51", "answer: 52"))
    first = run_scripted(cache=True)
    first.result.assert_outcomes(passed=2, failed=1)
    rerun = run_scripted("--lf", cache=True)
    rerun.result.assert_outcomes(failed=1)
    assert [case.get("name") for case in rerun.junit.iter("testcase")] == ["sub-en[mathperf-tiny]"]
    failed_first = run_scripted("--ff", cache=True)
    failed_first.result.assert_outcomes(passed=2, failed=1)
    assert [case.get("name") for case in failed_first.junit.iter("testcase")][0] == "sub-en[mathperf-tiny]"


def test_a_per_case_budget_typo_is_reported_at_its_own_line(pytester, run_scripted) -> None:
    suite = ARITHMETIC_SUITE.replace("    tags: [en]\n  - id: sub\n", "    tags: [en]\n    budgets:\n      ttft_ms:\n        p50: {maxx: 5}\n  - id: sub\n", 1)
    path = write(pytester, "suites/arithmetic.yaml", suite)
    line = path.read_text(encoding="utf-8").splitlines().index("        p50: {maxx: 5}") + 1
    run = run_scripted()
    run.result.stdout.fnmatch_lines([f"*suites/arithmetic.yaml:{line}: unknown key 'maxx' in budgets.ttft_ms.p50; did you mean 'max'?"])
    assert run.result.ret != 0


def test_a_bad_choice_is_a_usage_error_at_start_up(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_scripted("--mathperf-dtype", "bogus")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["*--mathperf-dtype: 'bogus' is not one of auto | float16 | bfloat16 | float32"])
    device = run_scripted("--mathperf-device", "gpu0")
    device.result.stderr.fnmatch_lines(["*--mathperf-device: 'gpu0' is not one of auto | cpu | cuda | cuda:N"])


def test_budgets_that_apply_to_nothing_are_never_silently_green(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(
        pytester,
        "thresholds.yaml",
        """
        version: 1
        no_budget: fail
        cards:
          cpu:
            models:
              mathperf-tnyi: {accuracy: {min: 0.9}}
              mathperf-tiny:
                suites:
                  geometry: {accuracy: {min: 0.9}}
        """,
    )
    run = run_scripted()
    run.result.assert_outcomes(passed=3, failed=1)
    run.result.stdout.fnmatch_lines(
        [
            "*the entry for 'mathperf-tiny' on 'cpu' in *thresholds.yaml (no_budget: fail) has budgets only for "
            "suites this run does not have: geometry",
            "mathperf: NO budget applied to mathperf-tiny (this fails the run): *",
        ]
    )
    write(pytester, "thresholds.yaml", CPU_BUDGETS.replace("mathperf-tiny", "mathperf-tnyi").format(budgets="accuracy: {min: 0.9}"))
    typo = run_scripted()
    typo.result.assert_outcomes(passed=3, skipped=1)
    typo.result.stdout.fnmatch_lines(
        ["mathperf: NO budget applied to mathperf-tiny (nothing judged it): no entry for model 'mathperf-tiny' under "
         "card 'cpu' in *thresholds.yaml (no_budget: skip) — did you mean model 'mathperf-tnyi' (line 5)?"]
    )
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="accuracy: {min: 0.9}"))
    judged = run_scripted()
    judged.result.stdout.fnmatch_lines(["mathperf: 1 budget applied to mathperf-tiny on 'cpu'"])


def test_a_failed_generation_is_counted_and_never_averaged_into_timing_budgets(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE.replace("max_new_tokens: 64", "max_new_tokens: 64\n  timeout_s: 5"))
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="tokens_per_s: {mean: {min: 200}}"))
    # 12 tokens in 50 ms = 240 tok/s; the timed-out generation (12 tokens in 5 s) would pull the mean to 161
    run = run_scripted(scripts={"*": {"timeouts": {"527 - 476": 5000.0}}})
    run.result.assert_outcomes(passed=3, failed=1)
    assert run.properties("mathperf-tiny::tokens_per_s.mean")["mathperf.measured"] == "240.0"
    assert run.properties("mathperf-tiny::tokens_per_s.mean")["mathperf.samples"] == "2"
    run.result.stdout.fnmatch_lines(["failed generations (not in timings)*1", "*sub-en*error*"])


def test_a_backend_that_stops_on_its_own_time_limit_gives_an_error_verdict(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)  # no timeout_s: the limit is the backend's
    run = run_scripted(scripts={"*": {"timeouts": {"527 - 476": 60000.0}}})
    run.result.assert_outcomes(passed=2, failed=1)
    run.result.stdout.fnmatch_lines(["*error: 0 of 1 generations correct*", "*generation exceeded the backend's time limit after 12 tokens*"])
    assert "Traceback" not in run.output


def test_a_busy_host_makes_a_failing_timing_budget_inconclusive_and_says_so(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="ttft_ms: {p50: {max: 1}}\n        accuracy: {min: 0.9}"))
    # a real competing CPU-bound process on every core, for the whole run
    hogs = [subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 30\nwhile time.time() < end: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        run = run_scripted("-rs", scripts={"*": {"e2e_ms": [300.0], "sleep": True}}, busy_guard=True)
    finally:
        for hog in hogs:
            hog.kill()
    run.result.assert_outcomes(passed=4, skipped=1)
    run.result.stdout.fnmatch_lines(
        [
            "HOST BUSY while mathperf-tiny was measured: other processes used *",
            "INCONCLUSIVE budget thresholds.yaml::mathperf-tiny::ttft_ms.p50: *the host was busy*",
            "INCONCLUSIVE * inconclusive: * against ≤ 1 ms: the host was busy: other processes used * cores while it was measured*",
        ]
    )
    assert run.properties("mathperf-tiny::ttft_ms.p50")["mathperf.verdict"] == "inconclusive"
    # memory and accuracy are judged as ever
    assert run.properties("mathperf-tiny::accuracy")["mathperf.verdict"] == "passed"


def test_a_slower_candidate_is_a_regression_on_timing_and_within_margin_on_accuracy(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES)
    write(pytester, "thresholds.yaml", COMPARE)
    jitter = [5.0, 5.5, 4.8, 5.2, 5.1, 4.9]
    scripts = {
        "base": {"ttft_ms": jitter, "e2e_ms": [50.0, 52.0, 49.0]},
        "slow": {"ttft_ms": [3 * t for t in jitter], "e2e_ms": [150.0, 156.0, 147.0]},
    }
    run = run_scripted("-rs", scripts=scripts, models=("base", "slow"))
    run.result.assert_outcomes(passed=24 + 1, failed=2)  # the baseline is judged by the comparisons
    ttft = run.properties("slow::compare::ttft_ms.p50")
    assert ttft["mathperf.verdict"] == "regression" and ttft["mathperf.baseline"] == "base"
    assert 2.9 < float(ttft["mathperf.ratio"]) < 3.1 and float(ttft["mathperf.ci_low"]) > 1.25
    assert float(ttft["mathperf.p_value"]) < 0.01
    assert float(ttft["mathperf.ci_level"]) == pytest.approx(1 - 0.05 / 3, abs=1e-5)  # Bonferroni over 3 comparisons
    assert run.properties("slow::compare::accuracy")["mathperf.verdict"] == "within_margin"
    run.result.stdout.fnmatch_lines(
        [
            "*regression: ttft_ms.p50 of slow against base on cpu",
            "*ratio    : 3.0?× ?*×, *×?   (margin ratio ≤ 1.25; 98.3% interval)",
            "comparison * verdict",
            "ttft_ms.p50 * slow * base * REGRESSION",
            "mathperf: 0 budgets applied to base on 'cpu', and it is the baseline of the comparisons",
            "mathperf: 0 budgets applied to slow on 'cpu', 3 comparisons against base",
        ]
    )


def test_a_less_accurate_candidate_is_a_regression_and_an_equal_one_never_is(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES)
    write(pytester, "thresholds.yaml", COMPARE)
    wrong = {f"{100 + i} + {7 * i}": "\\\\boxed{0}" for i in range(6)}  # half the cases
    scripts = {"base": {}, "noisy": {"answers": wrong}, "same": {}}
    run = run_scripted(scripts=scripts, models=("base", "noisy", "same"), )
    accuracy = run.properties("noisy::compare::accuracy")
    assert accuracy["mathperf.verdict"] == "regression"
    assert float(accuracy["mathperf.drop"]) == 0.5 and float(accuracy["mathperf.ci_low"]) > 0.05
    same = [run.properties(f"same::compare::{name}")["mathperf.verdict"] for name in ("ttft_ms.p50", "tokens_per_s.mean", "accuracy")]
    assert same == ["within_margin"] * 3


def test_a_comparison_whose_baseline_is_deselected_says_so_instead_of_vanishing(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES)
    write(pytester, "thresholds.yaml", COMPARE)
    run = run_scripted("-rs", "-k", "slow", models=("base", "slow"))
    run.result.assert_outcomes(passed=12, skipped=3)  # base's 12 cases deselected; slow's 3 comparisons shown
    run.result.stdout.fnmatch_lines(
        ["SKIPPED * cannot compare with base: the baseline ran no case: this run's selection (-k, -m or paths) left out its cases*"]
    )
    run.result.stdout.fnmatch_lines(["mathperf: 0 budgets applied to slow on 'cpu', 3 comparisons against base"])


def test_a_candidate_is_compared_with_its_blessed_run(pytester, run_scripted) -> None:
    from pytest_mathperf.cli import main

    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES)
    write(pytester, "thresholds.yaml", COMPARE)
    history = str(pytester.path / "history.db")
    jitter = [5.0, 5.5, 4.8, 5.2, 5.1, 4.9]
    first = run_scripted("--mathperf-history", history, scripts={"m": {"ttft_ms": jitter}}, models=("m",), history=True)
    first.result.assert_outcomes(passed=12, skipped=1)  # alone, nothing to compare with: the policy says so
    missing = run_scripted("--mathperf-history", history, "--mathperf-baseline", "blessed", models=("m",), history=True)
    assert missing.result.ret == pytest.ExitCode.USAGE_ERROR
    missing.result.stderr.fnmatch_lines(["*no blessed run of m on 'cpu' in *history.db; mark three with `mathperf bless RUN RUN RUN`"])
    assert main(["bless", "1", "--history", history]) == 0
    slower = {"m": {"ttft_ms": [4 * t for t in jitter]}}
    alone = run_scripted("-rs", "--mathperf-history", history, "--mathperf-baseline", "blessed", scripts=slower, models=("m",), history=True)
    alone.result.stdout.fnmatch_lines(["*cannot compare with blessed run 1: 1 blessed run(s): a timing against stored runs needs 3*bless 2 more*"])
    assert alone.properties("m::compare::accuracy")["mathperf.verdict"] == "within_margin"  # accuracy needs no run spread
    for _ in range(2):
        run_scripted("--mathperf-history", history, scripts={"m": {"ttft_ms": jitter}}, models=("m",), history=True)
    assert main(["bless", "1", "3", "4", "--history", history]) == 0
    run = run_scripted("--mathperf-history", history, "--mathperf-baseline", "blessed", scripts=slower, models=("m",), history=True)
    ttft = run.properties("m::compare::ttft_ms.p50")
    assert ttft["mathperf.baseline"] == "blessed runs 1, 3, 4" and ttft["mathperf.verdict"] == "regression"
    from pytest_mathperf.history import History

    with History(history) as store:
        assert [c.verdict for c in store.run(5).comparisons if c.name == "ttft_ms.p50"] == ["regression"]


def test_bless_warns_about_a_run_that_failed_its_gate_or_met_a_busy_host(pytester, run_scripted, capsys) -> None:
    from pytest_mathperf.cli import main

    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="ttft_ms: {p50: {max: 1}}"))
    history = str(pytester.path / "history.db")
    failed = run_scripted("--mathperf-history", history, history=True)
    assert failed.result.ret == 1
    assert main(["bless", "1", "--history", history]) == 0
    err = capsys.readouterr().err
    assert "warning: run 1 failed its gate (ttft_ms.p50): a baseline that fails lets worse through" in err
    assert "timings against blessed runs need 3 blessed together" in err


def test_inconclusive_more_runs_further_repeats_of_both_models_up_to_max_repeats(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES)
    write(
        pytester,
        "thresholds.yaml",
        COMPARE.replace("version: 1\n", "version: 1\ncompare_defaults: {inconclusive: more, max_repeats: 4}\n")
        .replace("          tokens_per_s: {mean: {min_ratio: 0.8}}\n", "").replace("          accuracy: {max_drop: 0.05}\n", ""),
    )
    # the candidate's median sits right on the margin's edge: no number of repeats settles it
    scripts = {"base": {"ttft_ms": [5.0]}, "edge": {"ttft_ms": [4.0, 7.5]}}
    history = str(pytester.path / "history.db")
    run = run_scripted("-rs", "--mathperf-history", history, scripts=scripts, models=("base", "edge"), history=True)
    ttft = run.properties("edge::compare::ttft_ms.p50")
    assert ttft["mathperf.verdict"] == "inconclusive"
    assert ttft["mathperf.samples"] == "48"  # 12 cases, doubled twice: 1 → 2 → 4 repeats
    run.result.stdout.fnmatch_lines(["*still inconclusive at 4 repeats (max_repeats 4)*"])
    from pytest_mathperf.history import History

    with History(history) as store:  # the run keeps the samples the verdict was decided on, both models'
        stored = store.run(1)
    assert {len(case.generations) for case in stored.cases} == {4} and len(stored.cases) == 24
    assert sorted({g.seed for case in stored.cases for g in case.generations}) == [0, 1, 2, 3]  # new repeats, new seeds
    assert run.result.ret == 0  # "more" still undecided: passes, visibly; "fail" would not
    write(pytester, "thresholds.yaml", COMPARE.replace("version: 1\n", "version: 1\ncompare_defaults: {inconclusive: fail}\n"))
    strict = run_scripted(scripts=scripts, models=("base", "edge"))
    strict.result.stdout.fnmatch_lines(["*policy   : compare_defaults.inconclusive: fail"])
    assert strict.result.ret == 1


def test_a_budget_refuses_token_rates_from_estimated_counts_unless_allowed(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", CPU_BUDGETS.format(budgets="tokens_per_s: {mean: {min: 1}}\n        ttft_ms: {p50: {max: 100}}"))
    scripts = {"*": {"counted_by_chunks": True}}
    run = run_scripted("-rs", scripts=scripts)
    run.result.assert_outcomes(passed=4, skipped=1)  # TTFT does not rest on a count: judged
    run.result.stdout.fnmatch_lines(["*every tokens_per_s of mathperf-tiny rests on an estimated token count*--mathperf-allow-estimated-counts accepts them"])
    allowed = run_scripted("--mathperf-allow-estimated-counts", scripts=scripts)
    allowed.result.assert_outcomes(passed=5)


def test_lf_reruns_a_failed_comparison_with_both_models_cases(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES)
    write(pytester, "thresholds.yaml", COMPARE)
    scripts = {"base": {"ttft_ms": [5.0, 5.5, 4.8]}, "slow": {"ttft_ms": [15.0, 16.5, 14.4], "e2e_ms": [150.0]}}
    run_scripted(scripts=scripts, models=("base", "slow"), cache=True)
    rerun = run_scripted("--lf", scripts=scripts, models=("base", "slow"), cache=True)
    # never a comparison alone, skipped for want of a baseline: both models' cases run again
    rerun.result.assert_outcomes(passed=24, failed=2)
    assert rerun.properties("slow::compare::ttft_ms.p50")["mathperf.verdict"] == "regression"


def test_inconclusive_more_on_accuracy_runs_under_sampling_and_says_when_greedy_decoding_cannot_help(pytester, run_scripted) -> None:
    write(
        pytester,
        "thresholds.yaml",
        COMPARE.replace("version: 1\n", "version: 1\ncompare_defaults: {inconclusive: more, max_repeats: 4}\n")
        .replace("          ttft_ms: {p50: {max_ratio: 1.25}}\n", "").replace("          tokens_per_s: {mean: {min_ratio: 0.8}}\n", ""),
    )
    scripts = {"base": {}, "cand": {"answers": {"What is 100 + 0?": "\\boxed{7}"}}}  # one case of twelve wrong
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES)
    greedy = run_scripted("-rs", scripts=scripts, models=("base", "cand"))
    assert greedy.properties("cand::compare::accuracy")["mathperf.verdict"] == "inconclusive"
    greedy.result.stdout.fnmatch_lines(["*more repeats cannot help: with greedy decoding (temperature 0) every repeat gives the same answer*"])
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES.replace("cases:\n", "defaults: {temperature: 0.6}\ncases:\n", 1))
    sampled = run_scripted("-rs", scripts=scripts, models=("base", "cand"))
    assert sampled.properties("cand::compare::accuracy")["mathperf.verdict"] == "inconclusive"
    sampled.result.stdout.fnmatch_lines(["*still inconclusive at 4 repeats (max_repeats 4)*"])
