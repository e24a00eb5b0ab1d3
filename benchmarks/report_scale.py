"""How fast is ``mathperf report`` on a long history, and how big is the page?

    python benchmarks/report_scale.py            # 1,000 runs × 2 models × 50 cases × 3 generations
    python benchmarks/report_scale.py --keep /tmp/history.db   # reuse (or keep) the built history

Builds a history the way CI would fill it over a year (two models, two cards, budgets, an
environment that changes now and then), then times the real command, ``python -m
pytest_mathperf.cli report``, in a fresh process, and prints the seconds and the page size.
The goal (issue 4): under 5 s and under 5 MB on a 2-core machine, with every run on the charts.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_mathperf.history import History  # noqa: E402
from pytest_mathperf.results import (  # noqa: E402
    BudgetRecord,
    CaseRecord,
    GenerationRecord,
    ModelRecord,
    RunRecord,
)

CARDS = ("NVIDIA GeForce RTX 3090", "NVIDIA H100 80GB HBM3")
MODELS = {  # model → (ttft ms, tokens/s, vram peak GB, chance of a correct answer) on the first card
    "Qwen/Qwen2.5-Math-1.5B": (412.0, 89.3, 7.1, 0.7),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": (298.0, 107.6, 7.0, 0.93),
}
SUITES = ("algebra", "geometry", "word_problems")


def make_run(index: int, cases_per_model: int, rng: random.Random) -> RunRecord:
    """One run of the benchmark's history: every fourth run is on the H100 runner."""
    card = CARDS[1] if index % 4 == 3 else CARDS[0]
    speedup = 2.4 if card == CARDS[1] else 1.0
    started = 1_700_000_000.0 + index * 3_600 * 8
    environment = {
        "card": card, "device": "cuda:0", "driver": ("550.54.14", "555.42.02", "560.35.03")[min(index // 300, 2)],
        "cuda": "12.4", "backend": "hf", "host": f"gpu-runner-{1 + (card == CARDS[1])}", "python": "3.11.7",
        "torch": ("2.4.1", "2.5.1", "2.6.0", "2.7.0", "2.8.0")[index // 200], "transformers": "4.51.3",
        "pytest-mathperf": "0.1.0", "math-verify": "0.7.0", "suites_commit": f"{index // 100:04x}c0ffee",
    }
    models, cases, budgets = [], [], []
    for model, (ttft, speed, vram_peak, p_correct) in MODELS.items():
        slug = model.split("/")[-1].lower()
        revision = "a1b2c3d" if index < 500 else "e4f5a6b"
        vram = vram_peak + rng.gauss(0, 0.03)
        models.append(
            ModelRecord(
                model=model, backend="hf", card=card, device="cuda:0", dtype="float16", revision=revision,
                source="hf-cache", metrics={"load_s": rng.uniform(6, 12), "vram_load_gb": vram - 0.3, "vram_peak_gb": vram},
                memory_source="nvml-process",
            )
        )
        drift = 1.0 + 0.1 * (index % 200) / 200  # slow creep, reset by each torch upgrade
        ttfts, rates, passed_cases = [], [], 0
        for number in range(cases_per_model):
            suite = SUITES[number % len(SUITES)]
            generations = []
            for repeat in range(3):
                correct = rng.random() < p_correct
                tokens = rng.randint(120, 200)
                first = ttft * drift / speedup * rng.lognormvariate(0, 0.08)
                rate = speed * speedup * rng.uniform(0.93, 1.05)
                e2e = first + (tokens - 1) / rate * 1000
                ttfts.append(first)
                rates.append(tokens / e2e * 1000)
                answer = f"{number + 17}" if correct else f"{number + 3}"
                generations.append(
                    GenerationRecord(
                        repeat=repeat, seed=repeat, status="correct" if correct else "wrong",
                        extracted=answer, reason="" if correct else f"expected {number + 17}",
                        finish_reason="stop",
                        output=f"<think>Let the numbers be n and n + 2, so 2n + 2 = {2 * number + 36}. {'Checking. ' * 20}</think>"
                        f"\nSo n = {number + 17}. The answer is \\boxed{{{answer}}}.",
                        metrics={"ttft_ms": first, "e2e_ms": e2e, "tokens_per_s": tokens / e2e * 1000,
                                 "decode_tokens_per_s": (tokens - 1) / (e2e - first) * 1000,
                                 "tpot_ms": (e2e - first) / (tokens - 1), "output_tokens": tokens,
                                 "prompt_tokens": 64, "reasoning_tokens": tokens - 20},
                    )
                )
            passed = sum(g.status == "correct" for g in generations) >= 2
            passed_cases += passed
            cases.append(
                CaseRecord(
                    model=model, suite=suite, case=f"case-{number:03d}", nodeid=f"suites/{suite}.yaml::case-{number:03d}[{slug}]",
                    prompt=f"两个连续奇数之和为 {2 * number + 36}，求这两个数。", expected=f"{number + 17}",
                    tags=("zh",), pass_rule="majority", passed=passed, generations=tuple(generations),
                )
            )
        ttfts.sort()
        rates.sort()
        p50, p95, rate50 = ttfts[len(ttfts) // 2], ttfts[int(len(ttfts) * 0.95)], rates[len(rates) // 2]
        limit = (350.0 if "DeepSeek" in model else 470.0) / speedup
        share = passed_cases / cases_per_model
        node = f"thresholds.yaml::{slug}::"
        budgets += [
            BudgetRecord(model, "ttft_ms.p50", "ttft_ms", "p50", "model", None, None, None, limit, p50, len(ttfts), p50 <= limit, card, node + "ttft_ms.p50"),
            BudgetRecord(model, "ttft_ms.p95", "ttft_ms", "p95", "model", None, None, None, limit * 1.6, p95, len(ttfts), p95 <= limit * 1.6, card, node + "ttft_ms.p95"),
            BudgetRecord(model, "tokens_per_s.p50", "tokens_per_s", "p50", "model", None, None, 66.0 * speedup, None, rate50, len(rates), rate50 >= 66 * speedup, card, node + "tokens_per_s.p50"),
            BudgetRecord(model, "vram_peak_gb", "vram_peak_gb", None, "model", None, None, None, 7.5, vram, 1, vram <= 7.5, card, node + "vram_peak_gb"),
            BudgetRecord(model, "accuracy", "accuracy", None, "model", None, None, 0.6, None, share, cases_per_model, share >= 0.6, card, node + "accuracy"),
            BudgetRecord(model, "accuracy", "accuracy", None, "suite", "algebra", None, 0.6, None, share, cases_per_model, share >= 0.6, card, node + "algebra::accuracy"),
            BudgetRecord(model, "ttft_ms.p50", "ttft_ms", "p50", "case", "algebra", "case-000", None, limit * 1.2, p50, 3, True, card, node + "case-000::ttft_ms.p50"),
        ]
    return RunRecord(started, started + 1_200, environment, tuple(models), tuple(cases), tuple(budgets))


def build(path: Path, runs: int, cases_per_model: int) -> None:
    rng = random.Random(2024)
    started = time.perf_counter()
    with History(path) as history:
        for index in range(runs):
            history.append(make_run(index, cases_per_model, rng))
            if (index + 1) % 100 == 0:
                print(f"  recorded {index + 1}/{runs} runs ({time.perf_counter() - started:.0f} s)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000)
    parser.add_argument("--cases", type=int, default=50, help="cases per model per run")
    parser.add_argument("--repeat", type=int, default=3, help="times to run `mathperf report`")
    parser.add_argument("--keep", type=Path, help="history file to reuse if it exists, else build and keep")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        history = args.keep or Path(folder) / "history.db"
        if not history.exists():
            print(f"building {history}: {args.runs} runs × {len(MODELS)} models × {args.cases} cases × 3 generations")
            build(history, args.runs, args.cases)
        output = Path(folder) / "report.html"
        seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "pytest_mathperf.cli", "report", "--history", str(history), "-o", str(output)],
                cwd=ROOT, check=True,
            )
            seconds.append(time.perf_counter() - started)
        size_mb = output.stat().st_size / 1e6
        print(f"history: {history.stat().st_size / 1e6:.0f} MB; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(f"mathperf report: {' / '.join(f'{s:.2f}' for s in seconds)} s (median {statistics.median(seconds):.2f} s, goal < 5 s)")
        print(f"page: {size_mb:.2f} MB (goal < 5 MB)")
        return 0 if statistics.median(seconds) < 5 and size_mb < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
