"""Render the HTML trend report from a history and screenshot it with headless Chromium.

    python tools/screenshot_report.py --history .mathperf/history.db -o docs/report.png

``--synthetic`` records three runs shaped like the seed write-up (two 1.5B models on an RTX
3090, a torch upgrade, then a driver change and new weights for one model with a TTFT
regression) into a fresh history first, for when no real runs are at hand. The README's
screenshot should come from real runs. docs/report.png was made from six runs of the demo gate
into one history, each pinned to one CPU core (``taskset -c 0``) so every run had the same
conditions on a shared machine, with ``thresholds.yaml``'s cpu budgets copied to cards cpu-a and
cpu-b:

    gate() { taskset -c 0 pytest --mathperf --mathperf-model mathperf-tiny --mathperf-suites suites \
             --mathperf-history demo.db "$@"; }
    gate --mathperf-card cpu-a; gate --mathperf-card cpu-b     # suites: a copy of suites/demo
    # add one case to suites/arithmetic.yaml
    gate --mathperf-card cpu-a; gate --mathperf-card cpu-b
    taskset -c 0 python -c "while True: pass" &                 # a busy loop on the same core
    gate --mathperf-card cpu-a; kill %1                          # a real slower run
    gate --mathperf-card cpu-b --mathperf-dtype bfloat16         # an environment change
    python tools/screenshot_report.py --history demo.db -o docs/report.png --size 1400,2250
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_mathperf.cli import main as mathperf  # noqa: E402
from pytest_mathperf.history import History  # noqa: E402
from pytest_mathperf.results import (  # noqa: E402
    BudgetRecord,
    CaseRecord,
    GenerationRecord,
    ModelRecord,
    RunRecord,
)

CARD = "NVIDIA GeForce RTX 3090"
SEED_CASES = (
    ("algebra", "linear-system", "已知 x + 2y = 10，3x - y = 5，求 x 和 y 的值。", "x = 20/7, y = 25/7", "x = \\frac{20}{7}, y = \\frac{25}{7}"),
    ("algebra", "consecutive-odd", "两个连续奇数之和为 36，求这两个数。", "17, 19", "17, 19"),
    ("geometry", "circle", "一个圆的半径为 5cm，求其面积和周长。", "25π, 10π", "25\\pi, 10\\pi"),
    ("word_problems", "books", "小明买书花了60元，其中科技书每本15元，文学书每本10元，共买了5本书，问各买了几本？", "2, 3", "2, 3"),
)
#: model → (ttft ms, tokens/s, vram load GB, vram peak GB, chance of a correct answer) per the seed.
SEED_MODELS = {
    "Qwen/Qwen2.5-Math-1.5B": (412.0, 89.3, 6.8, 7.1, 0.7),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": (298.0, 107.6, 6.7, 7.0, 0.95),
}


def synthetic_run(index: int, rng: random.Random) -> RunRecord:
    """One realistic run; run 2 upgrades torch, run 3 changes the driver and slows TTFT by 25 %."""
    started = 1_735_700_000.0 + index * 86_400
    environment = {
        "card": CARD, "device": "cuda:0", "driver": "550.54.14" if index < 2 else "555.42.02",
        "cuda": "12.4", "backend": "hf", "host": "gpu-runner-1", "python": "3.11.7",
        "torch": "2.4.1" if index < 1 else "2.5.1", "transformers": "4.51.3",
        "pytest-mathperf": "0.1.0", "suites_commit": "3c9e2a1f0b7d4e6a8c5b2d1f0e9a8b7c6d5e4f3a",
        "label": ("baseline", "torch 2.5", "driver 555")[index], "git_commit": f"{index + 1:07x}e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6",
        "git_branch": "main", "ci_run_id": str(8100 + index),
    }
    models, cases, budgets = [], [], []
    for model, (ttft, speed, vram_load, vram_peak, p_correct) in SEED_MODELS.items():
        slowdown = 1.25 if index == 2 else 1.0
        models.append(
            ModelRecord(
                model=model, backend="hf", card=CARD, device="cuda:0", dtype="float16",
                revision="a1b2c3d" if index < 2 or "Qwen2.5" in model else "e4f5a6b", source="hf-cache",
                metrics={"load_s": rng.uniform(8, 12), "vram_load_gb": vram_load, "vram_peak_gb": vram_peak + rng.uniform(-0.05, 0.05)},
                memory_source="nvml-process",
            )
        )
        model_ttfts, speeds, passed_cases = [], [], 0
        for suite, case_id, prompt, expected, answer in SEED_CASES:
            generations = []
            for repeat in range(3):
                correct = rng.random() < p_correct
                tokens = rng.randint(150, 200)
                first = ttft * slowdown * rng.uniform(0.9, 1.15)
                rate = speed * rng.uniform(0.95, 1.05)
                e2e = tokens / rate * 1000
                model_ttfts.append(first)
                speeds.append(rate)
                text = f"<think>设未知数并列方程……</think>\n所以答案是 \\boxed{{{answer if correct else '3'}}}"
                generations.append(
                    GenerationRecord(
                        repeat=repeat, seed=repeat, status="correct" if correct else "wrong",
                        extracted=answer if correct else "3", reason="" if correct else f"expected {expected}",
                        finish_reason="stop", output=text,
                        metrics={"ttft_ms": first, "e2e_ms": e2e, "tokens_per_s": rate, "output_tokens": tokens,
                                 "tpot_ms": (e2e - first) / (tokens - 1), "decode_tokens_per_s": (tokens - 1) / (e2e - first) * 1000},
                    )
                )
            passed = sum(g.status == "correct" for g in generations) >= 2
            passed_cases += passed
            cases.append(
                CaseRecord(
                    model=model, suite=suite, case=case_id, nodeid=f"suites/{suite}.yaml::{case_id}[{model.split('/')[-1].lower()}]",
                    prompt=prompt, expected=expected, tags=("zh",), pass_rule="majority", passed=passed,
                    generations=tuple(generations),
                )
            )
        ordered = sorted(model_ttfts)
        p50 = ordered[len(ordered) // 2]
        budget_ttft = 350.0 if "DeepSeek" in model else 460.0
        slug = model.split("/")[-1].lower()
        budgets.append(BudgetRecord(model, "ttft_ms.p50", "ttft_ms", "p50", "model", None, None, None, budget_ttft, p50, len(ordered), p50 <= budget_ttft, CARD, f"thresholds.yaml::{slug}::ttft_ms.p50"))
        rate50 = sorted(speeds)[len(speeds) // 2]
        budgets.append(BudgetRecord(model, "tokens_per_s.p50", "tokens_per_s", "p50", "model", None, None, 85.0, None, rate50, len(speeds), rate50 >= 85.0, CARD, f"thresholds.yaml::{slug}::tokens_per_s.p50"))
        share = passed_cases / len(SEED_CASES)
        budgets.append(BudgetRecord(model, "accuracy", "accuracy", None, "model", None, None, 0.6, None, share, len(SEED_CASES), share >= 0.6, CARD, f"thresholds.yaml::{slug}::accuracy"))
        budgets.append(BudgetRecord(model, "vram_peak_gb", "vram_peak_gb", None, "model", None, None, None, 7.5, models[-1].metrics["vram_peak_gb"], 1, True, CARD, f"thresholds.yaml::{slug}::vram_peak_gb"))
    return RunRecord(started, started + 900, environment, tuple(models), tuple(cases), tuple(budgets))


def screenshot(html: Path, png: Path, width: int, height: int) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("screenshot_report: chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                f"--screenshot={png.resolve()}", html.resolve().as_uri(),
            ],
            check=True, capture_output=True, timeout=60,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=Path, default=Path(".mathperf/history.db"))
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/report.png"))
    parser.add_argument("--html", type=Path, help="also keep the rendered page here")
    parser.add_argument("--synthetic", action="store_true", help="record three seed-shaped runs into a new history first")
    parser.add_argument("--size", default="1400,2200", help="window width,height in pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        history_path = args.history
        if args.synthetic:
            history_path = Path(folder) / "history.db"
            rng = random.Random(7)
            with History(history_path) as history:
                for index in range(3):
                    history.append(synthetic_run(index, rng))
        html = args.html or Path(folder) / "report.html"
        code = mathperf(["report", "--history", str(history_path), "-o", str(html)])
        if code:
            return code
        args.output.parent.mkdir(parents=True, exist_ok=True)
        width, height = (int(part) for part in args.size.split(","))
        screenshot(html, args.output, width, height)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
