"""Answers at concurrency N, timings on a batch-1 latency sample; batched generation; stopping early."""

from __future__ import annotations

import pytest
from conftest import TWELVE_CASES, write

from pytest_mathperf.answer_pass import decided
from pytest_mathperf.backends import GenerationRequest, Message
from pytest_mathperf.concurrent import generate_many
from pytest_mathperf.suite import Case

BUDGETS = """
version: 1
cards:
  cpu:
    models:
      "*":
        ttft_ms: {p50: {max: 100}}
        accuracy: {min: 0.5}
        answer_tokens_per_s: {min: 1}
"""


def _request(prompt: str, max_new_tokens: int = 64) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", prompt),), max_new_tokens=max_new_tokens)


@pytest.fixture(scope="module")
def demo_backend():
    from pytest_mathperf.backends import BackendOptions
    from pytest_mathperf.backends.hf import HFBackend

    backend = HFBackend(BackendOptions(model="mathperf-tiny", device="cpu"))
    backend.load()
    yield backend
    backend.close()


def test_a_batch_answers_as_one_by_one_and_counts_no_padding(demo_backend) -> None:
    # prompts of different lengths, so the shorter ones are left-padded
    requests = [_request("What is 12 + 30?"), _request("计算 705 + 583。"), _request("What is 527 - 476?")]
    alone = [demo_backend.generate(request) for request in requests]
    together = demo_backend.generate_batch(requests)
    assert len({g.prompt_tokens for g in alone}) > 1  # the padding was really there
    for single, batched in zip(alone, together):
        assert batched.text == single.text
        assert batched.output_tokens == single.output_tokens
        assert batched.prompt_tokens == single.prompt_tokens
        assert batched.finish_reason == single.finish_reason == "stop"
        assert batched.reasoning_tokens == single.reasoning_tokens


def test_rows_cut_at_max_new_tokens_finish_by_length_and_mixed_settings_batch_apart(demo_backend) -> None:
    requests = [_request("What is 12 + 30?", 4), _request("What is 527 - 476?", 64), _request("计算 85 + 470。", 4)]
    outcomes, used = generate_many(demo_backend, requests, 8)
    assert used == 8
    assert [o.finish_reason for o in outcomes] == ["length", "stop", "length"]
    assert [o.output_tokens for o in outcomes][::2] == [4, 4]
    assert "51" in outcomes[1].text  # in order: the second request's answer is the second result
    with pytest.raises(ValueError, match="must share max_new_tokens"):
        demo_backend.generate_batch(requests)


def test_a_backend_without_batches_or_streams_runs_one_at_a_time_and_says_so() -> None:
    class Plain:
        def generate(self, request: GenerationRequest):
            return request.max_new_tokens

    outcomes, used = generate_many(Plain(), [_request("a", 3), _request("b", 5)], 16)
    assert (outcomes, used) == ([3, 5], 1)


@pytest.mark.parametrize(
    ("rule", "correct", "done", "planned", "known"),
    [
        ("majority", 6, 6, 10, True),  # 6 of 10 already a majority
        ("majority", 5, 5, 10, False),  # 5 of 10 is not: one more decides
        ("majority", 0, 5, 10, True),  # at most 5 of 10: never a majority
        ("all", 3, 4, 10, True),  # one wrong fails "all"
        ("all", 4, 4, 10, False),
        ("any", 1, 1, 10, True),
        ("any", 0, 9, 10, False),
    ],
)
def test_a_pass_rule_is_decided_only_when_no_remaining_repeat_can_change_it(rule, correct, done, planned, known) -> None:
    case = Case(id="c", prompt="p", answer="1", line=1, pass_rule=rule)
    assert decided(case, correct, done, planned) is known


def test_timing_budgets_judge_the_batch1_sample_and_answers_run_at_concurrency(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES.replace("cases:\n", "defaults: {repeats: 3}\ncases:\n", 1))
    write(pytester, "thresholds.yaml", BUDGETS)
    # alone a generation's first token takes 5 ms; in a batch, 900 ms: a mixed-in batch figure fails the budget
    gate = run_scripted("--mathperf-concurrency=4", scripts={"*": {"batch_ttft_ms": 900.0}})
    gate.result.assert_outcomes(passed=12 + 3)
    ttft = gate.properties("ttft_ms.p50")
    assert (ttft["mathperf.measured"], ttft["mathperf.samples"]) == ("5.0", "12")  # one latency sample per case
    assert gate.properties("c0[")["mathperf.correct"] == "3/3"
    rows = gate.output
    assert "answer pass: concurrency" in rows and "time to verdict" in rows
    assert "latency sample" in rows


def test_one_by_one_every_repeat_is_a_timing_sample(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES.replace("cases:\n", "defaults: {repeats: 3}\ncases:\n", 1))
    write(pytester, "thresholds.yaml", BUDGETS.replace("        answer_tokens_per_s: {min: 1}\n", ""))
    gate = run_scripted(scripts={"*": {"batch_ttft_ms": 900.0}})
    assert gate.properties("ttft_ms.p50")["mathperf.samples"] == "36"
    assert "answer pass" not in gate.output


def test_stopping_early_keeps_every_verdict_and_spends_fewer_generations(pytester, run_scripted) -> None:
    write(
        pytester, "suites/arithmetic.yaml",
        'suite: arithmetic\ndefaults: {repeats: 5}\ncases:\n'
        '  - {id: right, prompt: "What is 1 + 2?", answer: 3}\n'
        '  - {id: wrong, prompt: "What is 2 + 2?", answer: 5}\n'
        '  - {id: every, prompt: "What is 3 + 3?", answer: 6, pass_rule: all}\n',
    )  # fmt: skip
    gate = run_scripted("--mathperf-stop-early", "--mathperf-concurrency=2")
    gate.result.assert_outcomes(passed=2, failed=1)
    assert gate.properties("right[")["mathperf.correct"] == "3/3"  # a majority of 5 after 3
    assert gate.properties("wrong[")["mathperf.correct"] == "0/3"  # no majority of 5 possible after 3 wrong
    assert gate.properties("every[")["mathperf.correct"] == "5/5"  # "all" needs every one


def test_a_served_model_answers_over_concurrent_streams_in_order(served_model) -> None:
    from pytest_mathperf.backends import BackendOptions
    from pytest_mathperf.backends.openai import OpenAIBackend

    backend = OpenAIBackend(BackendOptions(model=served_model.model, endpoint=served_model.base_url))
    backend.load()
    try:
        prompts = ["What is 12 + 30?", "What is 527 - 476?", "计算 85 + 470。", "What is 100 + 1?"]
        outcomes, used = generate_many(backend, [_request(prompt, 48) for prompt in prompts], 4)
    finally:
        backend.close()
    assert used == 4
    assert [type(outcome).__name__ for outcome in outcomes] == ["Generation"] * 4
    assert all(outcome.output_tokens > 0 for outcome in outcomes)
    assert ["42" in outcomes[0].text, "51" in outcomes[1].text, "555" in outcomes[2].text] == [True, True, True]


def test_plan_estimates_each_concurrency_from_the_history(pytester, run_scripted, capsys) -> None:
    from pytest_mathperf.cli import main

    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES.replace("cases:\n", "defaults: {repeats: 3}\ncases:\n", 1))
    history = pytester.path / ".mathperf" / "history.db"
    assert main(["plan", str(pytester.path / "suites"), "--model", "mathperf-tiny", "--history", str(history), "--card", "cpu"]) == 0
    assert "no run of mathperf-tiny on 'cpu' in the history yet" in capsys.readouterr().out
    run_scripted("--mathperf-concurrency=4", history=True)
    capsys.readouterr()  # the gate's own output
    code = main(
        ["plan", str(pytester.path / "suites"), "--model", "mathperf-tiny", "--history", str(history), "--card", "cpu",
         "--concurrency", "1", "4", "8"]
    )  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    # scripted: 12 tokens in 50 ms, first after 5 ms, so one generation alone takes 50 ms; 36 of them
    assert "12 tokens per answer, TTFT 5 ms and TPOT 4.1 ms at batch 1" in lines[1]
    assert "generations one by one 1.8 s" in lines[2]
    assert "latency sample 0.6 s" in lines[3] and "answer pass" in lines[3]
    assert lines[4] == "  concurrency   8: not measured on 'cpu' yet (run the gate once with --mathperf-concurrency 8)"


def test_a_suite_sets_its_own_latency_sample_and_a_bad_one_names_its_line(pytester, run_scripted) -> None:
    suite = TWELVE_CASES.replace("cases:\n", "defaults: {repeats: 3}\nlatency: {repeats: 2}\ncases:\n", 1)
    write(pytester, "suites/arithmetic.yaml", suite)
    write(pytester, "thresholds.yaml", BUDGETS.replace("        answer_tokens_per_s: {min: 1}\n", ""))
    gate = run_scripted("--mathperf-concurrency=4", scripts={"*": {"batch_ttft_ms": 900.0}})
    assert gate.properties("ttft_ms.p50")["mathperf.samples"] == "24"
    gate = run_scripted("--mathperf-concurrency=4", "--mathperf-latency-repeats=3", scripts={"*": {"batch_ttft_ms": 900.0}})
    assert gate.properties("ttft_ms.p50")["mathperf.samples"] == "36"  # the command line over the suite
    write(pytester, "suites/arithmetic.yaml", suite.replace("latency: {repeats: 2}", "latency:\n  max_new_tokens: lots"))
    gate = run_scripted("--mathperf-concurrency=4")
    gate.result.stdout.fnmatch_lines(["*arithmetic.yaml:4: latency.max_new_tokens: expected a whole number >= 0, got 'lots'*"])


def test_a_latency_sample_cut_at_its_cap_keeps_its_timings_and_the_answer_is_generated_whole(pytester, run_gate) -> None:
    write(pytester, "suites/one.yaml", 'suite: one\ndefaults: {repeats: 2}\ncases:\n  - {id: add, prompt: "What is 12 + 30?", answer: 42}\n')
    gate = run_gate("--mathperf-concurrency=2", "--mathperf-latency-tokens=3", "--mathperf-warmup-tokens=3")
    gate.result.assert_outcomes(passed=1)
    properties = gate.properties("::add[")
    assert properties["mathperf.correct"] == "2/2"
    assert properties["mathperf.latency_tokens"] == "3" and properties["mathperf.concurrency"] == "1"
    assert float(properties["output_tokens"]) > 3  # the whole answer's count; its timings are the 3-token sample's


def test_trends_and_history_summaries_leave_out_timings_taken_under_concurrency() -> None:
    from pytest_mathperf.history.summaries import metric_stats
    from pytest_mathperf.results import CaseRecord, GenerationRecord

    def generation(repeat: int, ttft_ms: float, concurrency: str) -> GenerationRecord:
        return GenerationRecord(
            repeat, repeat, "correct", "3", "", "stop", {"ttft_ms": ttft_ms, "output_tokens": 12.0}, "3",
            facts={"concurrency": concurrency},
        )  # fmt: skip

    case = CaseRecord("m", "s", "c", "id", "p", "3", (), "majority", True, (generation(0, 5.0, "1"), generation(1, 900.0, "8")))
    stats = metric_stats([case])
    assert stats[("ttft_ms", "s")].count == 1 and stats[("output_tokens", "s")].count == 2
