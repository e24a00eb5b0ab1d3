"""One measured generation and its answer's verdict, whatever order the runner makes them in."""

from __future__ import annotations

from collections.abc import Callable

from pytest_mathperf.backends import Backend, BackendError, Generation, GenerationRequest
from pytest_mathperf.results import GenerationRecord
from pytest_mathperf.suite import Case


def generate_and_check(
    backend: Backend, request: GenerationRequest, case: Case, repeat: int, mismatch_of: Callable[[str | None], str | None] | None = None,
    fail_on_mismatch: bool = False,
) -> GenerationRecord:
    """Generate once and judge the answer; a backend's failure is this generation's ``error`` verdict."""
    try:
        outcome: Generation | BackendError = backend.generate(request)
    except BackendError as error:
        outcome = error
    return judged_record(case, repeat, request.seed, outcome, mismatch_of, fail_on_mismatch)


def judged_record(
    case: Case, repeat: int, seed: int, outcome: Generation | BackendError,
    mismatch_of: Callable[[str | None], str | None] | None = None, fail_on_mismatch: bool = False,
) -> GenerationRecord:
    """One generation (or its backend error) with its answer checked against the case's.

    ``mismatch_of`` says why the model a server answered as is not the one asked for (and counts it);
    with ``fail_on_mismatch`` such an answer is an ``error``, whatever it says.
    """
    from pytest_mathperf.answers import Verdict, check_answer

    if isinstance(outcome, BackendError):
        verdict, text, metrics, finish, facts = Verdict.error(str(outcome)), str(outcome), {}, None, {}
    else:
        text, metrics, finish, facts = outcome.text, outcome.metrics(), outcome.finish_reason, outcome.facts()
        mismatch = mismatch_of(outcome.served_model) if mismatch_of is not None else None
        if mismatch is not None and fail_on_mismatch:
            verdict = Verdict.error(f"{mismatch} (--mathperf-model-mismatch fail)")
        elif finish == "timeout":
            # without the case's timeout_s, the limit was the backend's own (a server's, say)
            limit = "the backend's time limit" if case.timeout_s is None else f"timeout_s={case.timeout_s:g}"
            verdict = Verdict.error(f"generation exceeded {limit} after {outcome.output_tokens} tokens")
        else:
            verdict = check_answer(
                text, case.answer, rel_tol=case.rel_tol, unordered=case.unordered, percent=case.percent,
                truncated=finish == "length",
            )  # fmt: skip
    return GenerationRecord(
        repeat=repeat, seed=seed, status=verdict.status, extracted=verdict.extracted, reason=verdict.reason,
        finish_reason=finish, metrics=metrics, output=text, facts=facts,
    )  # fmt: skip
