"""Batched in-process generation: several requests in one left-padded ``generate`` call.

Answers only need tokens, and a batch of 16 on the demo model is an order of magnitude faster
than 16 calls. Each row keeps its own result: generation stops per row at its end-of-sequence
token (transformers pads the finished rows until the longest is done), and padding is never
counted as output. The timings are the batch's (every row's first token arrives at the same
step), which is why the runner marks them as measured under concurrency and keeps them out of
batch-1 figures. Sampling draws from one generator for the whole batch, seeded with the first
row's seed: a row's tokens are reproducible for the same batch, not on their own.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pytest_mathperf.backends import Generation, GenerationRequest

if TYPE_CHECKING:
    from pytest_mathperf.backends.hf import HFBackend


class StepClock:
    """A ``generate`` streamer that notes when each decoding step's tokens (one per row) reach the host."""

    def __init__(self, device: str) -> None:
        self._synchronize = device.startswith("cuda")
        self._device = device
        self._prompt_seen = False
        self.steps: list[float] = []

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # the first put carries the prompts, not generated tokens
            self._prompt_seen = True
            return
        if not self.steps and self._synchronize:
            import torch

            torch.cuda.synchronize(self._device)
        self.steps.append(time.perf_counter())

    def end(self) -> None:
        pass


def batch_key(request: GenerationRequest) -> tuple[Any, ...]:
    """What must be equal for requests to share one ``generate`` call (it takes one setting per call)."""
    return (request.max_new_tokens, request.temperature, request.top_p, request.repetition_penalty, request.timeout_s)


def generate_batch(backend: HFBackend, requests: list[GenerationRequest]) -> list[Generation]:
    """One ``generate`` call for ``requests``, which must share :func:`batch_key`; results in order."""
    import torch

    if not requests:
        return []
    if len({batch_key(request) for request in requests}) > 1:
        raise ValueError("generate_batch: requests of one batch must share max_new_tokens, sampling and timeout")
    first = requests[0]
    if not first.greedy:
        torch.manual_seed(first.seed)
    started = time.perf_counter()
    prompts = [backend.render_prompt(request) for request in requests]
    inputs = backend.tokenizer(
        prompts, return_tensors="pt", add_special_tokens=False, padding=True, padding_side="left"
    ).to(backend.device)
    padded_length = inputs["input_ids"].shape[1]
    prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
    clock = StepClock(backend.device)
    settings = {**backend.sampling_settings(first), "streamer": clock}
    prepared = time.perf_counter()
    if first.timeout_s is not None:
        settings["max_time"] = max(first.timeout_s - (prepared - started), 1e-3)
    output = backend.run_generate(inputs, settings)
    finished = time.perf_counter()
    eos_ids = backend.eos_ids()
    results = []
    for row, (prompt, request) in enumerate(zip(prompts, requests)):
        generated = _up_to_end(output[row, padded_length:].tolist(), eos_ids)
        arrivals = clock.steps[: len(generated)]
        row_finished = arrivals[-1] if arrivals and len(generated) < len(clock.steps) else finished
        results.append(
            backend.generation_from_ids(
                prompt, int(prompt_lengths[row]), generated, request, (started, prepared, row_finished), arrivals
            )
        )
    return results


def _up_to_end(tokens: list[int], eos_ids: set[int]) -> list[int]:
    """A row's own tokens: up to and including its first end-of-sequence token; what follows is padding."""
    for index, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[: index + 1]
    return tokens
