"""Every CUDA path of pytest-mathperf, checked against an independent reading on a real card.

Run by ``benchmarks/gpu_check.sh`` (which also runs the demo gate on ``cuda``). Each check prints
one line, ``PASS``, ``FAIL`` or ``SKIP`` with the figures it compared; the exit status is 1 when
any check failed. On a machine without CUDA it says so, runs what can run, and exits 0.

    python benchmarks/gpu_check.py [--repeats 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

GIB = 1024**3
RESULTS: list[tuple[str, str, str]] = []


def report(status: str, name: str, detail: str) -> None:
    RESULTS.append((status, name, detail))
    print(f"{status:4}  {name:28} {detail}", flush=True)


def check(name: str, run: Callable[[], tuple[bool | None, str]]) -> None:
    """Run one check; a crash in it is a failure with its one-line reason, not the end of the script."""
    try:
        passed, detail = run()
    except Exception as error:  # noqa: BLE001 - every check must report, whatever breaks
        passed, detail = False, f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
    report("SKIP" if passed is None else "PASS" if passed else "FAIL", name, detail)


def card_name_check() -> tuple[bool | None, str]:
    import pynvml
    import torch

    from pytest_mathperf.devices import describe_device, detect_card, nvml_init, pci_bus_id

    info = describe_device("cuda:0")
    cuda_name = torch.cuda.get_device_properties(0).name
    problem = nvml_init()
    if problem is not None:
        return False, f"NVML unusable on a CUDA machine: {problem}; card {info.card!r} (CUDA {cuda_name!r})"
    raw = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByPciBusId(pci_bus_id(0)))
    nvml_name = raw.decode() if isinstance(raw, bytes) else raw
    slice_ok = (" MIG" in info.card) == (info.mig or " MIG " in f"{cuda_name} ")
    agree = detect_card() == info.card and (info.card == nvml_name or info.mig) and slice_ok
    return agree, (
        f"card {info.card!r}; NVML {nvml_name!r}; CUDA {cuda_name!r}; MIG {info.mig}; "
        f"target {info.nvml_target}; driver {info.driver}; CUDA {info.cuda}"
    )


def _loaded_backend(device: str, dtype: str = "auto") -> Any:
    from pytest_mathperf.backends import BackendOptions
    from pytest_mathperf.backends.hf import HFBackend

    backend = HFBackend(BackendOptions(model="mathperf-tiny", device=device, dtype=dtype))
    backend.load_info = backend.load()
    return backend


def _request(max_new_tokens: int = 48) -> Any:
    from pytest_mathperf.backends import GenerationRequest, Message

    return GenerationRequest(messages=(Message("user", "What is 705 + 583?"),), max_new_tokens=max_new_tokens)


def ttft_check(repeats: int) -> tuple[bool | None, str]:
    """The streamer's CUDA-synchronised TTFT vs CUDA events around the prefill, on the same generations."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    backend = _loaded_backend("cuda:0")

    class FirstLogits(LogitsProcessor):
        """Records a CUDA event when the first logits exist: the prefill is done on the card."""

        def __init__(self) -> None:
            self.event: Any = None

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            if self.event is None:
                self.event = torch.cuda.Event(enable_timing=True)
                self.event.record()
            return scores

    generate = backend.model.generate
    marks: list[tuple[Any, FirstLogits]] = []

    def timed_generate(**settings: Any) -> Any:
        start, first = torch.cuda.Event(enable_timing=True), FirstLogits()
        start.record()
        marks.append((start, first))
        return generate(**settings, logits_processor=LogitsProcessorList([first]))

    backend.model.generate = timed_generate
    backend.generate(_request())  # warm-up
    streamer, events = [], []
    for _ in range(repeats):
        generation = backend.generate(_request())
        torch.cuda.synchronize()
        start, first = marks[-1]
        streamer.append(generation.ttft_ms)
        events.append(start.elapsed_time(first.event))
    backend.model.generate = generate
    backend.close()
    a, b = statistics.median(streamer), statistics.median(events)
    # The streamer's clock also holds the sampling and the copy to the host after the prefill.
    agree = b <= a and a - b <= max(0.10 * a, 1.0)
    return agree, f"median TTFT streamer {a:.2f} ms, CUDA events to first logits {b:.2f} ms ({repeats} generations)"


def memory_check() -> tuple[bool | None, str]:
    """NVML's figure vs torch's pool, the load peak, and a spike torch forgets that only the poller sees."""
    import torch

    from pytest_mathperf.devices import current_pid_namespace
    from pytest_mathperf.memory import MemoryMonitor, devices_of

    monitor = MemoryMonitor.before_load("cuda:0")
    backend = _loaded_backend("cuda:0")
    monitor.after_load(devices_of(backend.load_info))
    monitor.start()
    backend.generate(_request())
    spike = torch.empty(GIB, dtype=torch.uint8, device="cuda:0")
    spike.fill_(1)
    torch.cuda.synchronize()
    time.sleep(0.2)  # twenty polling intervals
    del spike
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(0)  # torch no longer knows the spike: only the poller can
    monitor.stop()
    figures = monitor.figures()
    reserved = torch.cuda.memory_reserved(0)
    backend.close()
    outside = (figures.load_bytes or 0) - reserved
    sane_source = figures.source in ("nvml-process", "nvml-device-delta")
    caught = (figures.peak_bytes or 0) - (figures.load_bytes or 0) >= 0.9 * GIB
    context_sized = 0 <= outside <= 2 * GIB  # NVML counts the CUDA context and libraries torch's pool does not
    detail = (
        f"source {figures.label}; load {(figures.load_bytes or 0) / GIB:.3f} GB vs torch reserved {reserved / GIB:.3f} GB "
        f"(+{outside / GIB:.3f} GB outside torch); load peak {(figures.load_peak_bytes or 0) / GIB:.3f} GB; "
        f"run peak {(figures.peak_bytes or 0) / GIB:.3f} GB with a 1 GB spike torch forgot; "
        f"namespace nested {current_pid_namespace().nested}; note {figures.note!r}"
    )
    return sane_source and caught and context_sized, detail


def bf16_check() -> tuple[bool | None, str]:
    import torch

    from pytest_mathperf.backends import ModelLoadError

    supported = torch.cuda.is_bf16_supported(including_emulation=False)
    try:
        backend = _loaded_backend("cuda:0", dtype="bfloat16")
    except ModelLoadError as error:
        return not supported, f"bf16 supported {supported}; refused: {error}"
    dtype = str(backend.model.dtype)
    backend.close()
    return supported, f"bf16 supported {supported}; loaded as {dtype}"


def several_cards_check() -> tuple[bool | None, str]:
    """``--mathperf-device auto`` with a model that "does not fit" one card: spread, summed, generating."""
    import torch

    import pytest_mathperf.devices as devices
    from pytest_mathperf.backends import BackendOptions
    from pytest_mathperf.backends.hf import HFBackend
    from pytest_mathperf.memory import MemoryMonitor, devices_of

    if torch.cuda.device_count() < 2:
        return None, f"{torch.cuda.device_count()} card visible: spreading a model needs two"
    fits = devices.needs_several_cards
    devices.needs_several_cards = lambda *args, **kwargs: True  # the demo model fits anywhere: pretend it does not
    try:
        monitor = MemoryMonitor.before_load("auto")
        backend = HFBackend(BackendOptions(model="mathperf-tiny", device="auto"))
        info = backend.load()
    finally:
        devices.needs_several_cards = fits
    monitor.after_load(devices_of(info))
    monitor.start()
    text = backend.generate(_request()).text
    monitor.stop()
    figures = monitor.figures()
    backend.close()
    spread = info.details.get("device_map") == "auto" and figures.several_cards
    return spread and "1288" in text, f"devices {info.details.get('devices')}; memory {figures.label}; answer ok {'1288' in text}"


def host_poller_check() -> tuple[bool | None, str]:
    """The poller child's mechanics on host memory (runs anywhere)."""
    from pytest_mathperf.memory import PeakPoller

    poller = PeakPoller("rss", [os.getpid()])
    baseline = poller.reset().peaks[0]
    block = b"\x01" * (256 * 1024**2)
    time.sleep(0.5)
    del block
    reading = poller.stop()
    return reading.peaks[0] - baseline >= 240 * 1024**2, f"saw +{(reading.peaks[0] - baseline) / GIB:.3f} GB in {reading.samples} samples"


def poller_cost_check() -> tuple[bool | None, str]:
    """The NVML poller child must cost the measured generations nothing measurable (at most 5 %)."""
    from poller_overhead import measure  # benchmarks/, next to this script

    what, medians = measure("cuda:0", rounds=5, generations=8)
    child, thread = medians["poller child"] / medians["none"], medians["sampling thread"] / medians["none"]
    return child <= 1.05, f"time per generation x{child:.3f} with the poller child, x{thread:.3f} with a thread ({what})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8, help="measured generations for the TTFT check")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__} · CUDA {torch.version.cuda} · {torch.cuda.device_count()} card(s) visible")
    check("host poller", host_poller_check)
    if not torch.cuda.is_available():
        from pytest_mathperf.devices import nvml_init

        report("SKIP", "CUDA paths", f"no CUDA on this machine (torch {torch.__version__}; NVML: {nvml_init() or 'ok'})")
        return 0
    check("card name", card_name_check)
    check("TTFT streamer vs events", lambda: ttft_check(args.repeats))
    check("memory NVML vs torch", memory_check)
    check("bf16 support", bf16_check)
    check("several cards", several_cards_check)
    check("poller cost", poller_cost_check)
    failed = [name for status, name, _ in RESULTS if status == "FAIL"]
    print(f"{len(RESULTS)} checks, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
