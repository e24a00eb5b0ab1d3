"""Time to verdict: the whole gate at concurrency 1 against concurrency N, side by side.

Each run is a fresh ``python -m pytest --mathperf`` process (interpreter start, imports, load,
warm-up, latency sample, answer pass, judging and exit all included), on the 48 arithmetic cases
of the demo suite with 10 repeats at temperature 0.6, top_p 0.95, judged by a thresholds file
that holds TTFT, tokens/s and accuracy budgets. The runs alternate (N, 1, N, 1, ...) so that a
host getting busier hits both. Prints each run's wall time, the median ratio, whether the
accuracy verdicts agree, and how many samples the timing budgets rested on.

    python benchmarks/concurrency_speedup.py                     # in-process, 1 vs 16
    python benchmarks/concurrency_speedup.py --http --high 8     # transformers serve --continuous-batching, 1 vs 8
    python benchmarks/concurrency_speedup.py --repeats 3 --cases 16 --rounds 1   # a quicker look
    python benchmarks/concurrency_speedup.py --plan              # mathperf plan's estimate against the gate it plans

With ``--plan``: one gate at concurrency N records a history; ``mathperf plan`` then estimates the
gate at N and at 1 from it; both gates then run, and each estimate is printed beside the wall
time it predicted.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEMO_SUITE = ROOT / "suites" / "demo" / "arithmetic.yaml"
THRESHOLDS = """version: 1
cards:
  "*":
    models:
      "*":
        ttft_ms: {p50: {max: 60000}}
        tokens_per_s: {p50: {min: 0.01}}
        accuracy: {min: 0.5}
"""


def write_inputs(folder: Path, cases: int, repeats: int) -> tuple[Path, Path]:
    """The demo suite cut to ``cases`` cases, sampled at the seed's settings; and the budgets file."""
    suite = yaml.safe_load(DEMO_SUITE.read_text(encoding="utf-8"))
    suite["defaults"].update(repeats=repeats, temperature=0.6, top_p=0.95)
    suite["cases"] = suite["cases"][:cases]
    (folder / "suites").mkdir()
    suite_path = folder / "suites" / "arithmetic.yaml"
    suite_path.write_text(yaml.safe_dump(suite, allow_unicode=True, sort_keys=False), encoding="utf-8")
    thresholds = folder / "thresholds.yaml"
    thresholds.write_text(THRESHOLDS, encoding="utf-8")
    return suite_path.parent, thresholds


def run_gate(
    folder: Path, suites: Path, thresholds: Path, concurrency: int, model_args: list[str], history: Path | None = None
) -> dict:
    """One whole gate in a fresh process: its wall time, case verdicts and budget outcomes from its JUnit XML."""
    junit = folder / f"junit-{concurrency}.xml"
    recording = ["--mathperf-history", str(history)] if history is not None else ["--mathperf-no-history"]
    command = [
        sys.executable, "-m", "pytest", "--mathperf", *model_args, "--mathperf-suites", str(suites),
        "--mathperf-thresholds", str(thresholds), *recording, "--mathperf-busy-guard", "off",
        "--mathperf-concurrency", str(concurrency), "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
        "-o", "junit_family=xunit1", "--rootdir", str(folder), str(suites),
    ]  # fmt: skip
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=folder, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        raise SystemExit(f"the gate exited with {completed.returncode}:\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}")
    verdicts, budgets = {}, {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        outcome = "failed" if case.find("failure") is not None else "skipped" if case.find("skipped") is not None else "passed"
        if "mathperf.budget" in properties:
            budgets[case.get("name")] = (outcome, properties.get("mathperf.samples"), properties.get("mathperf.measured"))
        elif "mathperf.verdict" in properties:
            verdicts[case.get("name")] = properties["mathperf.verdict"]
    summary = [line for line in completed.stdout.splitlines() if line.startswith("time to verdict")]
    return {"wall": wall, "verdicts": verdicts, "budgets": budgets, "time_line": summary[0] if summary else ""}


def plan_accuracy(folder: Path, suites: Path, thresholds: Path, high: int, model_args: list[str]) -> None:
    """Record one gate at ``high``, plan 1 and ``high`` from it, then run both and print estimate against wall."""
    history = folder / "history.db"
    first = run_gate(folder, suites, thresholds, high, model_args, history)
    print(f"recorded a gate at concurrency {high}: {first['wall']:.1f} s (load average {load_average()})", flush=True)
    model = model_args[model_args.index("--mathperf-model") + 1]
    planned = subprocess.run(
        [sys.executable, "-m", "pytest_mathperf.cli", "plan", str(suites), "--model", model, "--history", str(history),
         "--card", "cpu", "--concurrency", "1", str(high)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
    ).stdout  # fmt: skip
    print(planned, flush=True)
    estimates = {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"concurrency +(\d+): about .*?\((\d+) s", planned)}
    for concurrency in (high, 1):
        before = load_average()
        result = run_gate(folder, suites, thresholds, concurrency, model_args, history)  # recording, as the planned gate does
        error = (estimates[concurrency] - result["wall"]) / result["wall"]
        print(
            f"concurrency {concurrency:>2}: planned {estimates[concurrency]:.0f} s, took {result['wall']:.1f} s "
            f"({error:+.0%}; load average before {before}, after {load_average()})",
            flush=True,
        )


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--high", type=int, default=16, help="the concurrency compared with 1 (default 16)")
    parser.add_argument("--cases", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="pairs of runs, alternating")
    parser.add_argument("--http", action="store_true", help="through transformers serve --continuous-batching on loopback")
    parser.add_argument("--plan", action="store_true", help="mathperf plan's estimates against the gates they plan")
    arguments = parser.parse_args()
    server = None
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        suites, thresholds = write_inputs(folder, arguments.cases, arguments.repeats)
        model_args = ["--mathperf-model", "mathperf-tiny"]
        if arguments.http:
            sys.path.insert(0, str(ROOT / "tests"))
            from servers import BUNDLED_MODEL, start_transformers_serve, stop_process

            server, served = start_transformers_serve(
                BUNDLED_MODEL, folder / "serve.log", extra_args=("--continuous-batching",), timeout_s=900.0
            )
            model_args = ["--mathperf-backend", "openai", "--mathperf-endpoint", served.base_url, "--mathperf-model", served.model]
        try:
            if arguments.plan:
                plan_accuracy(folder, suites, thresholds, arguments.high, model_args)
                return
            walls: dict[int, list[float]] = {1: [], arguments.high: []}
            results = {}
            for round_number in range(arguments.rounds):
                for concurrency in (arguments.high, 1):
                    before = load_average()
                    result = run_gate(folder, suites, thresholds, concurrency, model_args)
                    walls[concurrency].append(result["wall"])
                    results[concurrency] = result
                    print(
                        f"round {round_number + 1} concurrency {concurrency:>2}: {result['wall']:7.1f} s wall "
                        f"(load average before {before}, after {load_average()})\n    {result['time_line']}",
                        flush=True,
                    )
        finally:
            if server is not None:
                stop_process(server)
    low, high = statistics.median(walls[1]), statistics.median(walls[arguments.high])
    where = "transformers serve --continuous-batching" if arguments.http else "in-process"
    print(f"\n{arguments.cases} cases x {arguments.repeats} repeats, {where}: concurrency 1 {low:.1f} s, "
          f"concurrency {arguments.high} {high:.1f} s: {low / high:.2f}x faster")
    same = results[1]["verdicts"] == results[arguments.high]["verdicts"]
    differing = [name for name in results[1]["verdicts"] if results[1]["verdicts"][name] != results[arguments.high]["verdicts"].get(name)]
    print(f"case verdicts the same: {same}" + (f" (differ: {', '.join(differing[:10])})" if differing else ""))
    for concurrency in (1, arguments.high):
        for name, (outcome, samples, measured) in sorted(results[concurrency]["budgets"].items()):
            print(f"  concurrency {concurrency:>2} budget {name}: {outcome}, measured {measured}, {samples} samples")


if __name__ == "__main__":
    main()
