#!/usr/bin/env python
"""Run a command as if on a CPU N times slower: the command's process group is stopped and
continued in a fixed cycle (SIGSTOP / SIGCONT), so it gets 1/N of the wall time, as cgroup's
``cpu.max`` would give it where cgroups cannot be written (containers, shared CI machines).

    python tools/slow_cpu.py --factor 3 -- pytest --mathperf --mathperf-model mathperf-tiny

The cycle is short (``--period-ms``, default 6: 2 ms running, 4 ms stopped for factor 3), so a
few-millisecond generation is slowed about evenly rather than stopped whole; every thread of the
command stops at once, as on a slower core. The exit code is the command's.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time


def run_slowed(command: list[str], factor: float, period_s: float) -> int:
    """Run ``command`` in a process group of its own, letting it run 1/factor of each period."""
    running_s = period_s / factor
    child = subprocess.Popen(command, start_new_session=True)
    group = child.pid
    try:
        while child.poll() is None:
            time.sleep(running_s)
            os.killpg(group, signal.SIGSTOP)
            time.sleep(period_s - running_s)
            os.killpg(group, signal.SIGCONT)
    except ProcessLookupError:  # the group ended between the poll and the signal
        pass
    finally:
        if child.poll() is None:
            try:
                os.killpg(group, signal.SIGCONT)
            except ProcessLookupError:
                pass
    return child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=float, default=3.0, help="how many times slower (default 3)")
    parser.add_argument("--period-ms", type=float, default=6.0, help="one stop-and-continue cycle, ms (default 6)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.factor < 1 or args.period_ms <= 0:
        parser.error("give --factor >= 1, --period-ms > 0 and a command after --")
    return run_slowed(command, args.factor, args.period_ms / 1000)


if __name__ == "__main__":
    sys.exit(main())
