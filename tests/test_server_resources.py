"""A load profile samples the server's CPU (and on CUDA its card) and makes them budgets."""

from __future__ import annotations

import os
import time

from conftest import ARITHMETIC_SUITE, write

from pytest_mathperf.server_resources import GpuReading, ResourceSampler, is_local, sampler_for


def test_the_sampler_reads_a_process_and_the_card_until_stopped() -> None:
    readings = []

    def scripted_nvml(index: int) -> GpuReading:  # stands in for NVML on a host without a card
        readings.append(index)
        return GpuReading(util_percent=65.0, memory_gb=7.0, power_w=250.0)

    with ResourceSampler(os.getpid(), gpu_index=1, interval_s=0.05, read_gpu=scripted_nvml) as sampler:
        deadline = time.perf_counter() + 30  # a loaded CI host may start the sampler late: wait for samples, not a time
        while len(sampler.result().samples.get("load.server_cpu_percent", ())) < 3 and time.perf_counter() < deadline:
            sum(range(1000))  # this process is the "server": keep it busy
    samples = sampler.result().samples
    assert max(samples["load.server_cpu_percent"]) > 0
    assert min(samples["load.server_rss_gb"]) > 0
    assert set(samples["load.gpu_util_percent"]) == {65.0} and set(samples["load.gpu_power_w"]) == {250.0}
    assert set(readings) == {1}


def test_a_remote_server_is_not_sampled_and_says_why() -> None:
    assert is_local("http://127.0.0.1:8000/v1") and is_local("http://localhost:1/v1") and not is_local("http://10.0.0.5/v1")
    sampler = sampler_for("http://10.0.0.5:8000/v1", None, None)
    with sampler:
        pass
    assert sampler.result().describe() == (
        "server not sampled: the server is not on this host (give its PID with --mathperf-server-pid when it is)"
    )


def test_a_load_profile_records_the_servers_cpu_as_a_budget(pytester, run_gate, served_model) -> None:
    # the seed's shape (users ramped up, then held for a duration), run short
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE + "load: {users: 10, duration_s: 2, ramp_s: 1}\n")
    write(
        pytester,
        "thresholds.yaml",
        f"""
        version: 1
        cards:
          cpu:
            models:
              "{served_model.model}":
                load.server_cpu_percent: {{mean: {{max: 100}}, p95: {{max: 0.0001}}}}
        """,
    )
    run = run_gate("--mathperf-backend", "openai", "--mathperf-endpoint", served_model.base_url, model=served_model.model)
    run.result.assert_outcomes(passed=3 + 1 + 1, failed=1)
    load = run.properties("::load[")
    assert load["mathperf.server"].startswith("server PID ")
    assert 0 < float(load["load.server_cpu_percent.mean"]) <= 100
    run.result.stdout.fnmatch_lines(
        ["*budget load.server_cpu_percent.p95 failed for *", "load: server CPU (of all cores) p95 (%) *"]
    )
