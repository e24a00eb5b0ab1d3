"""A child process that samples memory every few milliseconds and reports the peak on request.

A sampling thread in the measured process would take the GIL from the generating thread (it cost
the demo model about 40 % of its speed), so the sampling runs in a process of its own, at the
lowest CPU priority, started before the model loads and stopped after it is measured.

This file is run as a script (``python poller.py SAMPLER ARGS``) and imports nothing but the
standard library and, for NVML samplers, ``pynvml``: the child starts in tens of milliseconds and
never touches CUDA. The NVML reads here are also what ``devices.py`` uses in the parent.

Protocol, one line each way over stdin/stdout:
- the child says ``ready`` once it can sample, or ``error MESSAGE`` and exits 1;
- ``peak``: it takes a sample at once and answers ``SAMPLES ERRORS PEAK...`` for the current window
  (one peak per value the sampler reads: ``rss`` reads one, ``nvml`` two: this process's memory
  on the cards as NVML accounts it, and all memory in use on those cards);
- ``reset``: the same answer, then a new window opens at the current value;
- ``stop`` (or the parent's stdin closing): the same answer, then it exits.
"""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable
from typing import Any

#: How often the child samples, as optimum-benchmark's tracker does for NVML.
DEFAULT_INTERVAL_S = 0.01


def nvml_problem_line(error: BaseException) -> str:
    """One line for any NVML failure: a missing library, an old driver, a refused query."""
    name = type(error).__name__
    text = " ".join(str(error).split()) or name
    if name == "NVMLLibraryMismatchError" or "NVML_ERROR_FUNCTION_NOT_FOUND" in text or "Function Not Found" in text:
        text += " (the driver is older than nvidia-ml-py expects: update the driver, or pin an older nvidia-ml-py)"
    return text if text.startswith(name) else f"{name}: {text}"


def nvml_errors() -> tuple[type[BaseException], ...]:
    """What an NVML call may raise besides our own bugs: pynvml's errors, a missing library, a missing function."""
    errors: list[type[BaseException]] = [OSError, AttributeError]
    try:
        import pynvml
    except ImportError:
        return tuple(errors)
    errors.append(pynvml.NVMLError)
    mismatch = getattr(pynvml, "NVMLLibraryMismatchError", None)
    if mismatch is not None:
        errors.append(mismatch)
    return tuple(errors)


def handle_for_target(target: str) -> Any:
    """NVML's handle for ``BUS_ID`` (a whole card) or ``BUS_ID#migN`` (slice N of that card)."""
    import pynvml

    bus_id, _, mig = target.partition("#mig")
    handle = pynvml.nvmlDeviceGetHandleByPciBusId(bus_id)
    if mig:
        handle = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, int(mig))
    return handle


def compute_processes(handle: Any) -> dict[int, int | None]:
    """PID → bytes for every process with a compute context on the card (PIDs as the host sees them).

    The unversioned call raises ``NVMLLibraryMismatchError`` on a driver without the v3 query; the
    v2 query gives the same fields there.
    """
    import pynvml

    try:
        processes = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except nvml_errors() as error:
        if type(error).__name__ not in ("NVMLLibraryMismatchError", "NVMLError_FunctionNotFound"):
            raise
        processes = pynvml.nvmlDeviceGetComputeRunningProcesses_v2(handle)
    return {
        int(process.pid): None if process.usedGpuMemory is None else int(process.usedGpuMemory)
        for process in processes
    }


def host_rss_of(pid: int) -> int:
    """Resident memory of another process, from the kernel's own accounting."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise OSError(f"/proc/{pid}/status has no VmRSS line")


Sampler = Callable[[], tuple[int, ...]]


def make_sampler(kind: str, arguments: list[str]) -> Sampler:
    """The readings to take: ``rss PID`` (host memory) or ``nvml PID TARGET...`` (process, card)."""
    if kind == "rss":
        pid = int(arguments[0])
        host_rss_of(pid)  # fail now, not in the loop, if the process cannot be read
        return lambda: (host_rss_of(pid),)
    if kind != "nvml":
        raise ValueError(f"unknown sampler {kind!r}")
    try:
        import pynvml
    except ImportError as error:
        raise RuntimeError("no NVML device: nvidia-ml-py is not installed") from error
    pid = int(arguments[0])
    try:
        pynvml.nvmlInit()
        handles = [handle_for_target(target) for target in arguments[1:]]
    except nvml_errors() as error:
        raise RuntimeError(f"no NVML device: {nvml_problem_line(error)}") from None
    if not handles:
        raise RuntimeError("no NVML device: no card was named")

    def sample() -> tuple[int, int]:
        process = sum(compute_processes(handle).get(pid) or 0 for handle in handles)
        used = sum(int(pynvml.nvmlDeviceGetMemoryInfo(handle).used) for handle in handles)
        return process, used

    return sample


class PeakWindow:
    """The highest values a sampler returned since the window opened, and how often it was read."""

    def __init__(self, sample: Sampler) -> None:
        self._sample = sample
        self.last = self.peak = sample()  # a first reading that fails is reported to the parent as such
        self.samples = 1
        self.errors = 0

    def take(self) -> None:
        try:
            self.last = self._sample()
        except Exception:  # noqa: BLE001 - one failed read (a process gone, a busy driver) must not end the watch
            self.errors += 1
            return
        self.samples += 1
        self.peak = tuple(map(max, self.peak, self.last))

    def answer(self) -> str:
        return " ".join(map(str, (self.samples, self.errors, *self.peak))) + "\n"

    def reset(self) -> None:
        self.peak, self.samples, self.errors = self.last, 0, 0


def _lower_priority() -> None:
    try:
        os.nice(19)  # the measured process wins every contest for a core
    except (AttributeError, OSError):
        pass


def serve(kind: str, arguments: list[str], interval_s: float = DEFAULT_INTERVAL_S) -> int:
    """Sample until told to stop, answering the parent's requests (see the module docstring)."""
    _lower_priority()
    out = sys.stdout
    try:
        window = PeakWindow(make_sampler(kind, list(arguments)))
    except (RuntimeError, ValueError, IndexError, *nvml_errors()) as error:
        message = str(error) if isinstance(error, (RuntimeError, ValueError)) else nvml_problem_line(error)
        out.write(f"error {' '.join(message.split())}\n")
        out.flush()
        return 1
    out.write("ready\n")
    out.flush()
    pending = b""
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], interval_s)
        if not readable:
            window.take()
            continue
        chunk = os.read(sys.stdin.fileno(), 4096)
        if not chunk:  # the parent is gone or closed our stdin: nothing more to report to
            return 0
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            command = line.decode("ascii", "replace").strip()
            window.take()
            out.write(window.answer())
            out.flush()
            if command == "stop":
                return 0
            if command == "reset":
                window.reset()


if __name__ == "__main__":
    interval = float(os.environ.get("MATHPERF_POLL_INTERVAL_S", DEFAULT_INTERVAL_S))
    sys.exit(serve(sys.argv[1], sys.argv[2:], interval))
