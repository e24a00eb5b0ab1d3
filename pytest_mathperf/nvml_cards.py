"""What NVML tells about a card without torch: its name, driver, memory, MIG slice and poller target.

``devices.describe_device`` asks it about torch's card by PCI bus id. Where torch cannot use CUDA
(a CPU build of torch beside a served model on this host's card) it also names the card a served
model's gate is judged on, in the order ``CUDA_VISIBLE_DEVICES`` would give a CUDA process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pytest_mathperf.poller import handle_for_target, nvml_errors, nvml_problem_line

_nvml_state: dict[str, str | None] = {}


def nvml_init() -> str | None:
    """Start NVML once per process; None when it works, else the one-line reason it does not."""
    if "problem" not in _nvml_state:
        try:
            import pynvml
        except ImportError:
            _nvml_state["problem"] = "nvidia-ml-py is not installed"
        else:
            try:
                pynvml.nvmlInit()
                _nvml_state["problem"] = None
            except nvml_errors() as error:
                _nvml_state["problem"] = nvml_problem_line(error)
    return _nvml_state["problem"]


@dataclass(frozen=True)
class NvmlCard:
    """One card (or the slice of it this process uses) as NVML names it."""

    bus_id: str
    name: str  # NVML's name for the whole card
    driver: str
    total_memory_bytes: int  # the slice's where a slice was found
    mig_enabled: bool
    mig_name: str | None  # the slice's own NVML name ("NVIDIA A100-SXM4-80GB MIG 1g.10gb")
    target: str | None  # what the poller watches: BUS_ID, BUS_ID#migN, None for an unknown slice


def text(value: str | bytes) -> str:
    """pynvml answers ``bytes`` in old versions and ``str`` in new ones."""
    return value.decode() if isinstance(value, bytes) else value


def _uuid_key(uuid: str) -> str:
    return uuid.strip().lower().removeprefix("gpu-").removeprefix("mig-")


def _first_visible() -> str:
    """The first entry of ``CUDA_VISIBLE_DEVICES`` ("" where it is unset)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()


def mig_slice(parent: Any, torch_uuid: str | None) -> tuple[int | None, str | None]:
    """Which MIG slice of ``parent`` this process uses (index, NVML name), matched by UUID.

    The UUID is torch's for its device, else the ``MIG-…`` entry of ``CUDA_VISIBLE_DEVICES``.
    """
    import pynvml

    wanted = _uuid_key(torch_uuid or "")
    if not wanted and _first_visible().upper().startswith("MIG-"):
        wanted = _uuid_key(_first_visible())
    if not wanted:
        return None, None
    for index in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(parent)):
        try:
            handle = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, index)
        except pynvml.NVMLError:
            continue  # an empty slot
        if _uuid_key(text(pynvml.nvmlDeviceGetUUID(handle))) == wanted:
            return index, text(pynvml.nvmlDeviceGetName(handle))
    return None, None


def read_card(bus_id: str, torch_uuid: str | None = None) -> NvmlCard:
    """NVML's account of the card at ``bus_id``; raises one of ``nvml_errors()`` where NVML refuses."""
    import pynvml

    parent = handle_for_target(bus_id)
    try:
        mig_enabled = pynvml.nvmlDeviceGetMigMode(parent)[0] == pynvml.NVML_DEVICE_MIG_ENABLE
    except pynvml.NVMLError:
        mig_enabled = False  # a card without MIG answers "not supported"
    slice_index, slice_name = mig_slice(parent, torch_uuid) if mig_enabled else (None, None)
    target = bus_id if not mig_enabled else None if slice_index is None else f"{bus_id}#mig{slice_index}"
    measured = handle_for_target(target) if target else parent
    return NvmlCard(
        bus_id=bus_id,
        name=text(pynvml.nvmlDeviceGetName(parent)),
        driver=text(pynvml.nvmlSystemGetDriverVersion()),
        total_memory_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(measured).total),
        mig_enabled=mig_enabled,
        mig_name=slice_name,
        target=target,
    )


def bus_id_of(handle: Any) -> str:
    import pynvml

    return text(pynvml.nvmlDeviceGetPciInfo(handle).busId).upper()


def first_visible_bus_id() -> str | None:
    """The bus id of the card a CUDA process here would get first, by ``CUDA_VISIBLE_DEVICES``; None without cards.

    An index counts in NVML's (PCI) order, as under ``CUDA_DEVICE_ORDER=PCI_BUS_ID``.
    """
    import pynvml

    count = pynvml.nvmlDeviceGetCount()
    first = _first_visible() if "CUDA_VISIBLE_DEVICES" in os.environ else "0"
    if first.upper().startswith(("GPU-", "MIG-")):
        handle = pynvml.nvmlDeviceGetHandleByUUID(first.encode())
        if first.upper().startswith("MIG-"):
            handle = pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
    elif first.isdigit() and int(first) < count:
        handle = pynvml.nvmlDeviceGetHandleByIndex(int(first))
    else:
        return None  # "", "-1" or an index past the last card: CUDA sees no card either
    return bus_id_of(handle)


def every_card() -> list[tuple[str, str]]:
    """(bus id, NVML name) of every card NVML sees, in its order."""
    import pynvml

    handles = [pynvml.nvmlDeviceGetHandleByIndex(index) for index in range(pynvml.nvmlDeviceGetCount())]
    return [(bus_id_of(handle), text(pynvml.nvmlDeviceGetName(handle))) for handle in handles]
