"""The busy-host guard's arithmetic, on real counters and on made-up ones."""

from __future__ import annotations

import shutil

import pytest

from pytest_mathperf.hostload import BUSY_OTHER_CORES, HostLoad, HostSnapshot, card_busy_reason, snapshot


def test_other_processes_cpu_is_the_host_busy_time_beyond_ours() -> None:
    start = HostSnapshot(wall=0.0, host_busy_s=10.0, host_steal_s=0.0, host_total_s=100.0, own_cpu_s=1.0)
    end = HostSnapshot(wall=2.0, host_busy_s=13.0, host_steal_s=0.0, host_total_s=104.0, own_cpu_s=2.0)
    load = HostLoad().plus(start, end)
    assert load.other_cpu_s == pytest.approx(2.0) and load.other_cores == pytest.approx(1.0)
    assert load.busy_reason() is not None and "1.0 of" in load.busy_reason()
    quiet = HostLoad().plus(start, HostSnapshot(2.0, 11.2, 0.0, 104.0, 2.0))
    assert quiet.other_cores == pytest.approx(0.1) and quiet.other_cores < BUSY_OTHER_CORES and quiet.busy_reason() is None
    stolen = HostLoad().plus(start, HostSnapshot(2.0, 11.0, 1.0, 104.0, 2.0))
    assert "hypervisor stole 25%" in (stolen.busy_reason() or "")


def test_a_model_measured_for_milliseconds_is_never_called_busy() -> None:
    # One 10 ms clock tick of another process over 2 ms of measuring would read as 5 busy cores.
    start = HostSnapshot(wall=0.0, host_busy_s=10.0, host_steal_s=0.0, host_total_s=100.0, own_cpu_s=1.0)
    end = HostSnapshot(wall=0.002, host_busy_s=10.01, host_steal_s=0.0, host_total_s=100.02, own_cpu_s=1.0)
    load = HostLoad().plus(start, end)
    assert load.other_cores == pytest.approx(5.0)
    assert load.busy_reason() is None
    assert load.describe().startswith("measured for 0.002 s, too short to tell")


def test_real_counters_add_up_over_several_windows() -> None:
    first, second = snapshot(), snapshot()
    assert first is not None and second is not None and second.wall >= first.wall
    load = HostLoad().plus(first, second).plus(second, snapshot())
    assert load.wall_s >= 0 and load.other_cpu_s >= 0


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="checks the path without a card")
def test_no_card_or_no_nvml_is_no_verdict() -> None:
    assert card_busy_reason(None) is None
    assert card_busy_reason("00000000:01:00.0") is None  # no NVML here: unknown, never busy by guess
