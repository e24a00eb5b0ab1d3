"""Which card a run is on and how much memory this process holds on it.

GPU memory comes from NVML per-process accounting, matched to torch's device by PCI bus id so that
``CUDA_VISIBLE_DEVICES`` reordering cannot make us read another card; where NVML cannot see the
process (some containers), torch's reserved memory stands in and the source says so (SPEC 2.4).
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from typing import Any, Literal

GIB = 1024**3
MemorySource = Literal["nvml-process", "torch-reserved", "rss"]


@dataclass(frozen=True)
class DeviceInfo:
    """The card as thresholds.yaml spells it, with what a history entry needs to explain a change."""

    device: str  # "cpu" or "cuda:N" as torch sees it
    card: str  # NVML's name ("NVIDIA GeForce RTX 3090"), or "cpu"
    pci_bus_id: str | None = None
    driver: str | None = None
    cuda: str | None = None
    total_memory_gb: float | None = None


def resolve_device(requested: str) -> str:
    """``auto`` → ``cuda:N`` when CUDA is usable, else ``cpu``; a bare ``cuda`` gets its index."""
    import torch

    requested = requested.strip().lower()
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--mathperf-device {requested}: CUDA is not available to torch {torch.__version__}")
        index = torch.cuda.current_device() if requested == "cuda" else int(requested.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"--mathperf-device {requested}: only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
        return f"cuda:{index}"
    raise ValueError(f"--mathperf-device {requested!r}: use auto, cpu, cuda or cuda:N")


def describe_device(device: str) -> DeviceInfo:
    """Name the card behind a torch device (``cpu`` for the host)."""
    if not device.startswith("cuda"):
        return DeviceInfo(device="cpu", card="cpu")
    import torch

    index = int(device.partition(":")[2] or 0)
    properties = torch.cuda.get_device_properties(index)
    bus_id = pci_bus_id(index)
    card, driver = properties.name, None
    handle = nvml_handle(bus_id)
    if handle is not None:
        import pynvml

        card = _text(pynvml.nvmlDeviceGetName(handle))
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
    return DeviceInfo(
        device=device,
        card=card,
        pci_bus_id=bus_id,
        driver=driver,
        cuda=torch.version.cuda,
        total_memory_gb=properties.total_memory / GIB,
    )


def detect_card() -> str:
    """The card this machine's first visible GPU would run on, or ``cpu`` (for ``mathperf card``)."""
    try:
        import torch

        if torch.cuda.is_available():
            return describe_device(f"cuda:{torch.cuda.current_device()}").card
    except ImportError:
        pass
    return "cpu"


def pci_bus_id(index: int) -> str:
    """The PCI bus id of torch's device ``index`` in NVML's spelling (``00000000:01:00.0``)."""
    import torch

    properties = torch.cuda.get_device_properties(index)
    return f"{properties.pci_domain_id:08x}:{properties.pci_bus_id:02x}:{properties.pci_device_id:02x}.0".upper()


_nvml_ready: bool | None = None


def nvml_handle(bus_id: str) -> Any | None:
    """NVML's handle for the card at ``bus_id``, or None where NVML is missing or refuses."""
    global _nvml_ready
    try:
        import pynvml
    except ImportError:
        return None
    if _nvml_ready is None:
        try:
            pynvml.nvmlInit()
            _nvml_ready = True
        except pynvml.NVMLError:
            _nvml_ready = False
    if not _nvml_ready:
        return None
    try:
        return pynvml.nvmlDeviceGetHandleByPciBusId(bus_id)
    except pynvml.NVMLError:
        return None


def nvml_process_memory(handle: Any, pid: int) -> int | None:
    """Bytes this process holds on the card per NVML (CUDA context included), if NVML can see it."""
    import pynvml

    try:
        processes = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except pynvml.NVMLError:
        return None
    for process in processes:
        if process.pid == pid and process.usedGpuMemory is not None:
            return int(process.usedGpuMemory)
    return None


def host_rss_bytes() -> int:
    """Resident set size of this process right now."""
    try:
        with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the best a non-Linux host offers
        return peak if sys.platform == "darwin" else peak * 1024


class MemoryMonitor:
    """Reads this process's memory on one device and its peak between ``start`` and ``stop``.

    No sampling thread: waking one up costs the generating thread the GIL (it measured about
    +40 % generation time on the demo model), so peaks come from counters the system keeps:
    - host: the kernel's high-water mark (``VmHWM``), reset at ``start`` through
      ``/proc/self/clear_refs``; where that is not available, the peak of the readings taken;
    - CUDA: torch's exact peak of reserved memory, plus what NVML sees beyond torch's pool
      (the CUDA context, libraries' workspaces) at the moments it is read.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self._handle = None
        self.source: MemorySource = "rss"
        if device.startswith("cuda"):
            self._index = int(device.partition(":")[2] or 0)
            self._handle = nvml_handle(pci_bus_id(self._index))
            self.source = "torch-reserved"
            if self._handle is not None and nvml_process_memory(self._handle, os.getpid()) is not None:
                self.source = "nvml-process"
        self._peak = 0
        self._outside_pool = 0  # NVML's bytes beyond torch's reserved pool, at most
        self._kernel_peak = False

    @property
    def kind(self) -> Literal["vram", "rss"]:
        return "rss" if self.source == "rss" else "vram"

    def current_bytes(self) -> int:
        if self.source == "rss":
            return host_rss_bytes()
        import torch

        reserved = int(torch.cuda.memory_reserved(self._index))
        if self.source == "nvml-process":
            value = nvml_process_memory(self._handle, os.getpid())
            if value is not None:
                self._outside_pool = max(self._outside_pool, value - reserved)
                return value
        return reserved

    def start(self) -> None:
        """Begin a peak window (the first generation of a model)."""
        self._peak = self.current_bytes()
        if self.source == "rss":
            self._kernel_peak = _reset_host_peak()
        else:
            import torch

            torch.cuda.reset_peak_memory_stats(self._index)

    def peak_bytes(self) -> int:
        """The peak so far in this window; cheap enough to read after every case."""
        self._peak = max(self._peak, self.current_bytes())
        if self.source == "rss":
            return max(self._peak, _host_peak_bytes() if self._kernel_peak else 0)
        import torch

        return max(self._peak, int(torch.cuda.max_memory_reserved(self._index)) + self._outside_pool)

    def stop(self) -> int:
        """End the window and return its peak in bytes."""
        return self.peak_bytes()


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


def host_description() -> dict[str, str]:
    """What a history entry records about the host, so a change between runs can be explained."""
    return {
        "host": platform.node(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu": platform.processor() or platform.machine(),
    }


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def environment_fingerprint(info: DeviceInfo, backend: str, suites: tuple[Any, ...]) -> dict[str, str]:
    """Everything about this run's environment that can explain a change between two runs."""
    import importlib.metadata as metadata

    environment = {
        "card": info.card,
        "device": info.device,
        "driver": info.driver or "",
        "cuda": info.cuda or "",
        "backend": backend,
        **host_description(),
    }
    for package in ("torch", "transformers", "pytest-mathperf", "math-verify"):
        try:
            environment[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            environment[package] = ""
    environment["suites_commit"] = _git_commit(suites)
    return environment


def _git_commit(paths: tuple[Any, ...]) -> str:
    """The last commit that touched the suites (with ``+dirty`` when they have local changes)."""
    import subprocess
    from pathlib import Path

    if not paths:
        return ""
    folder = Path(paths[0])
    folder = folder if folder.is_dir() else folder.parent
    try:
        commit = subprocess.run(
            ["git", "log", "-1", "--format=%H", "--", *map(str, paths)],
            cwd=folder, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *map(str, paths)],
            cwd=folder, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{commit}+dirty" if commit and dirty else commit
