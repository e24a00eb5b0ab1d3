"""Time to verdict: how long the gate took, and where the time went (load, warm-up, the two passes)."""

from __future__ import annotations

from pytest_mathperf.results import RunRecord

#: Per-model phases, in the order they happen, with the words the summary uses.
PHASES: tuple[tuple[str, str], ...] = (
    ("load_s", "load"),
    ("warmup_s", "warm-up"),
    ("latency_sample_s", "latency sample"),
    ("answer_pass_s", "answer pass"),
)


def duration_text(seconds: float) -> str:
    """``2 h 10 min``, ``9 min``, ``42 s``: as precise as a person planning a CI job needs."""
    if seconds >= 3600:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    if seconds >= 120:
        return f"{round(seconds / 60)} min"
    return f"{seconds:.1f} s" if seconds < 10 else f"{round(seconds)} s"


def time_to_verdict_lines(run: RunRecord) -> list[str]:
    """One line: the whole session, then each model's phases, then what is left (start-up, collection, judging, recording)."""
    wall = run.finished_at - run.started_at
    if wall <= 0:
        return []
    parts, accounted = [], 0.0
    for record in run.models:
        phases = [(words, record.metrics[name]) for name, words in PHASES if name in record.metrics]
        if "answer_pass_s" not in record.metrics:  # one by one: the generations themselves
            seconds = sum(g.metrics.get("e2e_ms", 0.0) for case in run.cases_of(record.model) for g in case.generations)
            phases.append(("generations", seconds / 1000.0))
        if not phases:
            continue
        accounted += sum(seconds for _, seconds in phases)
        prefix = f"{record.model}: " if len(run.models) > 1 else ""
        parts.append(prefix + ", ".join(f"{words} {duration_text(seconds)}" for words, seconds in phases))
    rest = max(wall - accounted, 0.0)
    parts.append(f"start-up, collection, judging and recording {duration_text(rest)}")
    return [f"time to verdict {duration_text(wall)}: " + "; ".join(parts)]
