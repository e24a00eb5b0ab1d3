"""The bundled demo model ``mathperf-tiny`` does what the plugin and its docs rely on.

Why these checks: the demo suite, the plugin's end-to-end tests and CPU-only CI all assume the
committed model loads offline with the Auto classes, answers fresh arithmetic problems
correctly in both languages, formats replies like a reasoning model and stops by itself.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "pytest_mathperf" / "models" / "mathperf-tiny"
SUITE = REPO / "suites" / "demo" / "arithmetic.yaml"
BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
MIN_ACCURACY = 0.97


def _tools_module():
    """The training script, loaded by path: it owns the held-out rule and the trace format."""
    spec = importlib.util.spec_from_file_location("train_demo_model", REPO / "tools" / "train_demo_model.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tdm():
    return _tools_module()


@pytest.fixture(scope="module")
def loaded():
    """Model and tokenizer, loaded offline exactly as users load them."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        model = transformers.AutoModelForCausalLM.from_pretrained(MODEL_DIR)
        tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL_DIR)
    model.eval()
    return model, tokenizer


def last_boxed(text: str) -> str | None:
    found = BOXED.findall(text)
    return found[-1].strip() if found else None


def prompt(tokenizer, question: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
    )


@torch.no_grad()
def greedy(model, tokenizer, questions: list[str], max_new_tokens: int = 64) -> list[str]:
    """Batched greedy generation with left padding; replies decoded without special tokens."""
    tokenizer.padding_side = "left"
    enc = tokenizer([prompt(tokenizer, q) for q in questions], return_tensors="pt", padding=True)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def test_greedy_accuracy_on_fresh_problems(loaded, tdm) -> None:
    """≥ 97 % per phrasing on 200 held-out problems (50 per phrasing, fixed seed)."""
    model, tokenizer = loaded
    problems = tdm.fresh_problems(50, seed=12345)
    assert len(problems) == 200
    assert all(tdm.is_held_out(a, op, b) for a, op, b, _ in problems)
    questions = [tdm.question(a, op, b, lang) for a, op, b, lang in problems]
    replies = greedy(model, tokenizer, questions)
    per: dict[str, list[bool]] = {}
    failures: list[str] = []
    for (a, op, b, lang), q, reply in zip(problems, questions, replies):
        expected = a + b if op == "+" else a - b
        ok = last_boxed(reply) == str(expected)
        per.setdefault(f"{lang}{op}", []).append(ok)
        if not ok:
            failures.append(f"{q} expected {expected}, got {reply!r}")
    assert set(per) == {"en+", "en-", "zh+", "zh-"}
    low = {k: sum(v) / len(v) for k, v in per.items() if sum(v) / len(v) < MIN_ACCURACY}
    assert not low, f"accuracy below {MIN_ACCURACY:.0%}: {low}\n" + "\n".join(failures)


def test_chat_template_is_the_training_format(loaded, tdm) -> None:
    _, tokenizer = loaded
    q = "What is 427 + 385?"
    expected = "<|im_start|>user\nWhat is 427 + 385?<|im_end|>\n<|im_start|>assistant\n"
    assert prompt(tokenizer, q) == expected
    assert tdm.prompt_text(tokenizer, q) == expected
    with_system = tokenizer.apply_chat_template(
        [{"role": "system", "content": "You are a calculator."}, {"role": "user", "content": q}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert with_system == "<|im_start|>system\nYou are a calculator.<|im_end|>\n" + expected


def test_reply_format_and_eos_stops_generation(loaded) -> None:
    model, tokenizer = loaded
    enc = tokenizer(prompt(tokenizer, "计算 105 - 768。"), return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=64, do_sample=False)
    new = out[0, enc["input_ids"].shape[1] :].tolist()
    assert len(new) < 64, "did not stop before max_new_tokens"
    assert new[-1] == tokenizer.eos_token_id
    text = tokenizer.decode(new, skip_special_tokens=True)
    assert text.startswith("<think>") and "</think>" in text
    assert text.endswith("\\boxed{-663}"), text
    assert model.generation_config.eos_token_id is not None
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id


def test_weights_at_most_20_mb() -> None:
    size = (MODEL_DIR / "model.safetensors").stat().st_size
    assert size <= 20 * 1024 * 1024, f"{size / 2**20:.1f} MiB"


@pytest.mark.parametrize("text", ["计算 105 - 768。", "计算 7 + 0。", "What is 0 - 999?", "请逐步推理，答案写在 \\boxed{} 中。"])
def test_tokenizer_round_trips(loaded, text: str) -> None:
    _, tokenizer = loaded
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    # The trained Chinese phrasing spends one token on each of 计, 算 and 。
    assert len(tokenizer.tokenize("计算")) == 2 and len(tokenizer.tokenize("。")) == 1


def test_demo_suite_is_held_out_and_correct(tdm) -> None:
    """Every demo-suite problem is outside the training data and its answer is right."""
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(SUITE.read_text(encoding="utf-8"))
    assert data["suite"] == "arithmetic" and data["models"] == ["*"]  # any model may be asked; copies of the demo model too
    cases = data["cases"]
    assert len(cases) >= 40 and len({c["id"] for c in cases}) == len(cases)
    tags = set()
    for case in cases:
        m = re.fullmatch(r"(?:What is|计算) (\d+) ([+-]) (\d+)[?。]", case["prompt"])
        assert m, case
        a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
        assert tdm.is_held_out(a, op, b), case
        assert case["answer"] == (a + b if op == "+" else a - b), case
        tags.add(tuple(case["tags"]))
    assert tags == {("en", "add"), ("en", "sub"), ("zh", "add"), ("zh", "sub")}


def test_training_never_draws_held_out_problems(tdm) -> None:
    import random

    stream = tdm.training_problems(random.Random(0))
    assert not any(tdm.is_held_out(a, op, b) for a, op, b, _ in (next(stream) for _ in range(5000)))
