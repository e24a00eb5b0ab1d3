#!/usr/bin/env python
"""The comparison gate against real model variants, N runs each: is it red exactly when the model got worse?

Against the demo model as baseline, with ``ttft_ms p50 max_ratio 1.25``, ``tokens_per_s mean
min_ratio 0.8`` and ``accuracy max_drop 0.05``, it runs the real gate (both models, the 48-case
demo suite) on:

- ``slow``: identical answers, about 3x the compute per token: must be a regression on timing,
  within margin on accuracy;
- ``noisy``: seeded weight noise, about 80 % on the demo suite: must be a regression on accuracy;
- ``copy``: the demo model under another folder name: must never be a regression, also with a
  competing CPU-bound process on every core (then the busy-host guard may make it inconclusive).

    python benchmarks/compare_variants.py --runs 10

Each gate runs with ``OMP_NUM_THREADS=1`` so two torch thread pools do not fight over a small
machine's cores; prints one row per variant with the count of each verdict per comparison.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
THRESHOLDS = """version: 1
cards:
  cpu:
    models:
      "*":
        compare:
          ttft_ms: {p50: {max_ratio: 1.25}}
          tokens_per_s: {mean: {min_ratio: 0.8}}
          accuracy: {max_drop: 0.05}
"""
COMPARISONS = ("ttft_ms.p50", "tokens_per_s.mean", "accuracy")


def build(folder: Path) -> dict[str, Path]:
    tool = [sys.executable, str(REPO / "tools" / "make_model_variants.py")]
    variants = {"slow": ["slow"], "noisy": ["noisy", "--seed", "1", "--scale", "0.2812"], "copy": ["copy"]}
    for name, args in variants.items():
        subprocess.run([*tool, args[0], str(folder / name), *args[1:]], check=True, capture_output=True)
    return {name: folder / name for name in variants}


def gate(variant: Path, thresholds: Path, junit: Path, env: dict[str, str]) -> dict[str, str]:
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--mathperf", "--mathperf-no-history",
        "--mathperf-model=mathperf-tiny", f"--mathperf-model={variant}", "--mathperf-suites", str(REPO / "suites" / "demo"),
        "--mathperf-thresholds", str(thresholds), f"--junitxml={junit}", "-o", "junit_family=xunit1",
    ]
    subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    verdicts = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "mathperf.comparison" in properties:
            verdicts[properties["mathperf.comparison"]] = properties["mathperf.verdict"]
    return verdicts


def hogs() -> list[subprocess.Popen[bytes]]:
    """A competing CPU-bound process on every core, for the whole gate run."""
    spin = "import time\nend = time.time() + 600\nwhile time.time() < end: pass"
    return [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        variants = build(folder)
        thresholds = folder / "thresholds.yaml"
        thresholds.write_text(THRESHOLDS, encoding="utf-8")
        plan = [("slow", variants["slow"], False), ("noisy", variants["noisy"], False),
                ("copy", variants["copy"], False), ("copy, busy host", variants["copy"], True)]
        counts: dict[str, dict[str, collections.Counter[str]]] = {}
        for label, path, busy in plan:
            counts[label] = {name: collections.Counter() for name in COMPARISONS}
            for run in range(args.runs):
                started = time.perf_counter()
                competing = hogs() if busy else []
                try:
                    verdicts = gate(path, thresholds, folder / "junit.xml", env)
                finally:
                    for process in competing:
                        process.kill()
                for name in COMPARISONS:
                    counts[label][name][verdicts.get(name, "missing")] += 1
                print(f"{label} run {run + 1}/{args.runs}: {verdicts} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    print(f"| variant ({args.runs} runs each) | " + " | ".join(COMPARISONS) + " |")
    print("|---|" + "---|" * len(COMPARISONS))
    for label, per_comparison in counts.items():
        cells = [", ".join(f"{verdict} {count}" for verdict, count in sorted(c.items())) for c in per_comparison.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
