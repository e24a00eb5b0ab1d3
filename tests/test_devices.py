"""Card detection and memory readings: the CPU paths always, the GPU paths where a GPU is lent.

What needs torch on a card (CUDA OOM, NVML matched to torch's device, several cards) is skipped
here with the reason and run by ``benchmarks/gpu_check.sh`` on a runner with one; the NVML paths
themselves run everywhere on a scripted library (test_nvml_scripted.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from pytest_mathperf.devices import (
    GIB,
    HOST_PID_NAMESPACE_INODE,
    PidNamespace,
    bf16_problem,
    card_matches,
    card_name,
    current_pid_namespace,
    describe_device,
    environment_fingerprint,
    matching_card_patterns,
    near_miss,
    needs_several_cards,
    nvml_init,
    read_pid_namespace,
    resolve_device,
)
from pytest_mathperf.memory import (
    MemoryFigures,
    MemoryMonitor,
    PeakPoller,
    PollerUnavailable,
    choose_cuda_source,
    devices_of,
    others_on_card_note,
)
from pytest_mathperf.poller import nvml_problem_line

torch = pytest.importorskip("torch")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: NVML by PCI bus id, CUDA OOM")
without_nvml = pytest.mark.skipif(nvml_init() is None, reason="checks what a machine without NVML reports")
MIB = 1024**2


def test_cpu_is_its_own_card() -> None:
    assert describe_device("cpu").card == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a CPU-only machine gives")
def test_asking_for_cuda_without_it_names_the_option() -> None:
    with pytest.raises(ValueError, match=r"--mathperf-device cuda: CUDA is not available to torch"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match=r"--mathperf-device 'tpu': use auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")


def test_host_memory_peak_sees_an_allocation_during_the_window() -> None:
    monitor = MemoryMonitor("cpu")
    assert monitor.source == "rss" and monitor.kind == "rss"
    before = monitor.current_bytes()
    monitor.start()
    block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB, touched
    block.add_(1)
    del block  # gone before the peak is read: only the kernel's high-water mark still knows
    peak = monitor.stop()
    assert peak - before >= 60 * 1024 * 1024
    assert 0 < before / GIB < 24


def test_environment_fingerprint_names_versions_and_suites_commit(tmp_path) -> None:
    environment = environment_fingerprint(describe_device("cpu"), "hf", (tmp_path,))
    assert environment["card"] == "cpu" and environment["backend"] == "hf"
    assert environment["torch"] == torch.__version__
    assert environment["transformers"]
    assert environment["suites_commit"] == ""  # not a git checkout


@needs_cuda
def test_cuda_card_is_named_by_nvml_through_the_pci_bus_id() -> None:
    import pynvml

    info = describe_device("cuda:0")
    assert info.pci_bus_id and info.card != "cpu"
    handle = pynvml.nvmlDeviceGetHandleByPciBusId(info.pci_bus_id)
    name = pynvml.nvmlDeviceGetName(handle)
    assert info.card == (name.decode() if isinstance(name, bytes) else name)
    print(f"card={info.card!r} bus={info.pci_bus_id} driver={info.driver} cuda={info.cuda}")


@needs_cuda
def test_cuda_memory_peak_counts_this_process() -> None:
    monitor = MemoryMonitor("cuda:0")
    monitor.start()
    block = torch.ones(256 * 1024 * 1024 // 4, device="cuda:0")
    torch.cuda.synchronize()
    peak = monitor.stop()
    del block
    assert peak >= 256 * 1024 * 1024
    print(f"memory source={monitor.source} peak={peak / GIB:.3f} GiB")


@needs_cuda
def test_cuda_out_of_memory_fails_one_generation_and_names_the_memory() -> None:
    from pytest_mathperf.backends import BackendOptions, GenerationRequest, Message, OutOfMemory
    from pytest_mathperf.backends.hf import HFBackend

    backend = HFBackend(BackendOptions(model="mathperf-tiny", device="cuda:0"))
    backend.load()
    request = GenerationRequest(messages=(Message("user", "What is 1 + 2?"),), max_new_tokens=8)
    hogs = []
    try:
        chunk = 1 << 30
        while chunk >= 1 << 20:  # fill the card until not even a megabyte is left
            try:
                hogs.append(torch.empty(chunk, dtype=torch.uint8, device="cuda:0"))
            except torch.OutOfMemoryError:
                chunk //= 2
        with pytest.raises(OutOfMemory, match=r"out of memory on cuda:0 .*GB allocated.*GB reserved of .*GB"):
            backend.generate(request)
    finally:
        hogs.clear()
        torch.cuda.empty_cache()
    assert "\\boxed{3}" in backend.generate(request).text  # the next generation still runs
    backend.close()


# --- PID namespaces: NVML reports host PIDs, a container has its own --------------------------

HOST_LINK = f"pid:[{HOST_PID_NAMESPACE_INODE}]"


@pytest.mark.parametrize(
    ("status", "link", "nested", "reason"),
    [
        ("Name:\tpython\nNSpid:\t8621\n", HOST_LINK, False, ""),
        ("NSpid:\t48213\t7\n", HOST_LINK, True, "NSpid 48213 7: this process is PID 7 here, 48213 outside"),
        ("NSpid:\t7\n", "pid:[4026532179]", True, "PID namespace pid:[4026532179] is not the host's"),
        ("Name:\tpython\n", None, False, ""),  # a kernel without NSpid, no ns link: nothing says nested
        (None, None, False, ""),  # not Linux
    ],
)
def test_pid_namespace_is_read_from_proc_status_and_the_namespace_link(status, link, nested, reason) -> None:
    assert read_pid_namespace(status, link) == PidNamespace(nested, reason)


def _in_new_pid_namespace(mount_proc: bool) -> str:
    """Run ``current_pid_namespace()`` in a real new PID namespace (root and unshare(1) needed)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare(1) and root to make a PID namespace")
    command = ["unshare", "--pid", "--fork", *(["--mount-proc"] if mount_proc else []), sys.executable, "-c",
               "from pytest_mathperf.devices import current_pid_namespace as n; print(n().nested, n().reason, sep='|')"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    if result.returncode != 0 and result.stderr.startswith("unshare:"):  # e.g. an unprivileged container
        pytest.skip(f"this host refuses new PID namespaces: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_container_pid_namespace_is_detected_from_inside() -> None:
    # As in Docker: /proc is the container's own, NSpid shows one PID, the namespace link tells.
    nested, reason = _in_new_pid_namespace(mount_proc=True).split("|")
    assert nested == "True" and reason.startswith("PID namespace pid:[") and reason.endswith("] is not the host's")


def test_a_nested_pid_namespace_is_detected_from_nspid() -> None:
    # /proc still the host's: NSpid lists the PID outside and inside.
    nested, reason = _in_new_pid_namespace(mount_proc=False).split("|")
    assert nested == "True" and reason.startswith("NSpid ") and reason.endswith(" 1: this process is PID 1 here, " + reason.split()[1] + " outside")


def test_this_process_namespace_agrees_with_its_proc_files() -> None:
    namespace = current_pid_namespace()
    link = os.readlink("/proc/self/ns/pid") if os.path.exists("/proc/self/ns/pid") else None
    assert namespace.nested == (link is not None and link != HOST_LINK) or "NSpid" in namespace.reason


# --- which memory source, and what other processes did -----------------------------------------

#: Stands for this process's PID in parameters, whose ids must be the same in every xdist worker.
PID_PLACEHOLDER = "<pid>"

HOST = PidNamespace(False)
CONTAINER = PidNamespace(True, "PID namespace pid:[4026532179] is not the host's")


@pytest.mark.parametrize(
    ("namespace", "problem", "listed", "baseline", "source", "note_part"),
    [
        (HOST, None, None, True, "nvml-process", ""),  # before the context exists: NVML per process
        (HOST, None, True, True, "nvml-process", ""),
        (HOST, None, False, True, "nvml-device-delta", f"NVML does not list PID {PID_PLACEHOLDER} on the card"),
        (CONTAINER, None, None, True, "nvml-device-delta", "is not the host's; memory is the card's use minus"),
        (CONTAINER, None, True, True, "nvml-device-delta", "is not the host's"),  # a PID match there is chance
        (CONTAINER, None, None, False, "torch-reserved", "the card was not read before the load"),
        (HOST, "NVMLError_LibraryNotFound: NVML Shared Library Not Found", None, True, "torch-reserved",
         "NVML unusable (NVMLError_LibraryNotFound: NVML Shared Library Not Found)"),
    ],
)
def test_memory_source_follows_namespace_nvml_and_pid(namespace, problem, listed, baseline, source, note_part) -> None:
    chosen, note = choose_cuda_source(namespace, problem, listed, baseline)
    assert chosen == source
    expected = note_part.replace(PID_PLACEHOLDER, str(os.getpid()))
    assert expected in note if expected else note == ""


def test_other_processes_on_the_card_are_reported_where_they_change_a_delta() -> None:
    before = {100: 2 * GIB, 200: 512 * MIB}
    assert others_on_card_note(before, {**before, 300: 7 * GIB}) == ""  # one new PID: this process
    assert others_on_card_note(before, {100: 2 * GIB, 200: 512 * MIB + 10 * MIB, 300: GIB}) == ""  # noise
    grown = others_on_card_note(before, {100: 3 * GIB, 200: 512 * MIB, 300: GIB})
    assert grown == "the figure may include other processes: processes already on the card changed their memory by +1.00 GB"
    crowded = others_on_card_note(before, {**before, 300: GIB, 301: GIB})
    assert crowded == "the figure may include other processes: 2 processes started on the card during the run (one is this one)"


def test_memory_figures_name_their_metrics_source_and_cards() -> None:
    figures = MemoryFigures("nvml-device-delta", ("cuda:0", "cuda:1"), 3 * GIB, 4 * GIB, 5 * GIB, "why")
    assert figures.metrics() == {"vram_load_gb": 3.0, "vram_load_peak_gb": 4.0, "vram_peak_gb": 5.0}
    assert figures.several_cards and figures.label == "nvml-device-delta (2 cards)"
    host = MemoryFigures("rss", ("cpu",), GIB, None, 2 * GIB)
    assert host.metrics() == {"rss_load_gb": 1.0, "rss_peak_gb": 2.0} and host.label == "rss"


# --- card names: MIG slices, matching, near misses -------------------------------------------


@pytest.mark.parametrize(
    ("nvml", "cuda", "mig", "mig_name", "expected"),
    [
        ("NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 3090", False, None, "NVIDIA GeForce RTX 3090"),
        (None, "NVIDIA GeForce RTX 3090", False, None, "NVIDIA GeForce RTX 3090"),  # NVML unusable
        # NVML names the whole card through the bus id; the slice's own handle and CUDA name the slice
        ("NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB MIG 1g.5gb", True, "NVIDIA A100-SXM4-40GB MIG 1g.5gb",
         "NVIDIA A100-SXM4-40GB MIG 1g.5gb"),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB MIG 1g.10gb", True, None, "NVIDIA A100-SXM4-80GB MIG 1g.10gb"),
        ("NVIDIA A100-SXM4-80GB", "A100-SXM4-80GB MIG 3g.40gb", True, None, "NVIDIA A100-SXM4-80GB MIG 3g.40gb"),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB", True, None, "NVIDIA A100-SXM4-80GB MIG"),  # slice unknown
        (None, "NVIDIA A100-SXM4-80GB MIG 2g.20gb", False, None, "NVIDIA A100-SXM4-80GB MIG 2g.20gb"),
    ],
)
def test_a_mig_slice_keeps_its_profile_in_the_card_name(nvml, cuda, mig, mig_name, expected) -> None:
    assert card_name(nvml, cuda, mig, mig_name) == expected


def test_card_keys_match_exactly_or_by_glob_and_a_whole_card_key_never_judges_a_slice() -> None:
    rtx, slice_ = "NVIDIA GeForce RTX 3090", "NVIDIA A100-SXM4-80GB MIG 1g.10gb"
    assert card_matches("NVIDIA GeForce RTX 3090", rtx)
    assert not card_matches("nvidia geforce rtx 3090", rtx)  # exact means exact
    assert not card_matches("GeForce RTX 3090", rtx)  # no implied prefix either
    assert card_matches("NVIDIA GeForce RTX 30?0", rtx) and card_matches("*3090", rtx)
    assert not card_matches("NVIDIA A100-SXM4-80GB", slice_)
    assert not card_matches("NVIDIA A100*", slice_) and not card_matches("*", slice_)
    assert card_matches("NVIDIA A100* MIG 1g.*", slice_) and card_matches("*MIG*", slice_)
    assert card_matches("NVIDIA A100*", "NVIDIA A100-SXM4-80GB")
    keys = ["*", "NVIDIA *", "NVIDIA GeForce RTX 3090", "NVIDIA GeForce*", "cpu"]
    assert matching_card_patterns(rtx, keys) == ["NVIDIA GeForce RTX 3090", "NVIDIA GeForce*", "NVIDIA *", "*"]
    assert matching_card_patterns(slice_, keys) == []
    assert matching_card_patterns(slice_, ["*MIG 1g.10gb", "NVIDIA A100*"]) == ["*MIG 1g.10gb"]


@pytest.mark.parametrize(
    ("name", "candidates", "expected"),
    [
        ("GeForce RTX 3090", ["NVIDIA GeForce RTX 3090", "cpu"], "NVIDIA GeForce RTX 3090"),
        ("NVIDIA GeForce RTX 3090", ["GeForce RTX 3090"], "GeForce RTX 3090"),  # the file lacks the prefix
        ("nvidia geforce rtx-3090", ["NVIDIA GeForce RTX 3090"], "NVIDIA GeForce RTX 3090"),
        ("NVIDIA GeForce RTX 3090", ["NVIDIA GeForce RTX 3090"], None),  # a match is no miss
        ("NVIDIA GeForce RTX 3080", ["NVIDIA GeForce RTX 3090"], None),  # another card, not a typo
        ("NVIDIA A100-SXM4-80GB MIG 1g.10gb", ["NVIDIA A100-SXM4-80GB"], None),  # a slice is not the card
        ("H100 80GB HBM3", ["NVIDIA H100*"], "NVIDIA H100*"),
        ("mathperf-tiny", ["mathperf-tnyi", "other-model"], "mathperf-tnyi"),
        ("Qwen2.5-7B-Instruct", ["Qwen2.5-1.5B-Instruct"], None),
        ("cpu", ["NVIDIA GeForce RTX 3090"], None),
    ],
)
def test_near_miss_suggests_what_a_name_was_meant_to_be(name, candidates, expected) -> None:
    assert near_miss(name, candidates) == expected


# --- NVML failures are one line ---------------------------------------------------------------


def test_nvml_failures_become_one_line_naming_the_fix() -> None:
    import pynvml

    mismatch = pynvml.NVMLLibraryMismatchError(
        "Unversioned function called and the pyNVML version does not match the NVML lib version. "
        "Either use matching pyNVML and NVML lib versions or use a versioned function such as "
        "nvmlDeviceGetComputeRunningProcesses_v2"
    )
    line = nvml_problem_line(mismatch)
    assert line.startswith("NVMLLibraryMismatchError: Unversioned function called") and "\n" not in line
    assert line.endswith("(the driver is older than nvidia-ml-py expects: update the driver, or pin an older nvidia-ml-py)")
    missing = pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    assert nvml_problem_line(missing) == "NVMLError_LibraryNotFound: NVML Shared Library Not Found"
    old_driver = pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
    assert nvml_problem_line(old_driver).startswith("NVMLError_FunctionNotFound: Function Not Found (the driver is older")
    assert nvml_problem_line(OSError("libnvidia-ml.so.1: cannot open shared object file")) == (
        "OSError: libnvidia-ml.so.1: cannot open shared object file"
    )


@without_nvml
def test_a_machine_without_nvml_gets_one_line_not_a_traceback() -> None:
    assert nvml_init() in ("NVMLError_LibraryNotFound: NVML Shared Library Not Found", "nvidia-ml-py is not installed")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without a card prints")
def test_mathperf_card_prints_the_exact_string_to_use() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest_mathperf.cli", "card"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert (result.returncode, result.stdout, result.stderr) == (0, "cpu\n", "")


# --- choices made before loading --------------------------------------------------------------


def test_bf16_on_a_card_without_it_is_refused_before_loading() -> None:
    t4 = ("bfloat16", "cuda:0", "Tesla T4", False, (7, 5))
    assert bf16_problem("bfloat16", *t4) == (
        "--mathperf-dtype bfloat16: bfloat16 on Tesla T4 (compute capability 7.5), which has no bfloat16 "
        "support; use --mathperf-dtype float16"
    )
    assert "bfloat16 (the checkpoint's dtype) on Tesla T4" in bf16_problem("auto", *t4)
    assert bf16_problem("bfloat16", "bfloat16", "cuda:0", "NVIDIA A100-SXM4-80GB", True, (8, 0)) is None
    assert bf16_problem("float16", "float16", "cuda:0", "Tesla T4", False, (7, 5)) is None
    assert bf16_problem("bfloat16", "bfloat16", "cpu", "cpu", False, None) is None


def test_a_model_is_spread_over_cards_only_when_one_card_cannot_hold_it() -> None:
    assert not needs_several_cards(weights_bytes=14 * GIB, free_bytes=23 * GIB)
    assert needs_several_cards(weights_bytes=22 * GIB, free_bytes=23 * GIB)  # no room left to generate
    assert needs_several_cards(weights_bytes=140 * GIB, free_bytes=79 * GIB)


def test_weights_size_from_the_config_alone_matches_the_loaded_demo_model() -> None:
    from pytest_mathperf.backends import BackendOptions
    from pytest_mathperf.backends.hf import HFBackend, weights_bytes

    backend = HFBackend(BackendOptions(model="mathperf-tiny", device="cpu"))
    info = backend.load()
    loaded = sum(t.numel() * t.element_size() for t in [*backend.model.parameters(), *backend.model.buffers()])
    assert weights_bytes(backend.model.config, torch.float32) == loaded
    halved = weights_bytes(backend.model.config, torch.bfloat16)
    assert loaded // 2 <= halved <= loaded // 2 + 1024  # rotary frequencies stay float32
    assert info.details["devices"] == "cpu" and "device_map" not in info.details
    assert devices_of(info) == ("cpu",)
    backend.close()


# --- the poller child ---------------------------------------------------------------------------


def test_poller_child_reports_the_peak_of_a_reading_and_stops() -> None:
    poller = PeakPoller("rss", [os.getpid()])
    try:
        baseline = poller.reset().peaks[0]
        block = b"\x01" * (128 * MIB)  # written, so resident
        held = poller.peak()  # the child samples on request too
        assert held.peaks[0] - baseline >= 120 * MIB and held.errors == 0
        del block
        after = poller.reset()  # the window's peak outlives the allocation
        assert after.peaks[0] >= held.peaks[0]
        fresh = poller.peak()  # a new window opens at the current level
        assert fresh.peaks[0] < held.peaks[0] - 100 * MIB
    finally:
        final = poller.stop()
    assert final.samples >= 1 and not poller.running


def test_poller_child_samples_by_itself_and_catches_a_spike_between_requests() -> None:
    poller = PeakPoller("rss", [os.getpid()])
    try:
        baseline = poller.reset().peaks[0]
        block = b"\x01" * (128 * MIB)
        deadline = time.monotonic() + 30
        time.sleep(1.0)  # the child, at nice 19, samples every 10 ms on its own
        del block
        reading = poller.reset()
        while reading.samples < 3 and time.monotonic() < deadline:  # a starved child: give it the time it needs
            time.sleep(1.0)
            reading = poller.reset()
        assert reading.samples >= 3
    finally:
        poller.stop()
    assert reading.peaks[0] - baseline >= 120 * MIB


def test_poller_child_runs_at_the_lowest_priority() -> None:
    poller = PeakPoller("rss", [os.getpid()])
    try:
        child = poller._process.pid  # type: ignore[union-attr]
        with open(f"/proc/{child}/stat", encoding="ascii") as stat:
            nice = int(stat.read().rsplit(")", 1)[1].split()[16])
        assert nice == 19
    finally:
        poller.stop()


@without_nvml
def test_nvml_poller_says_no_nvml_device_and_leaves_no_child() -> None:
    with pytest.raises(PollerUnavailable, match=r"^no NVML device: NVMLError_LibraryNotFound: NVML Shared Library Not Found$"):
        PeakPoller("nvml", [os.getpid(), "00000000:01:00.0"])


def test_poller_refuses_an_unknown_reading_in_one_line() -> None:
    with pytest.raises(PollerUnavailable, match=r"^unknown sampler 'gpu-temperature'$"):
        PeakPoller("gpu-temperature", [])


def test_host_monitor_reports_the_load_peak_apart_from_the_run_peak() -> None:
    monitor = MemoryMonitor.before_load("cpu")
    assert monitor.source == "rss" and monitor.devices == ("cpu",)
    before = monitor.current_bytes()
    spike = b"\x01" * (96 * MIB)  # what a load allocates and frees again
    del spike
    monitor.after_load(("cpu",))
    monitor.start()
    block = b"\x02" * (48 * MIB)
    del block
    monitor.stop()
    figures = monitor.figures()
    assert figures.load_peak_bytes - before >= 90 * MIB
    assert 40 * MIB <= figures.peak_bytes - figures.load_bytes < 90 * MIB  # the load's spike is not the run's
    assert set(figures.metrics()) == {"rss_load_gb", "rss_load_peak_gb", "rss_peak_gb"}
    assert figures.note == "" and not figures.several_cards


def test_a_spread_model_names_every_card_it_uses() -> None:
    from types import SimpleNamespace

    from pytest_mathperf.backends import LoadInfo
    from pytest_mathperf.backends.hf import _devices_holding

    spread = SimpleNamespace(hf_device_map={"model.embed_tokens": 0, "model.layers.0": 0, "model.layers.1": 1, "lm_head": "1"})
    assert _devices_holding(spread, "cuda:0") == ("cuda:0", "cuda:1")
    offloaded = SimpleNamespace(hf_device_map={"model.embed_tokens": 0, "lm_head": "cpu", "model.norm": "disk"})
    assert _devices_holding(offloaded, "cuda:0") == ("cuda:0", "cpu", "disk")
    assert _devices_holding(SimpleNamespace(), "cuda:3") == ("cuda:3",)
    info = LoadInfo("m", "", None, "bfloat16", "cuda:0", 1.0, {"devices": "cuda:0,cuda:1", "device_map": "auto"})
    assert devices_of(info) == ("cuda:0", "cuda:1")
    assert devices_of(LoadInfo("m", "", None, "float32", "cpu", 1.0)) == ("cpu",)
    assert devices_of(LoadInfo("m", "http://x", None, "", None, 1.0)) == ()  # a served model: none here


def test_the_monitor_is_still_importable_where_the_runner_looks_for_it() -> None:
    from pytest_mathperf import devices

    assert devices.MemoryMonitor is MemoryMonitor
