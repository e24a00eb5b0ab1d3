"""Round three of answer checking through the gate: a hedged answer fails its case and says why,
an answer in another language passes (the rules themselves are in the labelled corpus)."""

from __future__ import annotations

import pytest
from conftest import write

SUITE = """
suite: round3
defaults:
  max_new_tokens: 32
cases:
  - id: hedged
    prompt: "What is 705 + 583?"
    answer: 1288
  - id: french
    prompt: "Combien font 527 - 476 ?"
    answer: 51
  - id: checked
    prompt: "计算 501 - 885。"
    answer: -384
"""

ANSWERS = {
    "705": "<think>705 + 583</think>The answer is \\boxed{1288}, but I'm not sure this is right.",
    "527": "<think>527 - 476</think>Donc la réponse est 51.",
    "501": "<think>501 - 885</think>答案是 -384，还需检验。检验：-384 + 885 = 501，正确。",
}


def test_a_hedged_answer_fails_with_the_words_that_doubt_it(pytester: pytest.Pytester, run_scripted) -> None:
    write(pytester, "suites/round3.yaml", SUITE)
    run = run_scripted(scripts={"*": {"answers": ANSWERS}})
    run.result.assert_outcomes(passed=2, failed=1)
    run.result.stdout.fnmatch_lines(["*extracted: 1288 *wrong, the output doubts or withdraws its answer: 'I'm not sure'*"])
    assert run.properties("hedged[")["mathperf.verdict"] == "wrong"
    assert run.properties("french[")["mathperf.extracted"] == "51"
    assert run.properties("checked[")["mathperf.verdict"] == "correct"  # the check it left was done and confirms
