"""Token counts of a streamed generation, each with where it came from.

Preference: the server's ``usage`` (it counted the ids it generated), else the streamed text
re-tokenized with the model's tokenizer when it is on this machine, else one token per streamed
chunk: an estimate (a server may put several tokens in one chunk, and reasoning parsers send no
chunk for the tags they swallow) that token-derived budgets can refuse.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_mathperf.backends import Message, TokenCountSource
from pytest_mathperf.backends.openai.sse import ChatStream
from pytest_mathperf.backends.thinking import THINK_OPEN


@dataclass(frozen=True)
class TokenCounts:
    prompt: int  # 0 when neither the server nor a tokenizer could say
    output: int
    reasoning: int
    output_source: TokenCountSource
    reasoning_source: TokenCountSource


def count_tokens(stream: ChatStream, messages: Sequence[Message], tokenizer: Any | None) -> TokenCounts:
    """Output, reasoning and prompt counts of ``stream``, each from the best source at hand."""
    usage = stream.usage or {}
    reasoning_text = stream.reasoning_text()

    if isinstance(usage.get("completion_tokens"), int):
        output, output_source = int(usage["completion_tokens"]), "usage"
    elif tokenizer is not None:
        output, output_source = len(tokenizer.encode(stream.text(), add_special_tokens=False)), "tokenizer"
    else:
        output, output_source = len(stream.events), "chunks"  # most servers send one token per chunk

    details = usage.get("completion_tokens_details")
    reported = details.get("reasoning_tokens") if isinstance(details, Mapping) else None
    if isinstance(reported, int):
        reasoning, reasoning_source = reported, "usage"
    elif not reasoning_text:
        reasoning, reasoning_source = 0, output_source  # no reasoning: zero is as sure as the output count
    elif tokenizer is not None:
        reasoning = len(tokenizer.encode(reasoning_text, add_special_tokens=False))
        reasoning_source = "tokenizer"
    else:
        reasoning = sum(1 for event in stream.events if event.kind == "reasoning")
        reasoning_source = "chunks"

    if isinstance(usage.get("prompt_tokens"), int):
        prompt = int(usage["prompt_tokens"])
    elif tokenizer is not None:
        prompt = len(render_prompt_ids(tokenizer, messages) or ())
    else:
        prompt = 0
    return TokenCounts(prompt, output, min(reasoning, output), output_source, reasoning_source)  # type: ignore[arg-type]


def first_chunk_late(stream: ChatStream, prompt_opens_think: bool | None) -> bool | None:
    """Whether the first streamed chunk carries the second generated token, not the first.

    A reasoning parser (vLLM's, ``transformers serve``'s) sends no chunk for a ``<think>`` the
    model generated, so the first chunk is the first reasoning token after it. Reasoning streamed
    apart means such a parser ran; whether ``<think>`` was generated or already in the prompt
    depends on the chat template, which only the model's tokenizer tells (None without it).
    """
    if not stream.events:
        return None
    if stream.events[0].kind == "content":
        return False  # the text, tags included, streams as generated
    if prompt_opens_think is None:
        return None
    return not prompt_opens_think


def render_prompt_ids(tokenizer: Any, messages: Sequence[Message]) -> list[int] | None:
    try:
        ids = tokenizer.apply_chat_template(
            [{"role": message.role, "content": message.content} for message in messages],
            add_generation_prompt=True,
            tokenize=True,
        )
    except Exception:  # no chat template: the prompt is unknown here, which is not fatal
        return None
    return list(ids["input_ids"] if isinstance(ids, Mapping) else ids)


def prompt_opens_think(tokenizer: Any, messages: Sequence[Message]) -> bool | None:
    """Whether the model's chat template ends the prompt inside an opened ``<think>`` (R1-style)."""
    try:
        prompt = tokenizer.apply_chat_template(
            [{"role": message.role, "content": message.content} for message in messages],
            add_generation_prompt=True,
            tokenize=False,
        )
    except Exception:
        return None
    return isinstance(prompt, str) and prompt.rstrip().endswith(THINK_OPEN)


def load_local_tokenizer(model: str) -> Any | None:
    """The model's tokenizer from a local folder or the HF cache, offline; None when not at hand."""
    if not _tokenizer_at_hand(model):
        return None  # importing transformers only to fail would cost seconds
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model, local_files_only=True)
    except Exception:  # not a loadable tokenizer: counts fall back to the server's or the chunks
        return None


def _tokenizer_at_hand(model: str) -> bool:
    if os.path.isdir(model):
        return True
    from huggingface_hub.constants import HF_HUB_CACHE

    return os.path.isdir(os.path.join(HF_HUB_CACHE, "models--" + model.replace("/", "--")))
