"""How often do our checker and math-verify alone agree with the labelled answer corpus, and
how many answers does our checker judge per second?

    python benchmarks/answer_agreement.py             # table by kind, then answers/s
    python benchmarks/answer_agreement.py --rounds 5  # more timing rounds
    python benchmarks/answer_agreement.py --only holdout --no-speed   # one corpus file

The corpus (tests/data/answer_corpus/*.yaml) holds an output, the expected answer a suite would
hold, the check's options and a careful human grader's verdict. Two agreement figures:

- **ours, verdict**: our verdict equals the label exactly (correct / wrong / no_answer /
  truncated);
- **correct or not**: both say "correct", or both say "not correct" — the only question
  math-verify answers, so the fair column to compare the two.

math-verify runs alone, through its documented API, gold first:
``verify(parse("$" + gold + "$"), parse(output))`` on the raw output, with its SIGALRM timeouts
off (``parsing_timeout=None``, ``timeout_seconds=None``) so that it runs like ours does. It has
no per-case options (``rel_tol``, ``unordered``, ``percent``, ``truncated``) and no named parts:
a list is given to it as ``a, b``, named parts as ``x = a, y = b``, ``any_of`` as any alternative
verifying; ``regex`` cases are outside what it does and are left out of its column (n/a).

Speed: every case is checked once per round with our parse caches emptied first (sympy already
imported), and the median round gives answers/s; math-verify alone is timed the same way, side
by side in the same run. The same is reported for the cases where the expected answer and the
answer read are plain numbers (most of a real suite's answers; no sympy), and the slowest
single check, each case timed alone with its caches emptied first.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_mathperf.answers import check_answer, equality  # noqa: E402
from pytest_mathperf.answers.expected import format_expected  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "answer_corpus"


def load(only: str | None = None) -> list[dict[str, Any]]:
    cases = []
    for path in sorted(CORPUS.glob(f"{only or '*'}.yaml")):
        cases.extend({"options": {}, **case} for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"])
    return cases


def ours(case: dict[str, Any]) -> str:
    return check_answer(case["output"], case["expected"], **case["options"]).status


def gold_texts(expected: Any) -> list[str] | None:
    """The expected answer as math-verify gold strings (one per alternative); None for regex."""
    if isinstance(expected, dict):
        if "regex" in expected:
            return None
        if "any_of" in expected:
            return [text for item in expected["any_of"] for text in (gold_texts(item) or [])]
        return [", ".join(f"{name} = {value}" for name, value in expected.items())]
    if isinstance(expected, list):
        return [", ".join(str(value) for value in expected)]
    return [str(expected)]


def math_verify_alone(case: dict[str, Any]) -> bool | None:
    """math-verify's answer to "is this output correct?", or None where it cannot be asked."""
    from math_verify import parse, verify

    golds = gold_texts(case["expected"])
    if golds is None:
        return None
    answer = parse(case["output"], parsing_timeout=None)
    return any(
        verify(parse(f"${gold}$", parsing_timeout=None), answer, timeout_seconds=None) for gold in golds
    )


def empty_caches() -> None:
    equality._parse_value.cache_clear()
    equality._expected_math.cache_clear()
    from math_verify import parser

    parser.parse_latex_cached.cache_clear()
    parser.parse_expr_cached.cache_clear()


def timed(function: Any, cases: list[dict[str, Any]], rounds: int) -> tuple[float, float]:
    """Median answers per second over `rounds` passes, each with cold parse caches: by wall-clock
    time and by this process's CPU time (which another job on a shared host does not inflate)."""
    wall_speeds, cpu_speeds = [], []
    for _ in range(rounds):
        empty_caches()
        wall, cpu = time.perf_counter(), time.process_time()
        for case in cases:
            function(case)
        wall_speeds.append(len(cases) / (time.perf_counter() - wall))
        cpu_speeds.append(len(cases) / max(time.process_time() - cpu, 1e-9))
    return statistics.median(wall_speeds), statistics.median(cpu_speeds)


def slowest(cases: list[dict[str, Any]]) -> tuple[float, float, str]:
    """The longest single check (CPU seconds, wall seconds) and its case id, each case alone
    with cold caches. CPU time is what the check costs; wall time adds what a busy host takes."""
    worst = (0.0, 0.0, "")
    for case in cases:
        empty_caches()
        cpu, wall = time.process_time(), time.perf_counter()
        ours(case)
        worst = max(worst, (time.process_time() - cpu, time.perf_counter() - wall, case["id"]))
    return worst


def plain_on_both_sides(case: dict[str, Any]) -> bool:
    """Whether the expected answer and the answer read are both plain numbers (no sympy needed)."""
    if isinstance(case["expected"], (dict, list)) or equality._plain_number(format_expected(case["expected"])) is None:
        return False
    read = check_answer(case["output"], case["expected"], **case["options"]).extracted
    return read is not None and equality._plain_number(read) is not None


def percent(hits: int, total: int) -> str:
    return f"{100 * hits / total:.1f} % ({hits}/{total})" if total else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (median is reported)")
    parser.add_argument("--only", help="one corpus file by its stem, e.g. holdout")
    parser.add_argument("--no-speed", action="store_true", help="agreement only")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # math-verify warns once that its timeouts are off

    cases = load(args.only)
    check_answer("</think>\\boxed{1}", 1)  # import sympy once, outside every figure
    rows: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    disagreements = []
    for case in cases:
        label, status, theirs = case["verdict"], ours(case), math_verify_alone(case)
        for kind in (case["kind"], "all"):
            row = rows[kind]
            row["cases"] += 1
            row["ours_exact"] += status == label
            row["ours_binary"] += (status == "correct") == (label == "correct")
            if theirs is not None:
                row["mv_cases"] += 1
                row["mv_binary"] += theirs == (label == "correct")
                row["ours_binary_on_mv"] += (status == "correct") == (label == "correct")
        if status != label:
            disagreements.append(f"{case['id']}: label {label}, ours {status}")

    print(f"Answer corpus: {len(cases)} labelled cases ({CORPUS.relative_to(ROOT)})\n")
    print("| kind | cases | ours: verdict | ours: correct or not | math-verify alone: correct or not |")
    print("|---|---|---|---|---|")
    for kind in [*sorted(kind for kind in rows if kind != "all"), "all"]:
        row = rows[kind]
        name = f"**{kind}**" if kind == "all" else kind
        print(
            f"| {name} | {row['cases']} | {percent(row['ours_exact'], row['cases'])} "
            f"| {percent(row['ours_binary'], row['cases'])} | {percent(row['mv_binary'], row['mv_cases'])} |"
        )
    both = rows["all"]
    print(
        f"\nOn the {both['mv_cases']} cases math-verify can be asked (regex left out): ours "
        f"{percent(both['ours_binary_on_mv'], both['mv_cases'])}, math-verify {percent(both['mv_binary'], both['mv_cases'])}."
    )
    if disagreements:
        print("\nOur disagreements with the labels:\n  " + "\n  ".join(disagreements))

    if args.no_speed:
        return
    answerable = [case for case in cases if gold_texts(case["expected"]) is not None]
    plain = [case for case in answerable if plain_on_both_sides(case)]
    for name, subset in (("the same", answerable), ("the plain-number (expected and read)", plain)):
        (ours_wall, ours_cpu), (theirs_wall, theirs_cpu) = timed(ours, subset, args.rounds), timed(math_verify_alone, subset, args.rounds)
        print(
            f"\nSpeed over {name} {len(subset)} cases, cold parse caches, median of {args.rounds} rounds: "
            f"ours {ours_wall:.0f} answers/s, math-verify alone {theirs_wall:.0f} answers/s "
            f"(ours / math-verify {ours_wall / theirs_wall:.2f}); by CPU time ours {ours_cpu:.0f}/s, "
            f"math-verify {theirs_cpu:.0f}/s ({ours_cpu / theirs_cpu:.2f})."
        )
    cpu, wall, case_id = slowest(cases)
    print(
        f"\nSlowest single check, each case alone with cold caches: {case_id}, "
        f"{cpu * 1000:.0f} ms of CPU ({wall * 1000:.0f} ms of wall-clock time)."
    )


if __name__ == "__main__":
    main()
