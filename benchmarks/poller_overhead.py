"""What watching memory costs the measured process: the poller child vs a sampling thread vs nothing.

Side by side in one run, on the demo model, alternating rounds so that drift hits every mode
alike: generations with no sampler, with the poller child (``poller.py``, nice 19, every 10 ms),
and with a thread in this process taking the same reading as often. On ``cpu`` the reading is
this process's RSS (the same wake-ups as the NVML sampler), on ``cuda`` it is NVML's. Prints the
median generation time of each mode and its ratio to no sampler.

    python benchmarks/poller_overhead.py [--device cpu|cuda:0] [--rounds 5] [--generations 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

from pytest_mathperf.backends import BackendOptions, GenerationRequest, Message
from pytest_mathperf.backends.hf import HFBackend
from pytest_mathperf.memory import PeakPoller
from pytest_mathperf.poller import DEFAULT_INTERVAL_S, Sampler, make_sampler


class SamplingThread:
    """The design the poller replaces: a thread of this process reading memory every 10 ms."""

    def __init__(self, sample: Sampler) -> None:
        self._sample = sample
        self.peak: tuple[int, ...] = ()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(DEFAULT_INTERVAL_S):
            self.peak = max(self.peak, self._sample())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def measure(device: str, rounds: int, generations: int) -> tuple[str, dict[str, float]]:
    """Median seconds per generation for each mode, and a line saying what was measured."""
    backend = HFBackend(BackendOptions(model="mathperf-tiny", device=device))
    info = backend.load()
    if info.device and info.device.startswith("cuda"):
        from pytest_mathperf.devices import describe_device

        sampler = ["nvml", str(os.getpid()), str(describe_device(info.device).nvml_target)]
    else:
        sampler = ["rss", str(os.getpid())]
    request = GenerationRequest(messages=(Message("user", "What is 705 + 583?"),), max_new_tokens=64)
    for _ in range(3):
        backend.generate(request)  # warm-up
    times: dict[str, list[float]] = {"none": [], "poller child": [], "sampling thread": []}
    for _ in range(rounds):
        for mode in times:
            watcher: PeakPoller | SamplingThread | None = None
            if mode == "poller child":
                watcher = PeakPoller(sampler[0], sampler[1:])
            elif mode == "sampling thread":
                watcher = SamplingThread(make_sampler(sampler[0], sampler[1:]))
            for _ in range(generations):
                started = time.perf_counter()
                backend.generate(request)
                times[mode].append(time.perf_counter() - started)
            if watcher is not None:
                watcher.stop()
    backend.close()
    what = (
        f"demo model on {info.device}, sampler {sampler[0]}, 64 new tokens, "
        f"{rounds} rounds x {generations} generations per mode, {os.cpu_count()} CPUs"
    )
    return what, {mode: statistics.median(values) for mode, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--generations", type=int, default=8)
    args = parser.parse_args()
    what, medians = measure(args.device, args.rounds, args.generations)
    print(what)
    for mode, median in medians.items():
        print(f"{mode:16} median {median * 1000:7.2f} ms   ratio {median / medians['none']:.3f}")


if __name__ == "__main__":
    main()
