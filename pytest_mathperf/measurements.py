"""What the run measured of one model, as a read-only value: what judging decides over.

The runner makes one on request from its live session; judging reads nothing else of the runner,
so a verdict can be reproduced from measurements alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_mathperf.load import LoadResult
    from pytest_mathperf.results import CaseRecord


@dataclass(frozen=True)
class Measurements:
    model: str
    card: str
    load_error: str | None
    served_elsewhere: bool  # its memory is a server's, not measured here
    cases: tuple[CaseRecord, ...]
    load_results: tuple[LoadResult, ...]
    model_metrics: Mapping[str, float]  # load time, memory, the load profiles' figures
    busy: str | None  # why its timings were taken on a busy host (None: quiet, guard off, or served elsewhere)
    allow_estimated_counts: bool  # values resting on an estimated token count may be judged
    busy_guard: bool = True  # a timing taken on a busy host is inconclusive (a stored baseline's too)

    def case(self, suite: str, case: str) -> CaseRecord | None:
        return next((record for record in self.cases if record.suite == suite and record.case == case), None)
