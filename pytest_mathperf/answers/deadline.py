"""A time limit on one answer check, so that a hostile pattern or expression in a suite cannot hang the gate.

User regular expressions run on the ``regex`` engine with its own timeout; everything else the
check does is bounded by an interval timer where one can be set (the main thread on Unix). The
timer counts this process's CPU time, not the wall clock, so a check on a busy CI runner is not
cut short by the other processes there.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import regex

#: Seconds one generation's answer check may take (CPU seconds where the timer runs); a real one takes
#: milliseconds, the first one up to a few seconds more while sympy and math-verify are imported.
ANSWER_CHECK_LIMIT_S = 10.0

_deadline: ContextVar[float | None] = ContextVar("answer_check_deadline", default=None)


class CheckTimedOut(Exception):
    """The answer check ran past its limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise CheckTimedOut inside the block once it has used ``seconds``; an outer timer of the same kind
    (a sampling profiler's, say) is put back afterwards with what was left of it."""
    token = _deadline.set(time.monotonic() + seconds)
    alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    clock = time.process_time
    if not alarm:
        try:
            yield
        finally:
            _deadline.reset(token)
        return
    started = clock()
    outer_handler = signal.signal(signal.SIGPROF, _raise_timed_out)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, outer_handler)
        if outer_delay:
            left = outer_delay - (clock() - started)
            signal.setitimer(signal.ITIMER_PROF, max(left, 1e-3), outer_interval)
        _deadline.reset(token)


def _raise_timed_out(signum: int, frame: Any) -> None:
    raise CheckTimedOut


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` occurs in ``text``, within what is left of the check's time."""
    deadline = _deadline.get()
    timeout = None if deadline is None else max(deadline - time.monotonic(), 1e-3)
    try:
        return compiled(pattern).search(text, timeout=timeout) is not None
    except TimeoutError:
        raise CheckTimedOut from None


@lru_cache(maxsize=256)
def compiled(pattern: str, flags: int = 0) -> regex.Pattern[str]:
    """A user's pattern, compiled once (the ``regex`` engine reads Python's ``re`` syntax)."""
    return regex.compile(pattern, flags)
