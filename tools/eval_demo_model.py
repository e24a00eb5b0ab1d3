#!/usr/bin/env python
"""Measure ``mathperf-tiny``: accuracy on fresh held-out problems, and generation speed.

Why a separate tool: the model card must only state measured figures, and this is where they
come from. Problems are drawn with a fixed seed from the held-out set (see
``is_held_out`` in ``train_demo_model.py``), which training never sees.

    python tools/eval_demo_model.py                    # greedy, 1,000 per phrasing, + speed
    python tools/eval_demo_model.py --sample -n 250    # temperature 0.6, top_p 0.95
    python tools/eval_demo_model.py --suite suites/demo/arithmetic.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_demo_model as tdm  # noqa: E402


def load(path: str):
    """Load exactly as users do: the Auto classes, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    return model, AutoTokenizer.from_pretrained(path)


def accuracy(model, tokenizer, n: int, seed: int, sample: bool) -> dict[str, object]:
    """Accuracy per phrasing on ``n`` fresh held-out problems each, plus batched throughput."""
    probs = tdm.fresh_problems(n, seed)
    texts, n_tokens, secs = tdm.generate_replies(
        model, tokenizer, [tdm.question(a, op, b, lang) for a, op, b, lang in probs], sample=sample, seed=seed
    )
    per: dict[str, list[int]] = {}
    misses: list[str] = []
    for (a, op, b, lang), text in zip(probs, texts):
        ok = tdm.boxed_answer(text) == str(tdm.result(a, op, b))
        per.setdefault(tdm.phrasing(op, lang), []).append(int(ok))
        if not ok and len(misses) < 10:
            misses.append(f"{tdm.question(a, op, b, lang)} -> {text!r}")
    total = sum(sum(v) for v in per.values())
    return {
        "mode": "sample t=0.6 top_p=0.95" if sample else "greedy",
        "per_phrasing": {k: f"{sum(v)}/{len(v)} = {sum(v) / len(v):.1%}" for k, v in sorted(per.items())},
        "overall": f"{total}/{len(probs)} = {total / len(probs):.2%}",
        "batched_tokens_per_s": round(n_tokens / secs, 1),
        "first_misses": misses,
    }


@torch.no_grad()
def single_stream_speed(model, tokenizer, n: int = 20) -> dict[str, float]:
    """tokens/s of one greedy generation at a time (batch 1), as the plugin measures it."""
    probs = tdm.fresh_problems(n // 4 + 1, seed=99)[:n]
    rates: list[float] = []
    for i, (a, op, b, lang) in enumerate(probs):
        enc = tokenizer(tdm.prompt_text(tokenizer, tdm.question(a, op, b, lang)), return_tensors="pt")
        t0 = time.perf_counter()
        out = model.generate(**enc, max_new_tokens=64, do_sample=False)
        dt = time.perf_counter() - t0
        if i >= 2:  # the first calls warm up
            rates.append((out.shape[1] - enc["input_ids"].shape[1]) / dt)
    return {"batch1_tokens_per_s_median": round(statistics.median(rates), 1), "generations": len(rates)}


def suite_check(model, tokenizer, suite: str) -> dict[str, object]:
    """Greedy answers to every case of a suite file (each prompt through the chat template)."""
    import yaml

    data = yaml.safe_load(Path(suite).read_text(encoding="utf-8"))
    cases = data["cases"]
    texts, _, _ = tdm.generate_replies(model, tokenizer, [c["prompt"] for c in cases])
    wrong = [f"{c['id']}: expected {c['answer']}, got {t!r}" for c, t in zip(cases, texts)
             if tdm.boxed_answer(t) != str(c["answer"])]
    return {"suite": suite, "correct": f"{len(cases) - len(wrong)}/{len(cases)}", "wrong": wrong}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(tdm.DEFAULT_OUT))
    ap.add_argument("-n", type=int, default=1000, help="problems per phrasing")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sample", action="store_true", help="temperature 0.6, top_p 0.95 instead of greedy")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--suite", help="also (or only, with -n 0) check a suite file")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, tokenizer = load(args.model)
    report: dict[str, object] = {"model": args.model, "torch": torch.__version__}
    if args.n > 0:
        report["accuracy"] = accuracy(model, tokenizer, args.n, args.seed, args.sample)
    if not args.no_speed:
        report["speed"] = single_stream_speed(model, tokenizer)
    if args.suite:
        report["suite"] = suite_check(model, tokenizer, args.suite)
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
