"""Which card a run is on, how thresholds.yaml names it, and what NVML can tell about it.

Cards are named as NVML names them ("NVIDIA GeForce RTX 3090"), matched to torch's device by PCI
bus id so that ``CUDA_VISIBLE_DEVICES`` reordering cannot make us read another card. A MIG slice
keeps its profile in the name ("NVIDIA A100-SXM4-40GB MIG 1g.10gb"), so budgets written for the
whole card never judge a slice. Any NVML failure (no library, a driver older than nvidia-ml-py,
a refused query) is one line in ``DeviceInfo.nvml_problem`` and the name comes from torch.

Memory readings live in ``memory.py``; the NVML reads both share are in ``poller.py``, and what
NVML says about a card (name, driver, MIG slice) in ``nvml_cards.py``.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import platform
import re
from dataclasses import dataclass, replace
from typing import Any

from pytest_mathperf.nvml_cards import first_visible_bus_id, nvml_init, read_card
from pytest_mathperf.poller import compute_processes, handle_for_target, nvml_errors, nvml_problem_line

GIB = 1024**3

#: How NVML's absence reads: a host without a card, not a problem to report.
NO_NVML = ("NVMLError_LibraryNotFound", "nvidia-ml-py is not installed")

#: The inode of the host's (initial) PID namespace, fixed by the kernel (PROC_PID_INIT_INO).
HOST_PID_NAMESPACE_INODE = 0xEFFFFFFC


@dataclass(frozen=True)
class DeviceInfo:
    """The card as thresholds.yaml spells it, with what a history entry needs to explain a change."""

    device: str  # "cpu" or "cuda:N" as torch sees it
    card: str  # NVML's name ("NVIDIA GeForce RTX 3090"), "… MIG 1g.10gb" for a slice, or "cpu"
    pci_bus_id: str | None = None
    driver: str | None = None
    cuda: str | None = None
    total_memory_gb: float | None = None
    nvml_target: str | None = None  # what the memory poller watches: BUS_ID, or BUS_ID#migN for a slice
    mig: bool = False
    nvml_problem: str | None = None  # one line when NVML could not be used; the name then comes from torch


def resolve_device(requested: str) -> str:
    """``auto`` → ``cuda:N`` when CUDA is usable, else ``cpu``; a bare ``cuda`` gets its index."""
    requested = requested.strip().lower()
    if requested == "cpu":
        return "cpu"  # without importing torch: a served model's gate, or an xdist worker, may never need it
    import torch

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


# --- NVML -----------------------------------------------------------------------------------


def nvml_handle(target: str) -> Any | None:
    """NVML's handle for a card (``BUS_ID``) or slice (``BUS_ID#migN``), or None where NVML refuses."""
    if nvml_init() is not None:
        return None
    try:
        return handle_for_target(target)
    except nvml_errors():
        return None


def nvml_processes(target: str) -> dict[int, int | None] | None:
    """PID → bytes on the card, PIDs as the host sees them; None where NVML cannot list them."""
    handle = nvml_handle(target)
    if handle is None:
        return None
    try:
        return compute_processes(handle)
    except nvml_errors():
        return None


def nvml_used_bytes(target: str) -> int | None:
    """Memory in use on the whole card (or slice), by every process; None where NVML cannot say."""
    handle = nvml_handle(target)
    if handle is None:
        return None
    import pynvml

    try:
        return int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
    except nvml_errors():
        return None


def pci_bus_id(index: int) -> str:
    """The PCI bus id of torch's device ``index`` in NVML's spelling (``00000000:01:00.0``)."""
    import torch

    properties = torch.cuda.get_device_properties(index)
    return f"{properties.pci_domain_id:08x}:{properties.pci_bus_id:02x}:{properties.pci_device_id:02x}.0".upper()


def card_name(nvml_name: str | None, torch_name: str, mig_enabled: bool, mig_name: str | None = None) -> str:
    """The card's name for thresholds.yaml; a MIG slice always keeps ``MIG <profile>`` in it.

    NVML's name for the whole card lacks the slice, CUDA's name for the slice has it
    ("NVIDIA A100-SXM4-40GB MIG 1g.10gb"); where the slice cannot be told, " MIG" alone is added,
    so that no budget written for the whole card applies.
    """
    for name in (mig_name, torch_name):
        if name and " MIG " in f"{name} ":
            if nvml_name and " MIG" not in nvml_name and not name.startswith(nvml_name):
                return f"{nvml_name} MIG{name.split(' MIG', 1)[1]}"  # NVML's spelling of the card, CUDA's slice
            return name
    name = nvml_name or torch_name
    return f"{name} MIG" if mig_enabled else name


def describe_device(device: str) -> DeviceInfo:
    """Name the card behind a torch device (``cpu`` for the host)."""
    if not device.startswith("cuda"):
        return DeviceInfo(device="cpu", card="cpu")
    import torch

    index = int(device.partition(":")[2] or 0)
    properties = torch.cuda.get_device_properties(index)
    bus_id = pci_bus_id(index)
    card = None
    problem = nvml_init()
    if problem is None:
        try:
            card = read_card(bus_id, str(getattr(properties, "uuid", "") or ""))
        except nvml_errors() as error:
            problem = nvml_problem_line(error)
    if card is not None and card.target is None:
        problem = "MIG is on and the slice this process uses could not be found: memory from torch"
    mig_enabled = card is not None and card.mig_enabled
    return DeviceInfo(
        device=device,
        card=card_name(card.name if card else None, properties.name, mig_enabled, card.mig_name if card else None),
        pci_bus_id=bus_id,
        driver=card.driver if card else None,
        cuda=torch.version.cuda,
        total_memory_gb=properties.total_memory / GIB,
        nvml_target=card.target if card else None,
        mig=mig_enabled or " MIG " in f"{properties.name} ",
        nvml_problem=problem,
    )


def describe_first_card() -> DeviceInfo:
    """The card this machine's first visible GPU would run on, or the host (for ``mathperf card``)."""
    try:
        import torch
    except ImportError:
        return DeviceInfo(device="cpu", card="cpu")
    if not torch.cuda.is_available():
        return DeviceInfo(device="cpu", card="cpu")
    return describe_device(f"cuda:{torch.cuda.current_device()}")


def describe_host_card() -> DeviceInfo:
    """The card a served model's gate is judged on: torch's first card, else NVML's first visible one.

    torch may be a CPU build beside a server that runs on this host's card; ``device`` then stays
    ``cpu`` (where an in-process model would run) while ``card`` names the card NVML sees.
    """
    info = describe_first_card()
    problem = nvml_init()
    if info.device != "cpu" or (problem is not None and problem.startswith(NO_NVML)):
        return info  # a card torch uses, or a host without NVML: nothing to say about it
    if problem is not None:
        return replace(info, nvml_problem=problem)
    try:
        bus_id = first_visible_bus_id()
        card = None if bus_id is None else read_card(bus_id)
    except nvml_errors() as error:
        return replace(info, nvml_problem=nvml_problem_line(error))
    if card is None:
        return info
    unknown_slice = "MIG is on and CUDA_VISIBLE_DEVICES names no slice of it (MIG-…): the name ends in ' MIG'"
    return DeviceInfo(
        device="cpu",
        card=card_name(card.name, card.name, card.mig_enabled, card.mig_name),
        pci_bus_id=card.bus_id,
        driver=card.driver,
        total_memory_gb=card.total_memory_bytes / GIB,
        nvml_target=card.target,
        mig=card.mig_enabled,
        nvml_problem=unknown_slice if card.target is None else None,
    )


def detect_card() -> str:
    """The exact card name thresholds.yaml must use on this machine for a served model, or ``cpu``."""
    return describe_host_card().card


# --- PID namespaces -------------------------------------------------------------------------


@dataclass(frozen=True)
class PidNamespace:
    """Whether this process's PIDs are the host's, which NVML reports (the driver knows no namespaces)."""

    nested: bool
    reason: str = ""


def read_pid_namespace(status_text: str | None, namespace_link: str | None) -> PidNamespace:
    """Decide from ``/proc/self/status`` and the ``/proc/self/ns/pid`` link whether we are in a container's PID namespace.

    ``NSpid`` lists this process's PID in every namespace it belongs to that ``/proc`` can see:
    more than one entry means a nested namespace. Inside a container ``/proc`` is the container's
    own and shows one entry, so the namespace link tells the rest: the host's has a fixed inode.
    """
    for line in (status_text or "").splitlines():
        if line.startswith("NSpid:"):
            pids = line.split()[1:]
            if len(pids) > 1:
                return PidNamespace(True, f"NSpid {' '.join(pids)}: this process is PID {pids[-1]} here, {pids[0]} outside")
    match = re.fullmatch(r"pid:\[(\d+)\]", (namespace_link or "").strip())
    if match and int(match.group(1)) != HOST_PID_NAMESPACE_INODE:
        return PidNamespace(True, f"PID namespace {namespace_link.strip()} is not the host's")  # type: ignore[union-attr]
    return PidNamespace(False)


def current_pid_namespace() -> PidNamespace:
    """This process's PID namespace, read from ``/proc`` (not nested where ``/proc`` is missing)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as status:
            status_text: str | None = status.read()
    except OSError:
        status_text = None
    try:
        link: str | None = os.readlink("/proc/self/ns/pid")
    except OSError:
        link = None
    return read_pid_namespace(status_text, link)


# --- matching card names --------------------------------------------------------------------


def card_matches(pattern: str, card: str) -> bool:
    """Whether a thresholds.yaml card key applies to ``card``.

    Exact: the key is the card's name character for character, as ``mathperf card`` prints it.
    Glob: a key with ``*``, ``?`` or ``[`` matches by ``fnmatch`` (case-sensitive), except that a
    glob matches a MIG slice only if the key itself says ``MIG``: "NVIDIA A100*" judges whole
    A100s, "NVIDIA A100* MIG 1g.*" the 1g slices.
    """
    if pattern == card:
        return True
    if not any(character in pattern for character in "*?["):
        return False
    if " MIG" in card and "MIG" not in pattern:
        return False
    return fnmatch.fnmatchcase(card, pattern)


def matching_card_patterns(card: str, patterns: Any) -> list[str]:
    """Keys that apply to ``card``, most specific first: the exact one, then globs by literal length."""
    exact = [pattern for pattern in patterns if pattern == card]
    globs = [pattern for pattern in patterns if pattern != card and card_matches(pattern, card)]
    globs.sort(key=lambda pattern: -len(re.sub(r"[*?\[\]]", "", pattern)))
    return exact + globs


def _comparable(name: str) -> str:
    name = name.strip().lower()
    name = re.sub(r"^nvidia\s+", "", name)
    return re.sub(r"[^a-z0-9*?]+", "", name)


def near_miss(name: str, candidates: Any) -> str | None:
    """The candidate ``name`` was probably meant to be, for a "did you mean" (None if none is close).

    Case, spacing, punctuation and NVML's "NVIDIA " prefix are ignored ("GeForce RTX 3090" →
    "NVIDIA GeForce RTX 3090"); otherwise the spelling must be close (difflib ratio ≥ 0.85) with
    the same digits, because "RTX 3080" or "Qwen2.5-7B" is another card or model, not a typo.
    """
    candidates = [str(candidate) for candidate in candidates]
    if name in candidates:
        return None
    wanted = _comparable(name)
    digits = re.sub(r"\D", "", name)
    by_form: dict[str, str] = {}
    for candidate in candidates:
        form = _comparable(candidate)
        if form == wanted or ("*" in form or "?" in form) and fnmatch.fnmatchcase(wanted, form):
            return candidate
        if re.sub(r"\D", "", candidate.replace("*", "")) == digits:
            by_form.setdefault(form, candidate)
    close = difflib.get_close_matches(wanted, list(by_form), n=1, cutoff=0.85)
    return by_form[close[0]] if close else None


# --- choices made before loading --------------------------------------------------------------


def needs_several_cards(weights_bytes: int, free_bytes: int, headroom: float = 0.9) -> bool:
    """Whether the weights would not fit in the free memory of one card (with room for activations)."""
    return weights_bytes > free_bytes * headroom


def bf16_problem(
    requested: str, dtype: str, device: str, card: str, supported: bool, capability: tuple[int, int] | None
) -> str | None:
    """The error for bfloat16 weights on a card without bfloat16 (before Ampere), or None where it is fine.

    ``requested`` is the ``--mathperf-dtype`` the user gave, ``dtype`` what it resolved to (``auto``
    takes the checkpoint's); torch would otherwise emulate bfloat16 slowly, or fail mid-run.
    """
    if dtype != "bfloat16" or not device.startswith("cuda") or supported:
        return None
    where = f"{card} (compute capability {capability[0]}.{capability[1]})" if capability else card
    because = "" if requested == "bfloat16" else " (the checkpoint's dtype)"
    return f"--mathperf-dtype {requested}: bfloat16{because} on {where}, which has no bfloat16 support; use --mathperf-dtype float16"


def host_description() -> dict[str, str]:
    """What a history entry records about the host, so a change between runs can be explained."""
    return {
        "host": platform.node(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu": platform.processor() or platform.machine(),
    }


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


def __getattr__(name: str) -> Any:
    """``MemoryMonitor`` moved to ``memory.py``; older imports from here keep working."""
    if name == "MemoryMonitor":
        from pytest_mathperf.memory import MemoryMonitor

        return MemoryMonitor
    raise AttributeError(f"module 'pytest_mathperf.devices' has no attribute {name!r}")
