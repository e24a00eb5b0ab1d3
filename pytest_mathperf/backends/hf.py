"""In-process transformers backend: the model under test runs in this very process.

The clock starts before the chat template is applied, as a server's does over HTTP, so
``ttft_ms`` means the same in both backends; ``prepare_ms`` shows the templating and tokenization
part of it. A streamer notes when each generated token reaches the host (its first ``put`` is the
prompt and is ignored); on CUDA the stream is synchronised at the first token only, so the
measurement does not slow what it measures.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pytest_mathperf.backends import (
    BackendError,
    BackendOptions,
    Generation,
    GenerationRequest,
    LoadInfo,
    ModelLoadError,
    OutOfMemory,
)
from pytest_mathperf.backends.fingerprint import folder_fingerprint
from pytest_mathperf.backends.thinking import THINK_CLOSE, THINK_OPEN, answer_offset

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DTYPES = ("auto", "float16", "bfloat16", "float32")


def resolve_model_source(model: str) -> tuple[str, bool]:
    """Where to load ``model`` from: a bundled demo model, a local folder, or a hub id (cache only)."""
    bundled = BUNDLED_MODELS_DIR / model
    bare_name = Path(model).name == model and model not in (".", "..")  # never a path such as "."
    if bare_name and bundled.is_dir():
        return str(bundled), True
    local = Path(model).expanduser()
    if local.is_dir():
        return str(local.resolve()), True
    if local.exists() or model.startswith((".", "/", "~")):
        raise ModelLoadError(f"--mathperf-model {model}: {local} is not a model folder")
    return model, False


class _TokenClock:
    """A generate() streamer that notes when each generated token is on the host.

    One ``perf_counter`` and one list append per token: the first token's time is TTFT, the first
    answer token's (after ``</think>``) is TTFAT.
    """

    def __init__(self, device: str) -> None:
        self._device = device
        self._synchronize = device.startswith("cuda")
        self._prompt_seen = False
        self.arrivals: list[float] = []  # perf_counter per generated token, in order

    @property
    def first_token_at(self) -> float | None:
        return self.arrivals[0] if self.arrivals else None

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # the first put carries the prompt, not a generated token
            self._prompt_seen = True
            return
        if not self.arrivals and self._synchronize:  # generate() hands us a host copy; make sure the device is done too
            import torch

            torch.cuda.synchronize(self._device)
        now = time.perf_counter()
        self.arrivals.extend([now] * max(int(value.numel()), 1))  # assisted decoding may put several

    def end(self) -> None:
        pass


class HFBackend:
    """Loads a causal LM with transformers, offline, and generates one sequence per request."""

    name: ClassVar[str] = "hf"
    in_process: ClassVar[bool] = True

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.model: Any = None
        self.tokenizer: Any = None
        self.device = "cpu"

    def load(self) -> LoadInfo:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        from pytest_mathperf.devices import resolve_device

        model_id = self.options.model
        source, local = resolve_model_source(model_id)
        try:
            self.device = resolve_device(self.options.device)
        except ValueError as error:
            raise ModelLoadError(str(error)) from None
        dtype_name = self._dtype_name()
        offline = os.environ.get("HF_HUB_OFFLINE", "1") not in ("0", "false", "False")
        local_only = offline or local
        transformers_logging.disable_progress_bar()  # a bar per model would clutter every CI log
        with _load_errors(model_id, source, local, self.device):
            config = AutoConfig.from_pretrained(source, local_files_only=local_only)
            dtype = _resolved_dtype(torch, dtype_name, config)
            self._check_bf16(dtype_name, dtype)  # before any weight is read: the card decides, not the file
            device_map = self._device_map(config, dtype)
            # load_s times the weights alone: reading them and placing them on the device
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
            _import_architecture(config)
        with _load_errors(model_id, source, local, self.device), _collector_paused():
            started = time.perf_counter()
            self.model = AutoModelForCausalLM.from_pretrained(
                source,
                dtype=dtype if dtype_name != "auto" else "auto",
                local_files_only=local_only,
                **({"device_map": device_map} if device_map else {}),
            )
            if device_map is None:
                self.model.to(self.device)
            else:  # inputs go where the embeddings are; the rest follows accelerate's hooks
                self.device = str(self.model.get_input_embeddings().weight.device)
            self.model.eval()
            devices = _devices_holding(self.model, self.device)
            for device in devices:
                if device.startswith("cuda"):
                    torch.cuda.synchronize(device)
            load_s = time.perf_counter() - started
        if any(not device.startswith("cuda") for device in devices) and device_map is not None:
            self.close()
            raise ModelLoadError(
                f"--mathperf-model {model_id}: does not fit on the {torch.cuda.device_count()} visible cards "
                f"(accelerate put part of it on {', '.join(d for d in devices if not d.startswith('cuda'))}, "
                "which would make every figure a measure of offloading); use larger or more cards, or a smaller dtype"
            )
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        details = {
            "architecture": ",".join(getattr(self.model.config, "architectures", None) or []),
            "devices": ",".join(devices),
        }
        if device_map is not None:
            details["device_map"] = device_map
        return LoadInfo(
            model=model_id,
            source=source,
            revision=getattr(self.model.config, "_commit_hash", None) or (folder_fingerprint(Path(source)) if local else None),
            dtype=str(self.model.dtype).removeprefix("torch."),
            device=self.device,
            load_s=load_s,
            details=details,
        )

    def _check_bf16(self, requested: str, dtype: Any) -> None:
        import torch

        from pytest_mathperf.devices import bf16_problem

        if not self.device.startswith("cuda") or dtype != torch.bfloat16:
            return
        index = int(self.device.partition(":")[2] or 0)
        with torch.cuda.device(index):
            try:
                supported = torch.cuda.is_bf16_supported(including_emulation=False)
            except TypeError:  # torch before the emulation flag
                supported = torch.cuda.is_bf16_supported()
        problem = bf16_problem(
            requested, "bfloat16", self.device, torch.cuda.get_device_name(index), supported,
            torch.cuda.get_device_capability(index),
        )
        if problem:
            raise ModelLoadError(f"--mathperf-model {self.options.model}: {problem}")

    def _device_map(self, config: Any, dtype: Any) -> str | None:
        """``"auto"`` where ``--mathperf-device auto`` sees several cards and the model fits on none alone.

        A model that fits on one card stays on it: spreading it would add a hop between cards to
        every token.
        """
        import importlib.util

        import torch

        from pytest_mathperf.devices import GIB, needs_several_cards

        if self.options.device.strip().lower() != "auto" or not self.device.startswith("cuda"):
            return None
        if torch.cuda.device_count() < 2:
            return None
        weights = weights_bytes(config, dtype)
        free, _ = torch.cuda.mem_get_info(self.device)
        if not needs_several_cards(weights, free):
            return None
        if importlib.util.find_spec("accelerate") is None:
            raise ModelLoadError(
                f"--mathperf-model {self.options.model}: {weights / GIB:.1f} GB of weights do not fit in the "
                f"{free / GIB:.1f} GB free on {self.device}; spreading it over the {torch.cuda.device_count()} "
                "visible cards needs accelerate (pip install accelerate)"
            )
        return "auto"

    def _dtype_name(self) -> str:
        requested = self.options.dtype
        if requested not in DTYPES:
            raise ModelLoadError(f"--mathperf-dtype {requested!r}: use one of {', '.join(DTYPES)}")
        if requested == "auto" and self.device == "cpu":
            return "float32"  # half precision on CPU is slow and not what anyone deploys there
        return requested

    def render_prompt(self, request: GenerationRequest) -> str:
        messages = [{"role": message.role, "content": message.content} for message in request.messages]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def sampling_settings(self, request: GenerationRequest) -> dict[str, Any]:
        """``generate`` keyword arguments for the request's length and sampling."""
        settings: dict[str, Any] = {
            "max_new_tokens": request.max_new_tokens,
            "do_sample": not request.greedy,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if request.greedy:
            settings.update(temperature=None, top_p=None, top_k=None)
        else:
            settings.update(temperature=request.temperature, top_p=request.top_p)
        if request.repetition_penalty is not None:
            settings["repetition_penalty"] = request.repetition_penalty
        return settings

    def generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        """Several requests with the same sampling settings in one left-padded ``generate`` call."""
        from pytest_mathperf.backends.hf_batch import generate_batch

        return generate_batch(self, requests)

    def generate(self, request: GenerationRequest) -> Generation:
        import torch

        if not request.greedy:
            # Outside the clock: torch seeds every device type it knows, recording a stack trace
            # for each one not yet initialised; greedy decoding draws nothing and needs no seed.
            torch.manual_seed(request.seed)
        started = time.perf_counter()  # before templating: a server's clock includes it too
        prompt = self.render_prompt(request)
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        prompt_length = inputs["input_ids"].shape[1]
        clock = _TokenClock(self.device)
        settings = {**self.sampling_settings(request), "streamer": clock}
        prepared = time.perf_counter()
        if request.timeout_s is not None:
            # the limit counts from the start of the call: templating and tokenization spend it too.
            # transformers checks max_time after each generated token; a limit already spent stops
            # the call here, before the prefill (a prefill or one decode step cannot be interrupted).
            remaining = request.timeout_s - (prepared - started)
            if remaining <= 0:
                return Generation(
                    text="", prompt_tokens=prompt_length, output_tokens=0, reasoning_tokens=0, ttft_ms=None,
                    e2e_ms=(time.perf_counter() - started) * 1000, finish_reason="timeout",
                    prepare_ms=(prepared - started) * 1000,
                )
            settings["max_time"] = remaining
        output = self.run_generate(inputs, settings)
        finished = time.perf_counter()
        return self.generation_from_ids(
            prompt, prompt_length, output[0, prompt_length:].tolist(), request, (started, prepared, finished), clock.arrivals
        )

    def generation_from_ids(
        self,
        prompt: str,
        prompt_length: int,
        generated: list[int],
        request: GenerationRequest,
        times: tuple[float, float, float],
        arrivals: list[float],
    ) -> Generation:
        """One row's result from its generated ids and the host times its tokens arrived at.

        Shared by the one-at-a-time and the batched paths, so both count and name things alike.
        """
        started, prepared, finished = times  # perf_counter: call began, prompt tokenized, last token on the host
        eos_ids = self.eos_ids()
        stopped = bool(generated) and generated[-1] in eos_ids
        if stopped:
            finish_reason = "stop"
        elif len(generated) >= request.max_new_tokens:
            finish_reason = "length"
        elif request.timeout_s is not None and finished - started >= request.timeout_s:
            finish_reason = "timeout"
        else:
            finish_reason = "stop"
        raw = self.tokenizer.decode(generated, skip_special_tokens=True)
        opened_in_prompt = prompt.rstrip().endswith(THINK_OPEN)
        reasoning = _ThinkSpans(raw, opened_in_prompt)
        answer_index = reasoning.answer_token(self._token_at(generated))
        ttfat_at = arrivals[answer_index] if answer_index is not None and answer_index < len(arrivals) else None
        text = f"{THINK_OPEN}\n{raw}" if opened_in_prompt and THINK_OPEN not in raw else raw  # R1-style templates open it
        return Generation(
            text=text,
            prompt_tokens=prompt_length,
            output_tokens=len(generated),
            reasoning_tokens=reasoning.token_count(self._token_at(generated), len(generated) - int(stopped)),
            ttft_ms=None if not arrivals else (arrivals[0] - started) * 1000.0,
            e2e_ms=(finished - started) * 1000.0,
            finish_reason=finish_reason,
            output_tokens_source="token_ids",
            reasoning_tokens_source="token_ids",
            ttfat_ms=None if ttfat_at is None else (ttfat_at - started) * 1000.0,
            prepare_ms=(prepared - started) * 1000.0,
            first_chunk_late=False,  # the streamer sees every generated token, tags included
        )

    def run_generate(self, inputs: Any, settings: dict[str, Any]) -> Any:
        """``model.generate`` with the device synchronised after it, and its failures as backend errors."""
        import torch

        try:
            with torch.inference_mode():
                output = self.model.generate(**inputs, **settings)
            if self.device.startswith("cuda"):
                torch.cuda.synchronize(self.device)
        except torch.OutOfMemoryError as error:
            raise OutOfMemory(self._out_of_memory_message(error)) from None
        except RuntimeError as error:
            if "can't allocate memory" in str(error) or "out of memory" in str(error).lower():
                raise OutOfMemory(self._out_of_memory_message(error)) from None
            raise BackendError(f"generation failed: {_first_line(error)}") from error
        return output

    def _token_at(self, generated: list[int]) -> Any:
        """A function: character offset in the decoded output -> index of the token that produced it."""
        decode = self.tokenizer.decode

        def token_at(offset: int) -> int:
            low, high = 1, len(generated)
            while low < high:  # the shortest prefix whose text reaches past ``offset``
                middle = (low + high) // 2
                if len(decode(generated[:middle], skip_special_tokens=True)) > offset:
                    high = middle
                else:
                    low = middle + 1
            return low - 1

        return token_at

    def eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(source)
        return ids

    def _out_of_memory_message(self, error: BaseException) -> str:
        import torch

        if self.device.startswith("cuda"):
            allocated = torch.cuda.memory_allocated(self.device) / 1024**3
            reserved = torch.cuda.memory_reserved(self.device) / 1024**3
            total = torch.cuda.get_device_properties(self.device).total_memory / 1024**3
            torch.cuda.empty_cache()
            return (
                f"out of memory on {self.device} ({torch.cuda.get_device_name(self.device)}): "
                f"{allocated:.2f} GB allocated, {reserved:.2f} GB reserved of {total:.2f} GB; "
                f"{_first_line(error)}"
            )
        return f"out of host memory during generation: {_first_line(error)}"

    def close(self) -> None:
        import gc

        self.model = None
        self.tokenizer = None
        # So that the next model's memory figures start from this one's absence. A model the
        # runner froze (gc.freeze) is out of this collection's reach, and so cheap to skip: the
        # runner collects it before loading another.
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def _import_architecture(config: Any) -> None:
    """Import the model class's code before the load is timed: importing Python modules is not
    loading weights, and its cost depends on what the process happened to import before."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING

    try:
        MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    except KeyError:
        pass  # not a causal LM transformers knows: from_pretrained says so, with its own message


def weights_bytes(config: Any, dtype: Any) -> int:
    """Bytes of a model's parameters and buffers in ``dtype``, from its config alone (on the meta device)."""
    import itertools

    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        empty = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return sum(tensor.numel() * tensor.element_size() for tensor in itertools.chain(empty.parameters(), empty.buffers()))


def _resolved_dtype(torch: Any, dtype_name: str, config: Any) -> Any:
    """The torch dtype the weights will have: the one asked for, or the checkpoint's for ``auto``."""
    if dtype_name != "auto":
        return getattr(torch, dtype_name)
    stored = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(stored, str):
        stored = getattr(torch, stored.removeprefix("torch."), None)
    return stored if isinstance(stored, torch.dtype) else torch.float32


def _devices_holding(model: Any, device: str) -> tuple[str, ...]:
    """Where the weights are: accelerate's map for a spread model, else the one device."""
    placement = getattr(model, "hf_device_map", None)
    if not placement:
        return (device,)
    devices = []
    for where in placement.values():
        name = f"cuda:{where}" if isinstance(where, int) or str(where).isdigit() else str(where)
        if name not in devices:
            devices.append(name)
    return tuple(devices)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The garbage collector paused while the weights load, as timeit pauses it: a full collection
    falling inside the load cost the demo model's 0.08 s load another 0.15 s, and whether one falls
    there depends on what the process allocated before, not on the model."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _load_errors(model_id: str, source: str, local: bool, device: str) -> Iterator[None]:
    """One line for what goes wrong while loading: a missing model, a bad file, no memory."""
    import torch

    try:
        yield
    except (OSError, ValueError, KeyError) as error:
        hint = (
            ""
            if local
            else " (it is not a local folder and not in the Hugging Face cache; download it first with "
            f"`hf download {model_id}`, or set HF_HUB_OFFLINE=0 to let transformers fetch it)"
        )
        raise ModelLoadError(f"--mathperf-model {model_id}: cannot load from {source}{hint}: {_first_line(error)}") from None
    except torch.OutOfMemoryError as error:
        raise ModelLoadError(f"--mathperf-model {model_id}: out of memory while loading on {device}: {_first_line(error)}") from None


class _ThinkSpans:
    """Where the reasoning and the answer sit in one decoded output, by the definition the HTTP
    backend uses too (``thinking.answer_offset``), mapped back to token indices."""

    def __init__(self, raw: str, opened_in_prompt: bool) -> None:
        self.raw = raw
        open_at = raw.find(THINK_OPEN)
        self.open_end = 0 if opened_in_prompt else (open_at + len(THINK_OPEN) if open_at >= 0 else None)
        self.close_at = raw.rfind(THINK_CLOSE)
        self.answer_at = answer_offset(raw, opened_in_prompt)

    def answer_token(self, token_at: Any) -> int | None:
        return None if self.answer_at is None else token_at(self.answer_at)

    def token_count(self, token_at: Any, end: int) -> int:
        """Tokens strictly between ``<think>`` and ``</think>`` (up to ``end``, the output without its
        stop token, when it never closed)."""
        if self.open_end is None:
            return 0
        first = token_at(self.open_end) if self.open_end < len(self.raw) else end
        last = token_at(self.close_at) if self.close_at >= self.open_end else end
        return max(last - first, 0)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
