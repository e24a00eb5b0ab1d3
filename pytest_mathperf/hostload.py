"""The busy-host guard: what else the host did while a model was measured.

A timing measured while other processes competed for the CPU says more about the neighbours than
about the model. The runner reads the host's CPU counters (``/proc/stat``) and this process's own
CPU time just before and after each case's generations, two cheap reads per case and no sampling
thread to disturb what is measured. What the host did beyond this process, divided by the wall
time, is the other processes' share in cores; with the load average and the hypervisor's steal
it decides whether the host was busy.

Documented thresholds: busy when other processes used more than ``BUSY_OTHER_CORES`` cores on
average over the measured generations, or the hypervisor stole more than ``BUSY_STEAL_SHARE`` of
the CPU time. Only in-process models are judged so: a model served from this host makes the
server's CPU use part of the measurement itself.

On a CUDA card, ``card_busy_reason`` asks NVML after each case whether other processes compute on
the card, or whether its clocks were held back by heat or a power brake; either makes the card
busy in the same sense.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

#: Other processes using more than this many cores, on average, make the host busy.
BUSY_OTHER_CORES = 0.3
#: More than this share of CPU time stolen by the hypervisor makes the host busy.
BUSY_STEAL_SHARE = 0.05
#: Less measured time than this decides nothing: the kernel counts CPU time in clock ticks (10 ms),
#: so one tick over a model measured for 2 ms would read as five busy cores.
MIN_MEASURED_S = 0.5


@dataclass(frozen=True)
class HostSnapshot:
    """The host's cumulative CPU counters at one instant (seconds)."""

    wall: float
    host_busy_s: float  # all CPUs, every process: user, nice, system, irq, softirq
    host_steal_s: float
    host_total_s: float
    own_cpu_s: float  # this process, all its threads


def snapshot() -> HostSnapshot | None:
    """The counters now; None where the kernel does not offer them (not Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    ticks = [int(value) for value in fields[1:]]
    ticks += [0] * (8 - len(ticks))
    user, nice, system, idle, iowait, irq, softirq, steal = ticks[:8]
    hertz = os.sysconf("SC_CLK_TCK")
    own = os.times()
    return HostSnapshot(
        wall=time.monotonic(),
        host_busy_s=(user + nice + system + irq + softirq) / hertz,
        host_steal_s=steal / hertz,
        host_total_s=(user + nice + system + idle + iowait + irq + softirq + steal) / hertz,
        own_cpu_s=own.user + own.system,
    )


@dataclass(frozen=True)
class HostLoad:
    """What other processes did over some measured time; adds up over a model's cases."""

    wall_s: float = 0.0
    other_cpu_s: float = 0.0
    steal_s: float = 0.0
    total_s: float = 0.0

    def plus(self, start: HostSnapshot | None, end: HostSnapshot | None) -> HostLoad:
        if start is None or end is None:
            return self
        other = max(0.0, (end.host_busy_s - start.host_busy_s) - (end.own_cpu_s - start.own_cpu_s))
        return HostLoad(
            self.wall_s + (end.wall - start.wall),
            self.other_cpu_s + other,
            self.steal_s + (end.host_steal_s - start.host_steal_s),
            self.total_s + (end.host_total_s - start.host_total_s),
        )

    @property
    def other_cores(self) -> float:
        return self.other_cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def steal_share(self) -> float:
        return self.steal_s / self.total_s if self.total_s > 0 else 0.0

    def busy_reason(self) -> str | None:
        """Why the host counts as busy, in one line; None when it was quiet enough."""
        cores = os.cpu_count() or 1
        if self.wall_s < MIN_MEASURED_S:
            return None
        if self.other_cores > BUSY_OTHER_CORES:
            return (
                f"other processes used {self.other_cores:.1f} of {cores} cores while it was measured "
                f"(busy above {BUSY_OTHER_CORES:g})"
            )
        if self.steal_share > BUSY_STEAL_SHARE:
            return f"the hypervisor stole {self.steal_share:.0%} of the CPU while it was measured (busy above {BUSY_STEAL_SHARE:.0%})"
        return None

    def describe(self) -> str:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        if self.wall_s < MIN_MEASURED_S:
            return f"measured for {self.wall_s:.3f} s, too short to tell, load average {load:.2f}"
        return f"{self.other_cores:.2f} other cores, steal {self.steal_share:.1%}, load average {load:.2f}"


#: NVML clock-event reasons that mean "slower than the card can be", not load we caused by choice:
#: hardware slowdown, software and hardware thermal slowdown, power brake.
SLOWDOWN_REASONS = {0x8: "hardware slowdown", 0x20: "thermal slowdown (software)", 0x40: "thermal slowdown", 0x80: "power brake"}


def card_busy_reason(target: str | None, held_processes: int = 1) -> str | None:
    """Why a CUDA card counts as busy right now (other processes on it, slowed clocks); None when not, or unknown.

    ``held_processes`` is how many of the card's processes are ours: in a PID namespace NVML lists our
    process under another pid, so others are counted as the list beyond ours.
    """
    if target is None:
        return None
    from pytest_mathperf.devices import nvml_handle, nvml_processes

    processes = nvml_processes(target)
    if processes is None:
        return None
    others = [pid for pid in processes if pid != os.getpid()]
    if os.getpid() not in processes:
        others = others[held_processes:]
    if others:
        return f"{len(others)} other process{'es' if len(others) > 1 else ''} computed on the card while it was measured"
    mask = _clock_event_reasons(nvml_handle(target))
    if mask is None:
        return None
    slowed = [name for bit, name in SLOWDOWN_REASONS.items() if mask & bit]
    return f"the card's clocks were held back ({', '.join(slowed)}) while it was measured" if slowed else None


def _clock_event_reasons(handle: object) -> int | None:
    """The card's clock-event mask; a driver older than the "events" name answers only the "throttle" one."""
    from pytest_mathperf.poller import nvml_errors

    if handle is None:
        return None
    import pynvml

    for name in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
        query = getattr(pynvml, name, None)
        if query is None:
            continue  # an nvidia-ml-py older than the name
        try:
            return int(query(handle))
        except nvml_errors() as error:
            if getattr(error, "value", None) != pynvml.NVML_ERROR_FUNCTION_NOT_FOUND:
                return None
    return None
