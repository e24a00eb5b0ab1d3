"""The plugin's measuring overhead: the same prompts through a plain transformers loop and the gate.

Both run in this one process, on the same model and prompts, with greedy decoding, and the raw
loop runs before and after the gate so that a machine getting warmer or busier shows up as a
spread between the two raw runs rather than as plugin overhead. Prints the ratios
plugin / raw of total generation time and of median TTFT; 1.0 means the plugin costs nothing.

Then the whole process, which is what a CI job pays: ``pytest --mathperf`` against a plain script
that loads the same model and runs the same generations (interpreter start, imports, load,
warm-up and exit included), each as a fresh subprocess, alternating, ``--rounds`` times; prints
the median wall times and their ratio.

    python benchmarks/plugin_overhead.py [--model mathperf-tiny] [--suite suites/demo/arithmetic.yaml] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pytest_mathperf.backends.hf import resolve_model_source
from pytest_mathperf.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent


def raw_loop(model, tokenizer, prompts: list[str], max_new_tokens: int) -> tuple[float, list[float]]:
    """Total generate() seconds, and TTFT per prompt measured as templating, tokenizing and a
    1-token generate(): the gate's TTFT starts before templating, as a server's does."""
    total = 0.0
    first_token_ms = []
    settings = dict(do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
    for prompt in prompts:
        with torch.inference_mode():
            started = time.perf_counter()
            text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
            inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
            model.generate(**inputs, max_new_tokens=1, **settings)
            first_token_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            model.generate(**inputs, max_new_tokens=max_new_tokens, **settings)
            total += time.perf_counter() - started
    return total, first_token_ms


def plugin_run(model: str, suite: Path) -> tuple[float, list[float], float]:
    """Total e2e seconds and TTFTs the gate measured, read back from its JUnit XML, and its wall time."""
    with tempfile.TemporaryDirectory() as folder:
        junit = Path(folder) / "junit.xml"
        started = time.perf_counter()
        code = _run_pytest(model, suite, junit, folder)
        wall = time.perf_counter() - started
        if code not in (0, 1):
            raise SystemExit(f"the gate exited with {code}")
        properties = [
            {p.get("name"): p.get("value") for p in case.iter("property")}
            for case in ElementTree.parse(junit).getroot().iter("testcase")
        ]
    e2e = sum(float(p["e2e_ms"]) for p in properties if "e2e_ms" in p) / 1000
    ttft = [float(p["ttft_ms"]) for p in properties if "ttft_ms" in p]
    return e2e, ttft, wall


def _run_pytest(model: str, suite: Path, junit: Path, folder: str) -> int:
    return pytest.main(
        [
            "--mathperf", "--mathperf-model", model, "--mathperf-suites", str(suite),
            "--mathperf-no-history", "--mathperf-repeats", "1", "-q", "-p", "no:cacheprovider",
            f"--junitxml={junit}", "-o", "junit_family=xunit1", "--rootdir", folder, str(suite),
        ]
    )


#: The plain script the whole gate is compared with: load, warm up like the gate, generate, exit.
PLAIN_SCRIPT = """
import sys
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer
source, suite = sys.argv[1], sys.argv[2]
cases = yaml.safe_load(open(suite, encoding="utf-8"))["cases"]
tokenizer = AutoTokenizer.from_pretrained(source)
model = AutoModelForCausalLM.from_pretrained(source).eval()
settings = dict(do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
def generate(prompt, tokens):
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        return model.generate(**inputs, max_new_tokens=tokens, **settings)
generate(cases[0]["prompt"], 64)
for case in cases:
    generate(case["prompt"], 64)
"""


def whole_process(model: str, suite: Path, rounds: int) -> tuple[float, float]:
    """Median wall seconds of a fresh ``pytest --mathperf`` process and of the plain script, alternating."""
    source, _ = resolve_model_source(model)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    gate, plain = [], []
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "plain.py"
        script.write_text(PLAIN_SCRIPT, encoding="utf-8")
        commands = {
            "gate": [sys.executable, "-m", "pytest", "--mathperf", "--mathperf-model", model, "--mathperf-suites", str(suite),
                     "--mathperf-no-history", "-q", "-p", "no:cacheprovider", "--rootdir", folder, str(suite)],
            "plain": [sys.executable, str(script), source, str(suite)],
        }
        for _ in range(rounds):
            for name, times in (("plain", plain), ("gate", gate)):
                started = time.perf_counter()
                subprocess.run(commands[name], cwd=folder, env=env, capture_output=True, check=name == "plain")
                times.append(time.perf_counter() - started)
    return statistics.median(gate), statistics.median(plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mathperf-tiny")
    parser.add_argument("--suite", type=Path, default=ROOT / "suites" / "demo" / "arithmetic.yaml")
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes of each kind for the whole-process ratio")
    args = parser.parse_args()

    suite = load_suite(args.suite)
    prompts = [case.rendered_prompt() for case in suite.cases]
    max_new_tokens = suite.cases[0].max_new_tokens
    source, _ = resolve_model_source(args.model)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source).eval()
    raw_loop(model, tokenizer, prompts[:2], max_new_tokens)  # warm-up, as the gate does

    raw_before, ttft_before = raw_loop(model, tokenizer, prompts, max_new_tokens)
    gate_e2e, gate_ttft, gate_wall = plugin_run(args.model, args.suite)
    raw_after, ttft_after = raw_loop(model, tokenizer, prompts, max_new_tokens)

    raw_total = (raw_before + raw_after) / 2
    raw_ttft = statistics.median(ttft_before + ttft_after)
    print(f"model {args.model}, {len(prompts)} prompts from {args.suite.name}, greedy, torch threads {torch.get_num_threads()}")
    print(f"raw transformers loop : generation {raw_before:.2f} s / {raw_after:.2f} s (before / after), TTFT p50 {raw_ttft:.2f} ms")
    print(f"pytest --mathperf     : generation {gate_e2e:.2f} s, TTFT p50 {statistics.median(gate_ttft):.2f} ms, whole session {gate_wall:.2f} s")
    print(f"ratio plugin / raw    : generation time {gate_e2e / raw_total:.3f}, TTFT {statistics.median(gate_ttft) / raw_ttft:.3f}")
    gate_wall_median, plain_wall_median = whole_process(args.model, args.suite, args.rounds)
    print(
        f"whole process, median of {args.rounds}: pytest --mathperf {gate_wall_median:.2f} s, plain script "
        f"{plain_wall_median:.2f} s, ratio {gate_wall_median / plain_wall_median:.3f}"
    )


if __name__ == "__main__":
    main()
