"""Wall time of one gate split into shards that run at once, against the same gate unsharded.

The demo suite (48 cases) on the demo model as the baseline and the same weights, named by their
folder, as the candidate; budgets and margins for the CPU. Each round runs, as fresh processes,
the unsharded gate, then ``--shards`` shard processes started together followed by
``mathperf judge`` (the order alternates between rounds, so a machine getting busier shows up as
spread, not as a ratio). Both record into an SQLite history in a temporary folder. Prints each
round's wall times, the medians, their ratio, and the load average beside each figure.

On one machine the shards share its cores: the ratio says what splitting costs or saves here,
not what separate runners would give (there, each shard has a machine of its own).

    python benchmarks/shards_wall_time.py [--shards 3] [--rounds 3]
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
MODEL_DIR = ROOT / "pytest_mathperf" / "models" / "mathperf-tiny"
THRESHOLDS = """version: 1
cards:
  cpu:
    models:
      "*":
        ttft_ms: {p50: {max: 50}}
        accuracy: {min: 0.9}
        compare:
          ttft_ms: {p50: {max_ratio: 1.25}}
          accuracy: {max_drop: 0.05}
"""


def gate_command(history: Path, *options: str) -> list[str]:
    return [
        sys.executable, "-m", "pytest", "--mathperf", "-q", "-p", "no:cacheprovider",
        "--mathperf-model=mathperf-tiny", f"--mathperf-model={MODEL_DIR}", "--mathperf-device=cpu",
        f"--mathperf-suites={ROOT / 'suites' / 'demo'}", "--mathperf-thresholds=thresholds.yaml",
        f"--mathperf-history={history}", *options,
    ]


def timed(commands: list[list[str]], folder: Path) -> float:
    """Seconds from starting every command at once to the last one's end; every exit status must be 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    processes = [subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for command in commands]
    outputs = [process.communicate()[0] for process in processes]
    elapsed = time.perf_counter() - started
    for process, output in zip(processes, outputs):
        if process.returncode not in (0, 1):  # 1: a timing budget can fail on a busy machine
            sys.exit(f"exit {process.returncode}:\n{output[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mathperf-shards-"))
    (folder / "thresholds.yaml").write_text(THRESHOLDS, encoding="utf-8")
    history = folder / "history.db"
    unsharded_times, sharded_times = [], []
    for round_number in range(args.rounds):
        group = f"bench-{round_number}"
        shards = [gate_command(history, f"--mathperf-shard={k}/{args.shards}", f"--mathperf-run-group={group}")
                  for k in range(1, args.shards + 1)]
        judge = [sys.executable, "-m", "pytest_mathperf.cli", "judge", "--run-group", group, "--history", str(history), "--",
                 f"--mathperf-suites={ROOT / 'suites' / 'demo'}", "--mathperf-thresholds=thresholds.yaml"]

        def sharded(shards: list[list[str]] = shards, judge: list[str] = judge) -> float:
            return timed(shards, folder) + timed([judge], folder)

        def unsharded() -> float:
            return timed([gate_command(history)], folder)

        order = [("unsharded", unsharded), ("sharded", sharded)]
        for name, run in order if round_number % 2 == 0 else reversed(order):
            load_before = os.getloadavg()[0]
            seconds = run()
            (unsharded_times if name == "unsharded" else sharded_times).append(seconds)
            print(f"round {round_number + 1} {name:9}: {seconds:6.1f} s  (load average {load_before:.1f} → {os.getloadavg()[0]:.1f})")
    whole, split = statistics.median(unsharded_times), statistics.median(sharded_times)
    print(f"median unsharded {whole:.1f} s, {args.shards} shards at once + judge {split:.1f} s: ratio sharded/unsharded {split / whole:.2f}")
    print(f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
