"""What the run header says after collection: which suites each model runs, so a second model
that brings suites of its own (``models:`` globs in a suite file) is seen before it runs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SelectedCase:
    """One selected case item, as the header counts it."""

    model: str
    suite: str
    max_new_tokens: int
    generations: int


def suites_lines(cases: Iterable[SelectedCase], models: Sequence[str]) -> list[str]:
    """One line per model: its suites with their case counts, the generations and the longest output allowed."""
    per_model: dict[str, dict[str, int]] = {model: {} for model in models}
    generations: dict[str, int] = dict.fromkeys(models, 0)
    longest: dict[str, int] = dict.fromkeys(models, 0)
    for case in cases:
        suites = per_model.setdefault(case.model, {})
        suites[case.suite] = suites.get(case.suite, 0) + 1
        generations[case.model] = generations.get(case.model, 0) + case.generations
        longest[case.model] = max(longest.get(case.model, 0), case.max_new_tokens)
    lines = []
    for model, suites in per_model.items():
        if not suites:
            lines.append(f"mathperf: {model} runs no case (no suite's models: matches it, or the selection left none)")
            continue
        listed = ", ".join(f"{suite} ({count} case{'s' if count != 1 else ''})" for suite, count in sorted(suites.items()))
        lines.append(
            f"mathperf: {model} runs {listed}: {generations[model]} generations, max_new_tokens up to {longest[model]}"
        )
    ran = {frozenset(suites) for suites in per_model.values() if suites}
    if len(ran) > 1:
        lines.append("mathperf: the models run different suites; a comparison compares only the cases both ran")
    return lines
