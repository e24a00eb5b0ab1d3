"""Card detection and memory readings: the CPU paths always, the GPU paths where a GPU is lent."""

from __future__ import annotations

import pytest

from pytest_mathperf.devices import GIB, MemoryMonitor, describe_device, environment_fingerprint, resolve_device

torch = pytest.importorskip("torch")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: NVML by PCI bus id, CUDA OOM")


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
