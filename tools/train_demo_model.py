#!/usr/bin/env python
"""Train ``mathperf-tiny``, the demo model bundled with pytest-mathperf.

Why it exists: the plugin needs a model that loads offline in seconds, runs on any CPU or
GPU, and behaves like a reasoning model (``<think>…</think>`` then ``\\boxed{N}`` then EOS), so
that the plugin's own tests, the demo suite and CI runners without model weights can exercise
the whole pipeline: chat template, generation, answer extraction, timing and memory.

It is a 4-layer ``Qwen2ForCausalLM`` (the architecture of DeepSeek-R1-Distill-Qwen-1.5B) with a
character-level tokenizer, trained from scratch on synthetic two-operand integer addition and
subtraction (operands 0..999) in four phrasings::

    What is A + B?     What is A - B?     计算 A + B。     计算 A - B。

The reply is a short scratchpad that a tiny model can execute column by column, least
significant digit first (see :func:`reply_for`), then the answer in ``\\boxed{}``.

Held-out rule: a problem ``(A, op, B)`` is *held out* when :func:`is_held_out` says so (a
SHA-256 rule that selects about 10 % of all problems, independent of the phrasing). Training
never draws a held-out problem; every evaluation (``tools/eval_demo_model.py``, the tests and
``suites/demo/arithmetic.yaml``) draws only held-out problems, so every reported accuracy is
on problems the model has never seen.

Run (11 to 19 minutes on 2 CPU cores, see the model card; on a shared machine ``--threads 1``
can be much faster than 2)::

    python tools/train_demo_model.py

Everything is seeded; rerunning reproduces the accuracy (the exact bits may differ across torch
versions or CPUs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Iterator

import torch

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "pytest_mathperf" / "models" / "mathperf-tiny"

SEED = 20240601
OPS = ("+", "-")
LANGS = ("en", "zh")

# Special tokens, Qwen style. <think>/</think> are added but *not* special, as in
# DeepSeek-R1-Distill-Qwen: decoding with skip_special_tokens=True keeps them, so the
# answer extractor can find the text after </think>.
ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
THINK = "<think>"
END_THINK = "</think>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
# Strings that BPE merges into single tokens (to keep sequences short); everything else is
# one token per byte, which for digits and ASCII means one token per character.
MERGED_WORDS = ("user", "assistant", "system", "What", " is", " +", " -", "\\boxed", "计", "算", "。")
# Qwen2's pre-tokenizer split (as in transformers' Qwen2Tokenizer): digits are split one by one.
QWEN_SPLIT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)


# ----------------------------------------------------------------------------- problems


def is_held_out(a: int, op: str, b: int) -> bool:
    """True for the ~10 % of problems reserved for evaluation; training never sees them.

    A hash rather than a stored list, so that any tool (or test) can check membership of any
    problem without shipping a 200k-entry file, and the split does not depend on phrasing.
    """
    digest = hashlib.sha256(f"{a}{op}{b}".encode("ascii")).digest()
    return int.from_bytes(digest[:4], "big") % 10 == 0


def question(a: int, op: str, b: int, lang: str) -> str:
    """The user message in one of the four trained phrasings."""
    if lang == "en":
        return f"What is {a} {op} {b}?"
    return f"计算 {a} {op} {b}。"


def result(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b


def reply_for(a: int, op: str, b: int) -> str:
    """The assistant reply: a fixed-width scratchpad, then ``\\boxed{N}``.

    Why this shape: the model restates both operands zero-padded to 3 digits, so every later
    step reads digits at fixed offsets instead of having to count digits in the question.
    Columns then go least significant digit first, each as four digits ``x y c d`` (top digit,
    bottom digit, carry/borrow coming in, result digit), so each step depends only on nearby
    tokens. For subtraction a comparison sign (``>``, ``<``, ``=``) comes first and the
    columns subtract the smaller operand from the larger. The last field is the result
    written most significant digit first, padded (``0812``, ``+042``, ``-663``), from which
    the boxed answer drops the padding.

    ``427 + 385`` → ``<think>427+385;7502;2811;4318;0812</think>\\boxed{812}``
    ``105 - 768`` → ``<think>105-768<;8503;6006;7106;-663</think>\\boxed{-663}``
    """
    pa, pb = f"{a:03d}", f"{b:03d}"
    cols: list[str] = []
    carry = 0
    if op == "+":
        rel = ""
        for i in (2, 1, 0):
            x, y = int(pa[i]), int(pb[i])
            s = x + y + carry
            cols.append(f"{x}{y}{carry}{s % 10}")
            carry = s // 10
        padded = f"{a + b:04d}"
    else:
        rel = ">" if a > b else "<" if a < b else "="
        top, bot = (pa, pb) if a >= b else (pb, pa)
        for i in (2, 1, 0):
            x, y = int(top[i]), int(bot[i])
            d = x - y - carry
            cols.append(f"{x}{y}{carry}{d % 10}")
            carry = 1 if d < 0 else 0
        padded = ("-" if a < b else "+") + f"{abs(a - b):03d}"
    trace = f"{pa}{op}{pb}{rel};" + ";".join(cols) + f";{padded}"
    return f"{THINK}{trace}{END_THINK}\\boxed{{{result(a, op, b)}}}"


def draw_operand(rng: random.Random) -> int:
    """0..999, with short operands over-weighted so 1- and 2-digit numbers are learned too.

    Uniform draws would make 1-digit operands 1 % of the data; a quarter of the draws pick the
    digit count first.
    """
    if rng.random() < 0.25:
        n = rng.choice((1, 2, 3))
        return rng.randrange(0 if n == 1 else 10 ** (n - 1), 10**n)
    return rng.randrange(0, 1000)


def training_problems(rng: random.Random) -> Iterator[tuple[int, str, int, str]]:
    """Endless stream of (A, op, B, lang), never a held-out problem.

    A third of the subtractions get a B that shares A's leading digit (or two), because the
    comparison step (``>``/``<``) is only hard when the hundreds digits tie, which uniform draws
    make rare (a first run without this missed about 2.5 % of subtractions, all such ties).
    """
    while True:
        a, b = draw_operand(rng), draw_operand(rng)
        op, lang = rng.choice(OPS), rng.choice(LANGS)
        if op == "-" and rng.random() < 1 / 3:
            b = (a // 100) * 100 + rng.randrange(100) if rng.random() < 2 / 3 else (a // 10) * 10 + rng.randrange(10)
        if not is_held_out(a, op, b):
            yield a, op, b, lang


def fresh_problems(n_per_phrasing: int, seed: int) -> list[tuple[int, str, int, str]]:
    """``n_per_phrasing`` distinct held-out problems for each of the 4 phrasings.

    Operands are uniform in 0..999 (the natural distribution, not the training one), and
    only held-out problems qualify, so none was ever trained on.
    """
    rng = random.Random(seed)
    out: list[tuple[int, str, int, str]] = []
    for lang in LANGS:
        for op in OPS:
            seen: set[tuple[int, int]] = set()
            while len(seen) < n_per_phrasing:
                a, b = rng.randrange(1000), rng.randrange(1000)
                if (a, b) not in seen and is_held_out(a, op, b):
                    seen.add((a, b))
                    out.append((a, op, b, lang))
    return out


def phrasing(op: str, lang: str) -> str:
    """Name of a phrasing, e.g. ``en-add``, as used in reports and suite tags."""
    return f"{lang}-{'add' if op == '+' else 'sub'}"


# ---------------------------------------------------------------------------- tokenizer


def _byte_level_alphabet() -> dict[int, str]:
    """GPT-2/Qwen byte-to-character table (every byte gets a printable stand-in)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(keep, chars)}


def build_tokenizer(workdir: Path):
    """Build the tokenizer and reload it the way users will: ``AutoTokenizer.from_pretrained``.

    Why byte-level BPE and not a plain char vocabulary: for ``model_type == "qwen2"``
    transformers 5 always loads ``Qwen2Tokenizer``, which rebuilds the pipeline (Qwen's split
    regex, byte-level mapping, NFC) and keeps only the vocabulary and merges from
    ``tokenizer.json``. So the tokenizer *is* a Qwen2-style byte-level BPE: all 256 byte symbols
    (digits and ASCII are one token each, i.e. character level) plus a handful of merges that
    make the chat-template words and the Chinese characters single tokens. Training uses the
    reloaded tokenizer, so what users load is exactly what the model was trained with.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    table = _byte_level_alphabet()
    vocab: dict[str, int] = {table[b]: i for i, b in enumerate(sorted(table))}
    merges: list[tuple[str, str]] = []
    for word in MERGED_WORDS:
        symbols = [table[b] for b in word.encode("utf-8")]
        left = symbols[0]
        for right in symbols[1:]:
            if left + right not in vocab:
                merges.append((left, right))
                vocab[left + right] = len(vocab)
            left = left + right
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in (THINK, END_THINK)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        unk_token=None,
        bos_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=256,
        padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    workdir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(workdir, save_jinja_files=False)
    # AutoTokenizer picks the tokenizer class from config.json's model_type, so it needs one.
    (workdir / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    reloaded = AutoTokenizer.from_pretrained(workdir)
    reloaded.chat_template = CHAT_TEMPLATE
    check_tokenizer(reloaded)
    return reloaded


def check_tokenizer(tokenizer) -> None:
    """Fail early if the tokenizer would not round-trip the training text."""
    for a, op, b, lang in ((427, "+", 385, "en"), (105, "-", 768, "zh"), (7, "-", 0, "zh")):
        p = prompt_text(tokenizer, question(a, op, b, lang))
        r = reply_for(a, op, b)
        joint = tokenizer.encode(p + r, add_special_tokens=False)
        split = tokenizer.encode(p, add_special_tokens=False) + tokenizer.encode(r, add_special_tokens=False)
        assert joint == split, (p, r)
        assert tokenizer.decode(joint) == p + r, tokenizer.decode(joint)
        assert tokenizer.decode(tokenizer.encode(r, add_special_tokens=False), skip_special_tokens=True) == r


def prompt_text(tokenizer, q: str) -> str:
    """The exact prompt the model is trained on: the tokenizer's own chat template."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False
    )


# -------------------------------------------------------------------------------- model


def build_model(vocab_size: int, eos_id: int, pad_id: int, hidden: int, layers: int):
    """A small Qwen2ForCausalLM; tied embeddings keep the file small."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        use_sliding_window=False,
    )
    return Qwen2ForCausalLM(config)


def encode_batch(tokenizer, problems: list[tuple[int, str, int, str]], eos_id: int, pad_id: int):
    """Right-padded input ids and labels; only the reply (and its EOS) carries loss."""
    seqs: list[list[int]] = []
    labels: list[list[int]] = []
    for a, op, b, lang in problems:
        p = tokenizer.encode(prompt_text(tokenizer, question(a, op, b, lang)), add_special_tokens=False)
        r = tokenizer.encode(reply_for(a, op, b), add_special_tokens=False) + [eos_id]
        seqs.append(p + r)
        labels.append([-100] * len(p) + r)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    lab = torch.full((len(seqs), width), -100, dtype=torch.long)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, l) in enumerate(zip(seqs, labels)):
        ids[i, : len(s)] = torch.tensor(s)
        lab[i, : len(l)] = torch.tensor(l)
        att[i, : len(s)] = 1
    return ids, att, lab


# ---------------------------------------------------------------------------- evaluation

BOXED = __import__("re").compile(r"\\boxed\{([^{}]*)\}")


def boxed_answer(text: str) -> str | None:
    """The content of the last ``\\boxed{...}``, or None."""
    found = BOXED.findall(text)
    return found[-1].strip() if found else None


@torch.no_grad()
def generate_replies(
    model,
    tokenizer,
    questions: list[str],
    batch_size: int = 250,
    max_new_tokens: int = 64,
    sample: bool = False,
    seed: int = 0,
) -> tuple[list[str], int, float]:
    """Batched generation with left padding; returns replies, generated tokens and seconds."""
    model.eval()
    tokenizer.padding_side = "left"
    texts: list[str] = []
    n_tokens = 0
    t0 = time.perf_counter()
    if sample:
        torch.manual_seed(seed)
    for i in range(0, len(questions), batch_size):
        prompts = [prompt_text(tokenizer, q) for q in questions[i : i + batch_size]]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        kwargs = dict(do_sample=True, temperature=0.6, top_p=0.95) if sample else dict(do_sample=False)
        out = model.generate(**enc, max_new_tokens=max_new_tokens, **kwargs)
        gen = out[:, enc["input_ids"].shape[1] :]
        for row in gen:
            keep = row[row != tokenizer.pad_token_id]
            n_tokens += int(keep.numel())
            texts.append(tokenizer.decode(keep, skip_special_tokens=True))
    return texts, n_tokens, time.perf_counter() - t0


def evaluate(model, tokenizer, n_per_phrasing: int, seed: int, sample: bool = False) -> dict[str, float]:
    """Accuracy per phrasing on fresh held-out problems (see :func:`fresh_problems`)."""
    probs = fresh_problems(n_per_phrasing, seed)
    texts, _, _ = generate_replies(model, tokenizer, [question(*p[:3], p[3]) for p in probs], sample=sample)
    hits: dict[str, list[int]] = {}
    for (a, op, b, lang), text in zip(probs, texts):
        ok = boxed_answer(text) == str(result(a, op, b))
        hits.setdefault(phrasing(op, lang), []).append(int(ok))
    return {k: sum(v) / len(v) for k, v in hits.items()}


# ------------------------------------------------------------------------------ training


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(Path(tmp))
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    pad_id = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    model = build_model(len(tokenizer), eos_id, pad_id, args.hidden, args.layers)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params: {n_params / 1e6:.2f}M  vocab: {len(tokenizer)}", flush=True)

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
    )
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    stream = training_problems(rng)
    model.train()
    t0 = time.perf_counter()
    for step in range(args.steps):
        batch = [next(stream) for _ in range(args.batch)]
        ids, att, lab = encode_batch(tokenizer, batch, eos_id, pad_id)
        logits = model(input_ids=ids, attention_mask=att).logits
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), lab[:, 1:].reshape(-1), ignore_index=-100
        )
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  lr {lr_at(step):.2e}  {time.perf_counter() - t0:6.1f}s", flush=True)
    train_s = time.perf_counter() - t0
    print(f"training took {train_s:.1f}s", flush=True)

    save(model, tokenizer, Path(args.out), eos_id, pad_id)
    if args.eval > 0:
        acc = evaluate(model, tokenizer, args.eval, seed=1)
        print("greedy accuracy:", json.dumps(acc), flush=True)


def save(model, tokenizer, out: Path, eos_id: int, pad_id: int) -> None:
    """Write config, weights, tokenizer and generation defaults (the model card is separate)."""
    from transformers import GenerationConfig

    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if (out / name).exists():
            (out / name).unlink()
    model.generation_config = GenerationConfig(
        bos_token_id=pad_id, eos_token_id=[eos_id, pad_id], pad_token_id=pad_id, do_sample=False, max_new_tokens=64
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out, save_jinja_files=False)
    # Loading-time bookkeeping that save_pretrained copies along; it means nothing in a repo.
    tc_path = out / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text(encoding="utf-8"))
    for key in ("is_local", "local_files_only"):
        tc.pop(key, None)
    tc_path.write_text(json.dumps(tc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"saved to {out}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder")
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval", type=int, default=0, metavar="N", help="after training, greedy accuracy on N fresh problems per phrasing")
    train(ap.parse_args())


if __name__ == "__main__":
    main()
