#!/usr/bin/env python
"""The comparison gate against real model variants, N runs each: is it red exactly when the model got worse?

Each scenario runs the real gate (the demo model as baseline, the 48-case demo suite, the models
interleaved as by default) and counts its verdicts:

- ``copy``: a byte copy of the demo model, ``--mathperf-busy-guard off``, half of the runs beside a
  CPU-bound process on one core: must never be a regression (timing or accuracy);
- ``slow busy``: identical answers at about 3x the compute per token, beside a CPU-bound process,
  default settings (guard on): must be a regression, exit 1, every run;
- ``mild``: identical answers at about 1.3x the compute per token, ``ttft_ms p50 max_ratio 1.10``,
  no competing process: must be a regression in most runs (the Done-when asks 8 of 10);
- ``blessed``: three runs of one model blessed together, then N runs of the same model with
  ``--mathperf-baseline blessed`` (guard off): never a regression; then the slow weights put in
  its folder: a regression;
- ``noisy``: seeded weight noise, about 80 % on the demo suite: a regression on accuracy.

    python benchmarks/compare_variants.py --runs 10
    python benchmarks/compare_variants.py --runs 2 --scenarios copy mild

Each gate runs with ``OMP_NUM_THREADS=1`` so two torch thread pools do not fight over a small
machine's cores; prints a row per scenario with the count of each verdict per comparison, the
exit codes, and the load average before and after.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
THRESHOLDS = """version: 1
cards:
  cpu:
    models:
      "*":
        compare:
          ttft_ms: {{p50: {{max_ratio: {ttft}}}}}
          tokens_per_s: {{mean: {{min_ratio: 0.8}}}}
          accuracy: {{max_drop: 0.05}}
"""
COMPARISONS = ("ttft_ms.p50", "tokens_per_s.mean", "accuracy")
SCENARIOS = ("copy", "slow busy", "mild", "blessed", "noisy")


def build(folder: Path) -> dict[str, Path]:
    tool = [sys.executable, str(REPO / "tools" / "make_model_variants.py")]
    variants = {"slow": ["slow"], "mild": ["mild"], "noisy": ["noisy", "--seed", "1", "--scale", "0.2812"], "copy": ["copy"]}
    for name, args in variants.items():
        subprocess.run([*tool, args[0], str(folder / name), *args[1:]], check=True, capture_output=True)
    return {name: folder / name for name in variants}


def gate(models: Sequence[str], options: Sequence[str], thresholds: Path, junit: Path, env: dict[str, str]) -> tuple[int, dict[str, str]]:
    """One gate run: its exit code and each comparison's verdict (``skipped`` where it could not judge)."""
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--mathperf",
        *(f"--mathperf-model={model}" for model in models), "--mathperf-suites", str(REPO / "suites" / "demo"),
        "--mathperf-thresholds", str(thresholds), f"--junitxml={junit}", "-o", "junit_family=xunit1", *options,
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    verdicts = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "mathperf.comparison" in properties:
            verdicts[properties["mathperf.comparison"]] = properties["mathperf.verdict"]
        elif "compare" in (case.get("name") or "") and case.find("skipped") is not None:
            verdicts[(case.get("name") or "").rsplit("::", 1)[-1].split(".compare.")[-1]] = "cannot_judge"
    return done.returncode, verdicts


def hog() -> subprocess.Popen[bytes]:
    """A competing CPU-bound process on one core, for the whole gate run."""
    return subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 900\nwhile time.time() < end: pass"])


class Tally:
    def __init__(self) -> None:
        self.verdicts = {name: collections.Counter[str]() for name in COMPARISONS}
        self.exits = collections.Counter[int]()

    def add(self, code: int, verdicts: dict[str, str]) -> None:
        self.exits[code] += 1
        for name in COMPARISONS:
            self.verdicts[name][verdicts.get(name, "missing")] += 1


def run_scenario(label: str, runs: int, variants: dict[str, Path], folder: Path, env: dict[str, str]) -> dict[str, Tally]:
    thresholds = folder / "thresholds.yaml"
    thresholds.write_text(THRESHOLDS.format(ttft=1.10 if label == "mild" else 1.25), encoding="utf-8")
    junit = folder / "junit.xml"
    tallies: dict[str, Tally] = collections.defaultdict(Tally)
    if label == "blessed":
        return run_blessed(runs, variants, folder, thresholds, env)
    variant = {"copy": "copy", "slow busy": "slow", "mild": "mild", "noisy": "noisy"}[label]
    options = ["--mathperf-no-history"] + (["--mathperf-busy-guard", "off"] if label == "copy" else [])
    for run in range(runs):
        busy = label == "slow busy" or (label == "copy" and run % 2 == 1)
        started, competing = time.perf_counter(), hog() if busy else None
        try:
            code, verdicts = gate(["mathperf-tiny", str(variants[variant])], options, thresholds, junit, env)
        finally:
            if competing is not None:
                competing.kill()
        tallies[label + (" (beside a CPU-bound process)" if busy and label == "copy" else "")].add(code, verdicts)
        print(f"{label} run {run + 1}/{runs}{' busy' if busy else ''}: exit {code} {verdicts} "
              f"({time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    return tallies


def run_blessed(runs: int, variants: dict[str, Path], folder: Path, thresholds: Path, env: dict[str, str]) -> dict[str, Tally]:
    """Three blessed runs of one model folder, then runs against them; then the slow weights in that folder."""
    model = folder / "blessed-model"
    shutil.copytree(variants["copy"], model, dirs_exist_ok=True)
    history = folder / "history.db"
    history.unlink(missing_ok=True)
    junit = folder / "junit.xml"
    common = ["--mathperf-history", str(history), "--mathperf-busy-guard", "off"]
    for _ in range(3):
        gate([str(model)], common, thresholds, junit, env)
    subprocess.run([sys.executable, "-m", "pytest_mathperf.cli", "bless", "1", "2", "3", "--history", str(history)], env=env, check=True)
    tallies: dict[str, Tally] = collections.defaultdict(Tally)
    for run in range(runs):
        code, verdicts = gate([str(model)], [*common, "--mathperf-baseline", "blessed"], thresholds, junit, env)
        tallies["blessed: same model"].add(code, verdicts)
        print(f"blessed run {run + 1}/{runs}: exit {code} {verdicts} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    shutil.copytree(variants["slow"], model, dirs_exist_ok=True)
    code, verdicts = gate([str(model)], [*common, "--mathperf-baseline", "blessed"], thresholds, junit, env)
    tallies["blessed: slow weights in its folder"].add(code, verdicts)
    return tallies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    load_before = os.getloadavg()
    tallies: dict[str, Tally] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        variants = build(folder)
        for label in args.scenarios:
            tallies.update(run_scenario(label, args.runs, variants, folder, env))
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"| scenario ({args.runs} runs) | " + " | ".join(COMPARISONS) + " | exit codes |")
    print("|---|" + "---|" * (len(COMPARISONS) + 1))
    for label, tally in tallies.items():
        cells = [", ".join(f"{verdict} {count}" for verdict, count in sorted(c.items())) for c in tally.verdicts.values()]
        exits = ", ".join(f"{code}: {count}" for code, count in sorted(tally.exits.items()))
        print(f"| {label} | " + " | ".join(cells) + f" | {exits} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
