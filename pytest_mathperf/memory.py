"""How much memory a model takes: after load, at the peak of its load, and at the peak of its run.

Every figure says where it came from (``MemoryFigures.source``):
- ``nvml-process``: NVML's per-process memory, what ``nvidia-smi`` shows (CUDA context included);
- ``nvml-device-delta``: memory in use on the card(s) minus what was in use before the load. Used
  in a container's PID namespace, where NVML lists host PIDs and ours is not among them; the other
  processes on the card are checked and any change of theirs is reported in ``note``;
- ``torch-reserved``: torch's caching allocator, where NVML cannot be used (the reason is in ``note``);
- ``rss``: host memory, for CPU runs, from the kernel's high-water mark.

On CUDA a child process (``poller.py``) samples NVML every 10 ms from before the load until the
model is unloaded, so allocations made and freed within a generation, or outside torch, are seen
without a thread in this process taking the GIL. torch's exact peak of reserved memory, plus what
NVML saw beyond torch's pool, is a floor under the polled peak (it catches spikes shorter than a
polling interval).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pytest_mathperf.devices import (
    GIB,
    PidNamespace,
    current_pid_namespace,
    describe_device,
    nvml_init,
    nvml_processes,
    nvml_used_bytes,
    resolve_device,
)

MemorySource = Literal["nvml-process", "nvml-device-delta", "torch-reserved", "rss"]
MEMORY_SOURCES: tuple[str, ...] = ("nvml-process", "nvml-device-delta", "torch-reserved", "rss")

#: How long the parent waits for the poller to start (NVML's init is slow without persistence mode).
POLLER_START_TIMEOUT_S = 60.0
POLLER_ANSWER_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class MemoryFigures:
    """One model's memory in bytes, with the source that produced the figures and any caveat."""

    source: MemorySource
    devices: tuple[str, ...]  # the torch devices summed over ("cpu" for the host)
    load_bytes: int | None  # right after the load
    load_peak_bytes: int | None  # the highest point during the load
    peak_bytes: int | None  # the highest point during the measured generations
    note: str = ""  # why this source was used; other processes on the card; a poller that did not run

    @property
    def kind(self) -> Literal["vram", "rss"]:
        return "rss" if self.source == "rss" else "vram"

    @property
    def several_cards(self) -> bool:
        """The model is spread over more than one card (``--mathperf-device auto``): figures are sums."""
        return len(self.devices) > 1

    def without(self, at_load: int, while_measured: int) -> MemoryFigures:
        """Less what other models loaded beside this one held, at its load and while it was measured."""
        if not at_load and not while_measured:
            return self
        load, load_peak, peak = (None if v is None else max(0, v - less) for v, less in (
            (self.load_bytes, at_load), (self.load_peak_bytes, at_load), (self.peak_bytes, while_measured)))
        note = "; ".join(filter(None, (self.note, "other models loaded beside it are taken out")))
        return replace(self, load_bytes=load, load_peak_bytes=load_peak, peak_bytes=peak, note=note)

    def metrics(self) -> dict[str, float]:
        """``vram_load_gb``, ``vram_load_peak_gb``, ``vram_peak_gb`` (``rss_…`` on a CPU run), in GiB."""
        values = {"load_gb": self.load_bytes, "load_peak_gb": self.load_peak_bytes, "peak_gb": self.peak_bytes}
        return {f"{self.kind}_{name}": value / GIB for name, value in values.items() if value is not None}

    @property
    def label(self) -> str:
        """What a summary column, JUnit property or failure text shows: ``nvml-process (2 cards)``."""
        return f"{self.source} ({len(self.devices)} cards)" if self.several_cards else self.source


def choose_cuda_source(
    namespace: PidNamespace, nvml_problem: str | None, pid_listed: bool | None, have_baseline: bool
) -> tuple[MemorySource, str]:
    """Which source measures this process's card memory honestly, and why (the note shown with it).

    ``pid_listed`` is whether NVML lists our PID on the card while we hold a CUDA context (None
    before the context exists).
    """
    if nvml_problem is not None:
        return "torch-reserved", f"NVML unusable ({nvml_problem}): memory is torch's reserved pool, without the CUDA context"
    if not namespace.nested and pid_listed is not False:
        return "nvml-process", ""
    why = namespace.reason if namespace.nested else f"NVML does not list PID {os.getpid()} on the card"
    if have_baseline:
        return "nvml-device-delta", f"{why}; memory is the card's use minus its use before the load"
    return "torch-reserved", f"{why}, and the card was not read before the load: memory is torch's reserved pool"


def others_on_card_note(before: Mapping[int, int | None], after: Mapping[int, int | None]) -> str:
    """What other processes did on the card between two readings, where it changes a delta figure.

    PIDs are the host's (NVML's); one new PID is this process's own context, any more are others.
    """
    parts = []
    arrived = [pid for pid in after if pid not in before]
    if len(arrived) > 1:
        parts.append(f"{len(arrived)} processes started on the card during the run (one is this one)")
    changed = sum((after.get(pid) or 0) - (used or 0) for pid, used in before.items())
    if abs(changed) >= 64 * 1024**2:
        parts.append(f"processes already on the card changed their memory by {changed / GIB:+.2f} GB")
    if not parts:
        return ""
    return "the figure may include other processes: " + "; ".join(parts)


class PollerUnavailable(RuntimeError):
    """The poller child could not start or stopped answering; the message is one line."""


@dataclass(frozen=True)
class PollReading:
    """The peaks the poller saw in one window (one per value its sampler reads)."""

    peaks: tuple[int, ...]
    samples: int
    errors: int


class PeakPoller:
    """The parent's side of ``poller.py``: start it, ask for window peaks, stop it."""

    def __init__(self, sampler: str, arguments: Sequence[str]) -> None:
        package_parent = str(Path(__file__).resolve().parent.parent)
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, (package_parent, environment.get("PYTHONPATH"))))
        try:
            self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", "pytest_mathperf.poller", sampler, *map(str, arguments)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=environment,
            )
        except OSError as error:
            raise PollerUnavailable(f"memory poller: cannot start {sys.executable}: {error}") from None
        first = self._line(POLLER_START_TIMEOUT_S)
        if first != "ready":
            self.close()
            raise PollerUnavailable(first.removeprefix("error ").strip() or "memory poller: exited without a word")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _line(self, timeout_s: float) -> str:
        assert self._process is not None and self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout_s)
        if not ready:
            self.close()
            raise PollerUnavailable(f"memory poller: no answer within {timeout_s:g} s")
        return self._process.stdout.readline().decode("utf-8", "replace").strip()

    def _ask(self, command: str) -> PollReading:
        if not self.running:
            raise PollerUnavailable("memory poller: not running")
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(f"{command}\n".encode())
            self._process.stdin.flush()
        except OSError as error:
            self.close()
            raise PollerUnavailable(f"memory poller: {error}") from None
        fields = self._line(POLLER_ANSWER_TIMEOUT_S).split()
        if len(fields) < 3:
            self.close()
            raise PollerUnavailable(f"memory poller: unexpected answer {' '.join(fields)!r}")
        samples, errors, *peaks = map(int, fields)
        return PollReading(tuple(peaks), samples, errors)

    def peak(self) -> PollReading:
        """The peaks of the current window so far (the child takes a fresh sample first)."""
        return self._ask("peak")

    def reset(self) -> PollReading:
        """The current window's peaks; a new window opens at the current value."""
        return self._ask("reset")

    def stop(self) -> PollReading:
        """The last window's peaks; the child exits."""
        reading = self._ask("stop")
        self.close()
        return reading

    def close(self) -> None:
        """End the child if it still runs (it also ends by itself when our end of its stdin closes)."""
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()


def candidate_devices(requested: str) -> tuple[str, ...]:
    """The devices a model may land on: every visible card for ``auto`` with several, else the one."""
    if requested.strip().lower() == "auto":
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() > 1:
            return tuple(f"cuda:{index}" for index in range(torch.cuda.device_count()))
    return (resolve_device(requested),)


def devices_of(load_info: Any) -> tuple[str, ...]:
    """The devices holding a loaded model's weights (``details["devices"]`` where it spans several)."""
    listed = (getattr(load_info, "details", None) or {}).get("devices", "")
    devices = tuple(device for device in listed.split(",") if device)
    return devices or ((load_info.device,) if load_info.device else ())


class MemoryMonitor:
    """One model's memory from before its load to its unloading (see the module docstring).

    Usage by the runner: ``MemoryMonitor.before_load(device)`` before ``backend.load()``, then
    ``after_load(devices_of(load_info))``, ``start()`` after the warm-up, ``peak_bytes()`` between
    cases if wanted, and ``stop()`` (which returns the ``MemoryFigures``) before unloading;
    ``close()`` where the load failed. ``MemoryMonitor(device)`` after a load still works, without
    the load-time figures.
    """

    def __init__(self, device: str | Sequence[str], *, before_load: bool = False) -> None:
        self.devices: tuple[str, ...] = (device,) if isinstance(device, str) else tuple(device)
        self.note = ""
        self._poller: PeakPoller | None = None
        self._baseline_used: dict[str, int] = {}
        self._baseline_processes: dict[str, dict[int, int | None]] = {}
        self._targets: dict[str, str] = {}
        self._outside_pool = 0
        self._window_peak = 0
        self._kernel_peak = False
        self.load_bytes: int | None = None
        self.load_peak_bytes: int | None = None
        self._figures: MemoryFigures | None = None
        if not self.devices[0].startswith("cuda"):
            self.devices = ("cpu",)
            self.source: MemorySource = "rss"
            self._kernel_peak = _reset_host_peak()
            if not before_load:
                self.load_bytes = self.current_bytes()
            return
        self._cuda_setup(before_load)

    @classmethod
    def before_load(cls, device: str) -> MemoryMonitor:
        """Start watching before the model loads; ``device`` is ``--mathperf-device`` or a resolved device."""
        return cls(candidate_devices(device), before_load=True)

    # --- CUDA ------------------------------------------------------------------------------

    def _cuda_setup(self, before_load: bool) -> None:
        import torch

        if before_load and torch.cuda.is_initialized():
            torch.cuda.empty_cache()  # what an earlier model's allocator kept must not count as this load's
        problem = nvml_init()
        for device in self.devices:
            info = describe_device(device)
            if info.nvml_target is None:
                problem = problem or info.nvml_problem or f"NVML does not know {device}"
            else:
                self._targets[device] = info.nvml_target
        namespace = current_pid_namespace()
        if problem is None and before_load:
            for device, target in self._targets.items():
                used, processes = nvml_used_bytes(target), nvml_processes(target)
                if used is None or processes is None:
                    problem = f"NVML cannot read {device}'s memory"
                    break
                self._baseline_used[device], self._baseline_processes[device] = used, processes
        listed = None if before_load or problem is not None else self._pid_listed()
        self.source, self.note = choose_cuda_source(namespace, problem, listed, bool(self._baseline_used))
        if torch.cuda.is_initialized():
            for device in self.devices:
                torch.cuda.reset_peak_memory_stats(device)
        if self.source != "torch-reserved":
            self._start_poller()
        if not before_load:
            self.load_bytes = self.current_bytes()

    def _pid_listed(self) -> bool | None:
        """Whether NVML lists this PID on a card we hold memory on (None where it cannot be told)."""
        import torch

        held = [device for device in self.devices if device in self._targets and torch.cuda.memory_reserved(device) > 0]
        if not held:
            return None
        pid = os.getpid()  # listed without a figure (vGPU, WDDM) counts as not listed: there is nothing to read
        return any((nvml_processes(self._targets[device]) or {}).get(pid) is not None for device in held)

    def _start_poller(self) -> None:
        try:
            self._poller = PeakPoller("nvml", [os.getpid(), *(self._targets[device] for device in self.devices)])
        except PollerUnavailable as error:
            self._poller = None
            self.note = "; ".join(filter(None, (self.note, f"peaks read between cases only ({error})")))

    def _nvml_reading(self) -> int | None:
        """This source's bytes right now, summed over the devices."""
        if self.source == "nvml-process":
            listings = [nvml_processes(self._targets[device]) for device in self.devices]
            if any(listing is None for listing in listings):
                return None
            return sum((listing or {}).get(os.getpid()) or 0 for listing in listings)
        used = [nvml_used_bytes(self._targets[device]) for device in self.devices]
        if any(value is None for value in used):
            return None
        return sum(value or 0 for value in used) - sum(self._baseline_used.get(device, 0) for device in self.devices)

    def _from_poll(self, reading: PollReading) -> int:
        if not reading.peaks:
            return 0
        if self.source == "nvml-process":
            return reading.peaks[0]
        return reading.peaks[1] - sum(self._baseline_used.get(device, 0) for device in self.devices)

    def _torch_reserved(self, peak: bool = False) -> int:
        import torch

        read = torch.cuda.max_memory_reserved if peak else torch.cuda.memory_reserved
        return sum(int(read(device)) for device in self.devices)

    # --- the window protocol -----------------------------------------------------------------

    @property
    def kind(self) -> Literal["vram", "rss"]:
        return "rss" if self.source == "rss" else "vram"

    def current_bytes(self) -> int:
        """This model's memory right now by the chosen source."""
        if self.source == "rss":
            return host_rss_bytes()
        reserved = self._torch_reserved()
        if self.source == "torch-reserved":
            return reserved
        value = self._nvml_reading()
        if value is None:
            return reserved
        self._outside_pool = max(self._outside_pool, value - reserved)
        return value

    def after_load(self, devices: Sequence[str] = ()) -> None:
        """Close the load window: the figures after load and at its peak; narrow to the cards used."""
        used = tuple(devices) or self.devices
        if self.source == "rss":
            self.load_peak_bytes = _host_peak_bytes() if self._kernel_peak else None
            self.load_bytes = self.current_bytes()
            return
        load_window = None
        if self._poller is not None:
            try:
                load_window = self._poller.reset()
            except PollerUnavailable as error:
                self._poller = None
                self.note = "; ".join(filter(None, (self.note, f"peaks read between cases only ({error})")))
        if self.source == "nvml-process" and self._pid_listed() is False:
            self.source, self.note = choose_cuda_source(
                current_pid_namespace(), None, False, bool(self._baseline_used)
            )
        # torch's peak is exact for its own pool; NVML's poll adds the context and everything outside it
        self.load_peak_bytes = self._torch_reserved(peak=True)
        if load_window is not None and self.source != "torch-reserved":
            self.load_peak_bytes = max(self.load_peak_bytes, self._from_poll(load_window))
        if used != self.devices and all(device in self.devices for device in used):
            self.devices = used  # the load figures were taken over every candidate card; the run's over the used ones
            if self._poller is not None:
                self._poller.close()
                self._start_poller()
        if self.source == "torch-reserved":
            self.close()
        self.load_bytes = self.current_bytes()
        if self.load_peak_bytes is not None:
            self.load_peak_bytes = max(self.load_peak_bytes, self.load_bytes)

    def start(self) -> None:
        """Open the measured window (after the warm-up, which never counts)."""
        self._window_peak = self.current_bytes()
        if self.source == "rss":
            self._kernel_peak = _reset_host_peak()
            return
        import torch

        for device in self.devices:
            torch.cuda.reset_peak_memory_stats(device)
        self._outside_pool = max(0, self._window_peak - self._torch_reserved())
        if self._poller is not None:
            try:
                self._poller.reset()
            except PollerUnavailable:
                self._poller = None

    def peak_bytes(self) -> int:
        """The measured window's peak so far; cheap enough to read after every case."""
        if self._figures is not None:
            return self._figures.peak_bytes or 0
        self._window_peak = max(self._window_peak, self.current_bytes())
        if self.source == "rss":
            return max(self._window_peak, _host_peak_bytes() if self._kernel_peak else 0)
        floor = self._torch_reserved(peak=True) + (0 if self.source == "torch-reserved" else self._outside_pool)
        polled = 0
        if self._poller is not None:
            try:
                polled = self._from_poll(self._poller.peak())
            except PollerUnavailable:
                self._poller = None
        return max(self._window_peak, floor, polled)

    def stop(self) -> int:
        """Close the measured window, stop the poller and return the peak in bytes (``figures()`` has all)."""
        if self._figures is None:
            peak = self.peak_bytes()
            if self.source == "nvml-device-delta":
                after = {device: nvml_processes(self._targets[device]) or {} for device in self.devices}
                notes = [
                    others_on_card_note(self._baseline_processes.get(device, {}), after[device])
                    for device in self.devices
                ]
                self.note = "; ".join(filter(None, (self.note, *notes)))
            self.close()
            self._figures = MemoryFigures(
                source=self.source,
                devices=self.devices,
                load_bytes=self.load_bytes,
                load_peak_bytes=self.load_peak_bytes,
                peak_bytes=peak,
                note=self.note,
            )
        return self._figures.peak_bytes or 0

    def figures(self) -> MemoryFigures:
        """Everything measured so far (the peak so far while the window is open)."""
        if self._figures is not None:
            return self._figures
        return MemoryFigures(
            self.source, self.devices, self.load_bytes, self.load_peak_bytes, self.peak_bytes(), self.note
        )

    def close(self) -> None:
        """Stop the poller (where the load failed, or when done); safe to call twice."""
        if self._poller is not None:
            self._poller.close()
            self._poller = None


def host_rss_bytes() -> int:
    """Resident set size of this process right now."""
    try:
        with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the best a non-Linux host offers
        return peak if sys.platform == "darwin" else peak * 1024


def _reset_host_peak() -> bool:
    """Reset the kernel's peak RSS of this process (Linux ≥ 4.0); False where it cannot be."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return _host_peak_bytes() > 0
    except OSError:
        return False


def _host_peak_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
