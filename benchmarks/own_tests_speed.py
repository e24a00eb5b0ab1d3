"""The project's own tests, now against an earlier commit: the same tests, timed side by side.

Checks out ``--baseline`` into a temporary git worktree, lists both suites' test ids, and times
the baseline's whole suite against today's run of the same tests (those with the same id, plus
the ones renamed since, listed in ``RENAMED``), alternating ``--rounds`` times on this machine.
Prints each wall time, the medians and their ratio. Tests added since the baseline are left out:
they test what the baseline did not have.

    python benchmarks/own_tests_speed.py [--baseline da657ef] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Tests renamed since da657ef (the first release), old id prefix → the new one's.
RENAMED = {
    "tests/test_answers.py::test_pathological_outputs_return_quickly": "tests/test_answers.py::test_pathological_outputs_get_a_verdict",
    "tests/test_plugin.py::test_a_corrupt_history_loses_nothing_else": "tests/test_plugin.py::test_a_corrupt_history_is_refused_before_the_run",
    "tests/test_lint.py::test_a_budget_for_a_suite_elsewhere_is_a_warning": "tests/test_lint.py::test_a_budget_for_a_suite_no_linted_file_defines_is_an_error",
    "tests/test_lint.py::test_the_real_command_passes_on_everything_shipped": "tests/test_lint.py::test_the_command_passes_on_everything_shipped",
}


def test_ids(root: Path) -> list[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=root, env=_env(root), capture_output=True, text=True, check=True,
    )
    return [line for line in listed.stdout.splitlines() if "::" in line]


def same_tests(old: list[str], new: list[str]) -> list[str]:
    """Today's ids of the baseline's tests: unchanged ids, and every test of a renamed one's new name.

    A parametrized test whose parameter ids changed (a case added to its list renumbers them) is
    taken whole, under today's ids.
    """
    old_ids, new_ids = set(old), set(new)
    functions_now = {test.split("[")[0] for test in new_ids}
    gone = {test.split("[")[0] for test in old_ids - new_ids}
    reparametrized = gone & functions_now
    unknown = sorted(gone - reparametrized - set(RENAMED))
    if unknown:
        raise SystemExit(f"tests gone since the baseline with no replacement in RENAMED: {', '.join(unknown)}")
    replacements = {RENAMED[name] for name in gone - reparametrized} | reparametrized
    return [test for test in new if test in old_ids or test.split("[")[0] in replacements]


def timed(command: list[str], root: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=_env(root), capture_output=True, text=True)
    wall = time.perf_counter() - started
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    if done.returncode not in (0, 1):  # 1: tests failed, but the run went to its end and its time counts
        raise SystemExit(f"{root}: pytest exited {done.returncode}: {summary}\n{done.stderr[-2000:]}")
    print(f"  {root.name if root != ROOT else 'today'}: {wall:.1f} s  ({summary.strip('= ')})", flush=True)
    for line in done.stdout.splitlines():
        if line.startswith(("FAILED", "ERROR")):  # named, so that a flaky test is seen for what it is
            print(f"    {line}", flush=True)
    return wall


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="da657ef", help="the earlier commit (default: the first release)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mathperf-baseline-") as scratch:
        baseline = Path(scratch) / args.baseline
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(baseline), args.baseline], cwd=ROOT, check=True)
        try:
            tests = same_tests(test_ids(baseline), test_ids(ROOT))
            print(f"{len(tests)} tests: the baseline's, by today's ids", flush=True)
            pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            before, after = [], []
            for _ in range(args.rounds):
                before.append(timed(pytest, baseline))
                after.append(timed([*pytest, *tests], ROOT))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT, check=False)
    old, new = statistics.median(before), statistics.median(after)
    print(f"median of {args.rounds}: {args.baseline} {old:.1f} s, today {new:.1f} s, ratio {new / old:.3f}")


if __name__ == "__main__":
    main()
