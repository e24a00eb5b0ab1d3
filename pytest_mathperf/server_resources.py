"""What the server spent while a load profile ran: its process's CPU and memory, the card's busy share.

The seed's load test reports server CPU under 40 % and the GPU about 65 % busy beside success rate
and latency; a latency figure means little without knowing whether the server was saturated.
The server's process is found by the PID listening on the endpoint's port when the server runs
on this host (or a PID given), and sampled with psutil from a thread of its own; on CUDA the
card is read through NVML (``gpu_reading``, one small function that tests replace).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: How often the server is sampled: psutil's CPU share is the average over each interval.
SAMPLE_INTERVAL_S = 0.5
GIB = 1024**3


@dataclass(frozen=True)
class GpuReading:
    util_percent: float
    memory_gb: float
    power_w: float | None


@dataclass(frozen=True)
class ServerResources:
    """Samples taken while a load profile ran, keyed by the load metric names budgets use."""

    pid: int | None
    samples: dict[str, tuple[float, ...]] = field(default_factory=dict)
    note: str = ""  # why something was not sampled

    def describe(self) -> str:
        return f"server PID {self.pid}" if self.pid is not None else f"server not sampled: {self.note}"


def is_local(endpoint: str) -> bool:
    """Whether the endpoint's host is this machine (loopback), so its process can be looked at."""
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listening_pid(endpoint: str) -> int | None:
    """The PID of the process listening on the endpoint's port on this host, or None."""
    import psutil

    port = urlsplit(endpoint).port or (443 if endpoint.startswith("https") else 80)
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port and connection.pid:
            return int(connection.pid)
    return None


def gpu_reading(index: int) -> GpuReading | None:
    """The card's utilisation, memory in use and power draw through NVML; None where NVML cannot tell."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        util = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle).used / GIB
        try:
            power = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
        except pynvml.NVMLError:
            power = None
        return GpuReading(float(util), float(memory), power)
    except Exception:  # no NVML, no driver, no such card: nothing to sample  # noqa: BLE001
        return None


class ResourceSampler:
    """Samples the server process (and its children) and the card every ``interval_s`` until stopped."""

    def __init__(
        self, pid: int | None, gpu_index: int | None = None, interval_s: float = SAMPLE_INTERVAL_S,
        read_gpu: Callable[[int], GpuReading | None] = gpu_reading, note: str = "",
    ) -> None:  # fmt: skip
        self.pid, self.gpu_index, self.interval_s, self.read_gpu, self.note = pid, gpu_index, interval_s, read_gpu, note
        self._stop = threading.Event()
        self._values: dict[str, list[float]] = {}
        self._thread = threading.Thread(target=self._run, name="mathperf-server-sampler", daemon=True)

    def __enter__(self) -> ResourceSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> ServerResources:
        return ServerResources(self.pid, {name: tuple(values) for name, values in self._values.items()}, self.note)

    def _run(self) -> None:
        import psutil

        processes = self._processes()
        cores = psutil.cpu_count() or 1
        while not self._stop.wait(self.interval_s):
            if processes:
                cpu = rss = 0.0
                for process in processes:
                    try:
                        cpu += process.cpu_percent(None)
                        rss += process.memory_info().rss
                    except psutil.Error:  # a worker that ended: the others still count
                        continue
                self._add("load.server_cpu_percent", cpu / cores)  # of all this host's cores, as the seed reports it
                self._add("load.server_rss_gb", rss / GIB)
            reading = self.read_gpu(self.gpu_index) if self.gpu_index is not None else None
            if reading is not None:
                self._add("load.gpu_util_percent", reading.util_percent)
                self._add("load.gpu_memory_gb", reading.memory_gb)
                if reading.power_w is not None:
                    self._add("load.gpu_power_w", reading.power_w)

    def _processes(self) -> list[Any]:
        """The server and its children (workers), primed so the first interval's CPU share is real."""
        import psutil

        if self.pid is None:
            return []
        try:
            server = psutil.Process(self.pid)
            found = [server, *server.children(recursive=True)]
        except psutil.Error:
            self.note = f"process {self.pid} is gone"
            return []
        for process in found:
            process.cpu_percent(None)
        return found

    def _add(self, name: str, value: float) -> None:
        self._values.setdefault(name, []).append(value)


def sampler_for(endpoint: str, pid: int | None, gpu_index: int | None) -> ResourceSampler:
    """A sampler of the given PID, or of the process on the endpoint's port when the server is local."""
    note = ""
    if pid is None:
        if is_local(endpoint):
            pid = listening_pid(endpoint)
            note = "" if pid is not None else "no process of this host listens on the endpoint's port"
        else:
            note = "the server is not on this host (give its PID with --mathperf-server-pid when it is)"
    return ResourceSampler(pid, gpu_index, note=note)
