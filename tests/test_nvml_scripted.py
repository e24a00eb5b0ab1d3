"""The NVML paths run for real, from ``import pynvml`` down, on a scripted libnvidia-ml (tests/nvml).

No card is needed: the library answers from a JSON script, and what torch's CUDA side does is
left to ``benchmarks/gpu_check.sh`` on a machine with a card (README, "Development").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pynvml
import pytest
from conftest import ARITHMETIC_SUITE, write
from nvml_script import A100, DRIVER, GIB, MIG_A100, RTX, SLICE_UUID, build, write_script

from pytest_mathperf import cli, nvml_cards
from pytest_mathperf.calibrate import all_served, detected_card
from pytest_mathperf.devices import PidNamespace, describe_host_card, nvml_handle, nvml_processes, nvml_used_bytes
from pytest_mathperf.hostload import card_busy_reason
from pytest_mathperf.memory import PeakPoller, PollerUnavailable, choose_cuda_source, others_on_card_note

OLD_DRIVER_HINT = "(the driver is older than nvidia-ml-py expects: update the driver, or pin an older nvidia-ml-py)"
SERVED_NOTE = ("mathperf card: torch cannot use CUDA here, so an in-process model runs on `cpu`; "
               "this card judges served models (--mathperf-backend openai)")
NVML_SECTION = "### NVML without a card"
NAMESPACE = PidNamespace(True, "NSpid 48213 7: this process is PID 7 here, 48213 outside")


@pytest.fixture(scope="session")
def nvml_library(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """The library's folder, built once per set of left-out functions (a driver older than they are)."""
    built: dict[tuple[str, ...], Path] = {}

    def folder(*hidden: str) -> Path:
        if hidden not in built:
            built[hidden] = build(tmp_path_factory.mktemp("nvml"), hidden).parent
        return built[hidden]

    return folder


@pytest.fixture
def script(nvml_library: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the script goes; child processes find the library and the script through the environment."""
    path = tmp_path / "nvml-script.json"
    monkeypatch.setenv("MATHPERF_NVML_SCRIPT", str(path))
    monkeypatch.setenv("LD_LIBRARY_PATH", str(nvml_library()))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return path


@pytest.fixture
def nvml(script: Path, nvml_library: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The library in this process too, with pynvml and our NVML state as fresh as a new process's."""
    import torch

    if torch.cuda.is_available() or pynvml.nvmlLib is not None:
        pytest.skip("this process already talks to a real card; the scripted card is checked where torch has no CUDA")
    ctypes.CDLL(str(nvml_library() / "libnvidia-ml.so.1"))  # pynvml's dlopen("libnvidia-ml.so.1") now finds it
    monkeypatch.setattr(pynvml, "nvmlLib", None)
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    monkeypatch.setattr(nvml_cards, "_nvml_state", {})
    yield script


def mathperf_card(capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str]]:
    assert cli.main(["card"]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err.splitlines()


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (the library found by ``LD_LIBRARY_PATH``); its stdout."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# --- mathperf card ----------------------------------------------------------------------------


def test_mathperf_card_names_the_one_card_nvml_sees(nvml: Path, capsys) -> None:
    write_script(nvml, [RTX])
    assert mathperf_card(capsys) == ("NVIDIA GeForce RTX 3090\n", [SERVED_NOTE])
    info = describe_host_card()
    assert (info.device, info.pci_bus_id, info.driver, info.nvml_target) == ("cpu", "00000000:0A:00.0", DRIVER, "00000000:0A:00.0")
    assert (info.total_memory_gb, info.mig, info.nvml_problem) == (24.0, False, None)


@pytest.mark.parametrize(
    ("visible", "expected"),
    [(None, "NVIDIA A100-SXM4-80GB"), ("1", "NVIDIA GeForce RTX 3090"), (RTX["uuid"], "NVIDIA GeForce RTX 3090")],
)
def test_mathperf_card_on_two_cards_names_the_first_visible_and_lists_both(nvml: Path, capsys, monkeypatch, visible, expected) -> None:
    write_script(nvml, [A100, RTX])
    if visible is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert mathperf_card(capsys) == (f"{expected}\n", [
        SERVED_NOTE,
        "mathperf card: NVML sees 2 cards: 0 NVIDIA A100-SXM4-80GB (00000000:07:00.0), 1 NVIDIA GeForce RTX 3090 "
        "(00000000:0A:00.0); the name above is the first visible one's",
    ])


def test_mathperf_card_on_a_mig_slice_names_the_slice(nvml: Path, capsys, monkeypatch) -> None:
    write_script(nvml, [MIG_A100])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", SLICE_UUID)
    assert mathperf_card(capsys) == ("NVIDIA A100-SXM4-80GB MIG 1g.10gb\n", [SERVED_NOTE])
    info = describe_host_card()
    assert (info.nvml_target, info.mig, info.total_memory_gb) == ("00000000:07:00.0#mig1", True, 9856 / 1024)


def test_mig_on_without_the_slice_named_never_reads_as_the_whole_card(nvml: Path, capsys) -> None:
    write_script(nvml, [MIG_A100])
    assert mathperf_card(capsys) == ("NVIDIA A100-SXM4-80GB MIG\n", [
        "mathperf card: MIG is on and CUDA_VISIBLE_DEVICES names no slice of it (MIG-…): the name ends in ' MIG'",
        SERVED_NOTE,
    ])


@pytest.mark.parametrize("visible", ["", "-1", "2"])
def test_cuda_visible_devices_that_hide_every_card_leave_the_host_cpu(nvml: Path, capsys, monkeypatch, visible) -> None:
    write_script(nvml, [A100, RTX])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert mathperf_card(capsys) == ("cpu\n", [])


def test_calibrating_a_served_model_names_the_card_the_gate_will(nvml: Path) -> None:
    write_script(nvml, [RTX])
    assert (all_served(["openai:qwen"], None), all_served(["openai:qwen", "mathperf-tiny"], None)) == (True, False)
    assert detected_card("auto", served=True) == "NVIDIA GeForce RTX 3090"
    assert detected_card("auto", served=False) == "cpu"  # an in-process model runs on torch's device


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"init_error": 9}, "NVMLError_DriverNotLoaded: Driver Not Loaded"),
        ({"errors": {"nvmlDeviceGetPciInfo_v3": 15}}, "NVMLError_GpuIsLost: GPU is lost"),
    ],
)
def test_an_nvml_failure_is_one_line_and_the_card_is_cpu(nvml: Path, capsys, settings, problem) -> None:
    write_script(nvml, [A100], **settings)
    assert mathperf_card(capsys) == ("cpu\n", [f"mathperf card: {problem}"])


def test_a_served_gate_on_a_mig_slice_is_judged_by_the_slice_budget_only(nvml: Path, pytester, run_scripted, monkeypatch) -> None:
    write_script(nvml, [MIG_A100])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", SLICE_UUID)
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", """
        version: 1
        unknown_card: fail
        cards:
          "NVIDIA A100*":
            models:
              "*": {ttft_ms: {p50: {max: 0.0001}}}
          "*":
            models:
              "*": {e2e_ms: {p50: {max: 0.0001}}}
          "NVIDIA A100* MIG 1g.*":
            models:
              "*": {accuracy: {min: 1.0}}
    """)
    run = run_scripted(scripts={"*": {"in_process": False}})  # --mathperf-card unset: the card is NVML's
    run.result.assert_outcomes(passed=4)
    budget = run.properties("mathperf-tiny::accuracy")
    assert (budget["mathperf.budget"], budget["mathperf.card"]) == ("accuracy", "NVIDIA A100-SXM4-80GB MIG 1g.10gb")


# --- the poller child -------------------------------------------------------------------------


def spiking_card(pid: int, spike: bool) -> list[dict[str, Any]]:
    """A card where ``pid`` holds 1 GiB, and with ``spike`` 3 GiB from 300 ms to 600 ms after the script's start."""
    def level(base: int, high: int) -> Any:
        return [[0, base], [300, high], [600, base]] if spike else base

    processes = [{"pid": pid, "used": level(GIB, 3 * GIB)}, {"pid": 4242, "used": 5 * GIB}]
    return [{**A100, "memory_used": level(7 * GIB, 9 * GIB), "processes": processes}]


def test_the_poller_catches_a_spike_between_two_reads_of_the_parent(nvml: Path) -> None:
    pid, target = os.getpid(), A100["bus_id"]
    write_script(nvml, spiking_card(pid, spike=False))
    poller = PeakPoller("nvml", [pid, target])
    try:
        assert poller.reset().peaks == (GIB, 7 * GIB)
        before = (nvml_processes(target), nvml_used_bytes(target))
        start = time.time()
        write_script(nvml, spiking_card(pid, spike=True), start_epoch=start)
        time.sleep(max(0.0, start + 0.8 - time.time()))
        after = (nvml_processes(target), nvml_used_bytes(target))
        reading = poller.peak()
    finally:
        poller.close()
    assert before == after == ({pid: GIB, 4242: 5 * GIB}, 7 * GIB)  # the parent's own reads miss it
    assert (reading.peaks, reading.errors) == ((3 * GIB, 9 * GIB), 0)  # 4242's 5 GiB are not this process's


def test_the_poller_watches_a_mig_slice_by_its_own_handle(script: Path) -> None:
    write_script(script, [{**MIG_A100, "mig_devices": [{**MIG_A100["mig_devices"][0], "processes": [{"pid": os.getpid(), "used": 1536 * 1024**2}]}]}])
    poller = PeakPoller("nvml", [os.getpid(), "00000000:07:00.0#mig1"])
    try:
        assert poller.stop().peaks == (1536 * 1024**2, 2 * GIB)  # the slice's figures, not the card's 3 GiB
    finally:
        poller.close()


def test_the_poller_on_a_driver_without_the_v3_process_query_uses_v2(script: Path, nvml_library, monkeypatch) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", str(nvml_library("nvmlDeviceGetComputeRunningProcesses_v3")))
    write_script(script, [{**A100, "processes": [{"pid": os.getpid(), "used": 768 * 1024**2}]}])
    poller = PeakPoller("nvml", [os.getpid(), A100["bus_id"]])
    try:
        assert poller.stop().peaks == (768 * 1024**2, 3 * GIB)
    finally:
        poller.close()


def test_a_driver_older_than_nvml_init_with_flags_is_one_line(script: Path, nvml_library, monkeypatch) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", str(nvml_library("nvmlInitWithFlags")))
    write_script(script, [A100])
    with pytest.raises(PollerUnavailable) as raised:
        PeakPoller("nvml", [os.getpid(), A100["bus_id"]])
    assert str(raised.value) == f"no NVML device: NVMLError_FunctionNotFound: Function Not Found {OLD_DRIVER_HINT}"


def test_a_missing_library_is_one_line(script: Path, tmp_path: Path, monkeypatch) -> None:
    if ctypes.util.find_library("nvidia-ml"):
        pytest.skip("this machine has a real libnvidia-ml, which a child process would find")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))  # an empty folder
    with pytest.raises(PollerUnavailable) as raised:
        PeakPoller("nvml", [os.getpid(), A100["bus_id"]])
    assert str(raised.value) == "no NVML device: NVMLError_LibraryNotFound: NVML Shared Library Not Found"


def test_a_card_the_script_does_not_have_is_one_line(script: Path) -> None:
    write_script(script, [A100])
    with pytest.raises(PollerUnavailable) as raised:
        PeakPoller("nvml", [os.getpid(), "00000000:81:00.0"])
    assert str(raised.value) == "no NVML device: NVMLError_NotFound: Not Found"


# --- processes on the card: PID matching, the busy guard ----------------------------------------


def test_on_the_host_this_pid_is_matched_and_another_process_makes_the_card_busy(nvml: Path) -> None:
    pid, target = os.getpid(), A100["bus_id"]
    write_script(nvml, [{**A100, "processes": [{"pid": pid, "used": 2 * GIB}]}])
    listed = nvml_processes(target)
    assert listed == {pid: 2 * GIB}
    assert choose_cuda_source(PidNamespace(False), None, pid in listed, True) == ("nvml-process", "")
    assert card_busy_reason(target) is None
    write_script(nvml, [{**A100, "processes": [{"pid": pid, "used": 2 * GIB}, {"pid": 4242, "used": GIB}]}])
    assert card_busy_reason(target) == "1 other process computed on the card while it was measured"


def test_a_process_appearing_mid_run_is_seen_when_its_time_comes(nvml: Path) -> None:
    pid, target = os.getpid(), A100["bus_id"]
    arriving = [{"pid": pid, "used": GIB}, {"pid": 4242, "used": GIB, "from_ms": 500}]
    write_script(nvml, [{**A100, "processes": arriving}], start_epoch=time.time() + 3600)  # not yet
    assert card_busy_reason(target) is None
    write_script(nvml, [{**A100, "processes": arriving}], start_epoch=time.time() - 1)  # 500 ms have passed
    assert card_busy_reason(target) == "1 other process computed on the card while it was measured"


def test_in_a_pid_namespace_the_card_delta_is_measured_and_newcomers_reported(nvml: Path) -> None:
    target = A100["bus_id"]
    others = [{"pid": 4242, "used": 2 * GIB}]
    write_script(nvml, [{**A100, "memory_used": 2 * GIB, "processes": others}])
    baseline, before = nvml_used_bytes(target), nvml_processes(target)
    # the model loads: NVML lists this process under its host PID 48213, and one more process arrives
    arrived = [*others, {"pid": 48213, "used": 5 * GIB}, {"pid": 5151, "used": GIB}]
    write_script(nvml, [{**A100, "memory_used": 8 * GIB, "processes": arrived}])
    after = nvml_processes(target)
    assert after is not None and os.getpid() not in after
    source, note = choose_cuda_source(NAMESPACE, None, os.getpid() in after, baseline is not None)
    assert (source, note) == ("nvml-device-delta", f"{NAMESPACE.reason}; memory is the card's use minus its use before the load")
    assert nvml_used_bytes(target) - baseline == 6 * GIB
    assert others_on_card_note(before, after) == (
        "the figure may include other processes: 2 processes started on the card during the run (one is this one)"
    )
    # three processes, one of them this one under its host PID: two others, the one before and the newcomer
    assert card_busy_reason(target, held_processes=1) == "2 other processes computed on the card while it was measured"


def test_in_a_real_pid_namespace_nvml_lists_the_host_pid_and_the_card_delta_is_chosen(script: Path) -> None:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare(1) and root to make a PID namespace")
    write_script(script, [{**A100, "processes": [{"pid": "host_self", "used": 5 * GIB}, {"pid": 4242, "used": GIB}]}])
    code = (
        "import os\n"
        "from pytest_mathperf.devices import current_pid_namespace, nvml_processes\n"
        "from pytest_mathperf.hostload import card_busy_reason\n"
        "from pytest_mathperf.memory import choose_cuda_source\n"
        "namespace, listed = current_pid_namespace(), nvml_processes('00000000:07:00.0')\n"
        "source = choose_cuda_source(namespace, None, os.getpid() in listed, True)[0]\n"
        "print(os.getpid(), namespace.nested, sorted(listed.values()), source, card_busy_reason('00000000:07:00.0'), sep='|')\n"
    )
    result = subprocess.run(["unshare", "--pid", "--fork", sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if result.returncode != 0 and result.stderr.startswith("unshare:"):  # e.g. an unprivileged container
        pytest.skip(f"this host refuses new PID namespaces: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"1|True|{[GIB, 5 * GIB]}|nvml-device-delta|1 other process computed on the card while it was measured"
    )


def test_mig_targets_read_the_slice_and_an_empty_slot_is_no_handle(nvml: Path) -> None:
    write_script(nvml, [MIG_A100])
    assert nvml_processes("00000000:07:00.0#mig1") == {4242: 2 * GIB}
    assert nvml_used_bytes("00000000:07:00.0#mig1") == 2 * GIB
    assert nvml_used_bytes("00000000:07:00.0") == 3 * GIB
    assert nvml_handle("00000000:07:00.0#mig0") is None


@pytest.mark.parametrize(
    ("hidden", "errors", "expected"),
    [
        ((), {}, "{4242: 1073741824, 'self': None} | 1 other process"),
        (("nvmlDeviceGetComputeRunningProcesses_v3",), {}, "{4242: 1073741824, 'self': None} | 1 other process"),
        (("nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2"), {}, "None | None"),
        ((), {"nvmlDeviceGetComputeRunningProcesses_v3": 4}, "None | None"),  # no permission: no v2 retry
    ],
)
def test_the_process_query_falls_back_to_v2_only_on_an_older_driver(script: Path, nvml_library, monkeypatch, hidden, errors, expected) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", str(nvml_library(*hidden)))
    write_script(script, [{**A100, "processes": [{"pid": "self", "used": None}, {"pid": 4242, "used": GIB}]}], errors=errors)
    printed = run_python(
        "import os\n"
        "from pytest_mathperf.devices import nvml_processes\n"
        "from pytest_mathperf.hostload import card_busy_reason\n"
        "listed = nvml_processes('00000000:07:00.0')\n"
        "named = None if listed is None else [('self' if pid == os.getpid() else pid, used) for pid, used in listed.items()]\n"
        "shown = None if named is None else dict(sorted(named, key=lambda pair: str(pair[0])))  # any PID, one order\n"
        "print(shown, '|', (card_busy_reason('00000000:07:00.0') or 'None').split(' computed')[0])\n"
    )
    assert printed == expected


@pytest.mark.parametrize("hidden", [(), ("nvmlDeviceGetCurrentClocksEventReasons",)])
def test_slowed_clocks_make_the_card_busy_on_old_and_new_drivers(script: Path, nvml_library, monkeypatch, hidden) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", str(nvml_library(*hidden)))
    write_script(script, [{**A100, "processes": [{"pid": "self", "used": GIB}], "clocks_event_reasons": 0x40 | 0x80 | 0x1}])
    printed = run_python("from pytest_mathperf.hostload import card_busy_reason\nprint(card_busy_reason('00000000:07:00.0'))")
    assert printed == "the card's clocks were held back (thermal slowdown, power brake) while it was measured"


# --- the library covers what our code calls ----------------------------------------------------


def _symbols_behind(function: str, bodies: dict[str, str], seen: set[str]) -> set[str]:
    """The C symbols a pynvml function resolves, through the pynvml functions it calls."""
    if function in seen or function not in bodies:
        return set()
    seen.add(function)
    body = bodies[function]
    symbols = set(re.findall(r'_nvmlGetFunctionPointer\("(\w+)"\)', body))
    for called in set(re.findall(r"\b(nvml\w+)\(", body)) - {function}:
        symbols |= _symbols_behind(called, bodies, seen)
    return symbols


def test_every_nvml_function_our_code_calls_is_in_the_scripted_library(nvml_library) -> None:
    source = Path(pynvml.__file__).read_text(encoding="utf-8")
    bodies = dict(re.findall(r"^def (nvml\w+)\(.*?\n((?:[ \t]+.*\n|\n)*)", source, flags=re.MULTILINE))
    package = Path(nvml_cards.__file__).parent
    called = {name for path in package.rglob("*.py") for name in re.findall(r"pynvml\.(nvml\w+)", path.read_text(encoding="utf-8"))}
    symbols = set().union(*(_symbols_behind(name, bodies, set()) for name in called))
    library = ctypes.CDLL(str(nvml_library() / "libnvidia-ml.so.1"))
    assert {"nvmlInitWithFlags", "nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetPciInfo_v3"} <= symbols
    assert sorted(symbol for symbol in symbols if not hasattr(library, symbol)) == []
    readme = (package.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split(NVML_SECTION, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    assert sorted(symbols - set(re.findall(r"`(nvml\w+)`", section))) == []  # the README lists every one


def test_a_load_profile_samples_the_scripted_card(nvml: Path) -> None:
    """The load profile's card reading, through nvidia-ml-py: utilisation and power as the script says."""
    from pytest_mathperf.server_resources import gpu_reading

    write_script(nvml, [{**RTX, "utilization_gpu": 65, "power_mw": 250_000, "memory_used": 7 << 30}])
    reading = gpu_reading(0)
    assert reading is not None
    assert (reading.util_percent, reading.memory_gb, reading.power_w) == (65.0, 7.0, 250.0)
