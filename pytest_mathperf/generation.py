"""One measured generation and its answer's verdict, whatever order the runner makes them in."""

from __future__ import annotations

from collections.abc import Callable

from pytest_mathperf.backends import Backend, BackendError, GenerationRequest
from pytest_mathperf.results import GenerationRecord
from pytest_mathperf.suite import Case


def generate_and_check(
    backend: Backend, request: GenerationRequest, case: Case, repeat: int, mismatch_of: Callable[[str | None], str | None] | None = None,
    fail_on_mismatch: bool = False,
) -> GenerationRecord:
    """Generate once and judge the answer; a backend's failure is this generation's ``error`` verdict.

    ``mismatch_of`` says why the model a server answered as is not the one asked for (and counts it);
    with ``fail_on_mismatch`` such an answer is an ``error``, whatever it says.
    """
    from pytest_mathperf.answers import Verdict, check_answer

    try:
        generation = backend.generate(request)
    except BackendError as error:
        verdict, text, metrics, finish, facts = Verdict.error(str(error)), str(error), {}, None, {}
    else:
        text, metrics, finish = generation.text, generation.metrics(), generation.finish_reason
        facts = generation.facts()
        mismatch = mismatch_of(generation.served_model) if mismatch_of is not None else None
        if mismatch is not None and fail_on_mismatch:
            verdict = Verdict.error(f"{mismatch} (--mathperf-model-mismatch fail)")
        elif generation.finish_reason == "timeout":
            # without the case's timeout_s, the limit was the backend's own (a server's, say)
            limit = "the backend's time limit" if case.timeout_s is None else f"timeout_s={case.timeout_s:g}"
            verdict = Verdict.error(f"generation exceeded {limit} after {generation.output_tokens} tokens")
        else:
            verdict = check_answer(
                generation.text,
                case.answer,
                rel_tol=case.rel_tol,
                unordered=case.unordered,
                percent=case.percent,
                truncated=generation.finish_reason == "length",
            )
    return GenerationRecord(
        repeat=repeat,
        seed=request.seed,
        status=verdict.status,
        extracted=verdict.extracted,
        reason=verdict.reason,
        finish_reason=finish,
        metrics=metrics,
        output=text,
        facts=facts,
    )
