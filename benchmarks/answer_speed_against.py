"""Is this tree's answer checker slower than another checkout's (main, a release) on one corpus?

    python benchmarks/answer_speed_against.py /path/to/other/checkout --rounds 3
    python benchmarks/answer_speed_against.py /work/main --stems chinese,classic,traps   # some files

Each round checks every case of this tree's labelled corpus once in a fresh process per
checker, alternating, parse caches cold, sympy imported before the clock starts. CPU time of
the checking process is reported beside wall-clock time: on a shared host another job inflates
the second, not the first. A case the other checker rejects (an expected form it cannot read)
is counted as checked.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_ONE_ROUND = """
import json, logging, sys, time
from pathlib import Path
import yaml
sys.path.insert(0, sys.argv[1])
logging.disable(logging.WARNING)
from pytest_mathperf.answers import check_answer
cases = []
stems = sys.argv[3].split(",") if sys.argv[3] else None
for path in sorted(Path(sys.argv[2]).glob("*.yaml")):
    if stems and path.stem not in stems:
        continue
    cases.extend({"options": {}, **case} for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"])
check_answer("</think>\\\\boxed{x + 1}", "x + 1")
from pytest_mathperf.answers import equality
equality._parse_value.cache_clear()
equality._expected_math.cache_clear()
cpu, wall = time.process_time(), time.perf_counter()
for case in cases:
    try:
        check_answer(case["output"], case["expected"], **case["options"])
    except ValueError:
        pass
print(json.dumps({"cases": len(cases), "cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}))
"""


def one_round(tree: Path, stems: str) -> dict[str, float]:
    corpus = ROOT / "tests" / "data" / "answer_corpus"
    command = [sys.executable, "-c", _ONE_ROUND, str(tree), str(corpus), stems]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="the other checkout's root (holding pytest_mathperf/)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stems", default="", help="only these corpus files, by stem, comma-separated")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"this tree": [], "other": []}
    for _ in range(args.rounds):
        runs["this tree"].append(one_round(ROOT, args.stems))
        runs["other"].append(one_round(args.other.resolve(), args.stems))
    speeds = {}
    for name, rounds in runs.items():
        cases = rounds[0]["cases"]
        cpu = statistics.median(cases / run["cpu"] for run in rounds)
        wall = statistics.median(cases / run["wall"] for run in rounds)
        speeds[name] = cpu
        print(f"{name}: {cpu:.0f} answers/s by CPU time, {wall:.0f} by wall-clock time ({cases} cases, median of {args.rounds})")
    print(f"this tree / other, by CPU time: {speeds['this tree'] / speeds['other']:.2f}")


if __name__ == "__main__":
    main()
