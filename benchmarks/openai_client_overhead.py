"""The HTTP client's own cost: is a load profile measuring the server, or the client?

Everything runs in one session, side by side, on this machine:

1. **Per request** against a server that answers instantly (``tests/servers.py`` in a process of
   its own, so its CPU is not ours): the whole client process's CPU per request and per chunk
   (aiohttp, the event loop and our parsing together).
2. **Concurrent streams** against the same server paced like a real one (``--delay-s`` between
   chunks): with N users, each stream should take chunks × delay; the ratio measured / ideal,
   the client's CPU share and the event loop's lag show how many streams one process sustains.
3. **transformers serve** with the demo model (when it can start): the client's CPU per request
   under 32 concurrent users (``benchmarks/load_client_vs_locust.py`` puts locust beside it).

    python benchmarks/openai_client_overhead.py [--chunks 100] [--users 1,64,256,512] [--no-serve]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import serve_model_dir, start_transformers_serve, stop_process  # noqa: E402

from pytest_mathperf.backends import BackendOptions, GenerationRequest, Message  # noqa: E402
from pytest_mathperf.backends.openai import OpenAIBackend, OpenAISettings  # noqa: E402
from pytest_mathperf.load import LoadProfile, run_load  # noqa: E402

REQUEST = GenerationRequest(messages=(Message("user", "What is 427 + 385?"),), max_new_tokens=100_000)
SETTINGS = OpenAISettings(first_byte_timeout_s=120, read_timeout_s=120, retries=0)


def process_cpu_s(pid: int) -> float:
    """CPU seconds a process has used so far (Linux /proc); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


@contextmanager
def scripted_server(chunks: int, delay_s: float) -> Iterator[tuple[str, int]]:
    """The scripted server's fast mode in a subprocess; yields its base URL and process id."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "servers.py"), "--chunks", str(chunks), "--delay-s", str(delay_s)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()  # "listening http://127.0.0.1:PORT/v1"
        if not line.startswith("listening "):
            raise SystemExit(f"scripted server did not start: {line!r}")
        yield line.split(" ", 1)[1], process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def backend_for(url: str, model: str = "scripted-model") -> OpenAIBackend:
    backend = OpenAIBackend(BackendOptions(model=model, endpoint=url), SETTINGS)
    backend.load()
    return backend


def per_request(url: str, chunks: int, requests: int) -> None:
    backend = backend_for(url)
    for _ in range(5):  # warm the connection and the code paths
        backend.generate(REQUEST)
    e2e_ms: list[float] = []
    cpu_started = time.process_time()
    wall_started = time.perf_counter()
    for _ in range(requests):
        e2e_ms.append(backend.generate(REQUEST).e2e_ms)
    cpu_s = time.process_time() - cpu_started
    wall_s = time.perf_counter() - wall_started
    backend.close()
    print(f"  sequential, {requests} requests x {chunks} chunks, server answers instantly")
    print(f"    e2e per request (p50)            {statistics.median(e2e_ms):8.2f} ms")
    print(f"    client process CPU per request   {cpu_s * 1000 / requests:8.3f} ms")
    print(f"    client process CPU per chunk     {cpu_s * 1e6 / (requests * chunks):8.1f} us  (aiohttp, event loop, ours)")
    print(f"    client CPU share of wall time    {cpu_s / wall_s:8.0%}")
    print(f"    => one core reads about {requests * chunks / cpu_s:,.0f} chunks/s when they arrive back to back")


def concurrency_table(chunks: int, delay_s: float, user_counts: list[int]) -> None:
    ideal_ms = chunks * delay_s * 1000
    print(f"  concurrent streams, {chunks} chunks paced {delay_s * 1000:g} ms apart (ideal e2e {ideal_ms:.0f} ms),"
          f" server in its own process, {os.cpu_count()} CPUs")
    print(f"    {'users':>6} {'ok':>5} {'e2e p50':>9} {'e2e p99':>9} {'p50/1 user':>10} {'chunks/s':>9}"
          f" {'client CPU':>10} {'CPU/chunk':>9} {'server CPU':>10} {'loop lag p50/p99':>17}")
    single_user_ms: float | None = None
    cpu_per_chunk_us: dict[int, float] = {}
    with scripted_server(chunks, delay_s) as (url, pid):
        for users in user_counts:
            backend = backend_for(url)
            server_cpu_started = process_cpu_s(pid)
            result = run_load(backend, LoadProfile(users=users, requests=users * 2), [REQUEST])
            server_share = (process_cpu_s(pid) - server_cpu_started) / result.wall_s
            backend.close()
            metrics = result.metrics()
            p50 = metrics.get("load.e2e_ms.p50", float("nan"))
            if single_user_ms is None:
                single_user_ms = p50
            received = sum(r.output_tokens for r in result.succeeded)
            chunks_per_s = received / result.wall_s
            cpu_per_chunk_us[users] = result.client_cpu_s * 1e6 / max(received, 1)
            print(
                f"    {users:>6} {result.success_rate:>5.0%} {p50:>7.0f}ms"
                f" {metrics.get('load.e2e_ms.p99', float('nan')):>7.0f}ms {p50 / single_user_ms:>10.2f}"
                f" {chunks_per_s:>9,.0f} {result.client_cpu_share:>10.0%} {cpu_per_chunk_us[users]:>7.0f}us"
                f" {server_share:>10.0%}"
                f" {metrics.get('load.loop_lag_ms.p50', float('nan')):>7.1f}/{metrics.get('load.loop_lag_ms.p99', float('nan')):.1f}ms"
            )
    nearest = min(cpu_per_chunk_us, key=lambda users: abs(users - 50))
    print(f"    => the seed's load test (50 users at 107.6 tok/s = 5,380 chunks/s) costs this client about"
          f" {5380 * cpu_per_chunk_us[nearest] / 1e6:.0%} of one core (CPU per chunk measured at {nearest} users)")


def transformers_serve(users: int, requests: int, max_new_tokens: int) -> None:
    model_dir = serve_model_dir()
    if not (model_dir / "config.json").is_file():
        print(f"  transformers serve: skipped, no model at {model_dir}")
        return
    with tempfile.TemporaryDirectory() as folder:
        try:
            process, served = start_transformers_serve(model_dir, Path(folder) / "serve.log")
        except RuntimeError as exc:
            print(f"  transformers serve: skipped, {exc}")
            return
        try:
            backend = backend_for(served.base_url, served.model)
            request = GenerationRequest(messages=REQUEST.messages, max_new_tokens=max_new_tokens)
            backend.generate(request)  # warm-up
            result = run_load(backend, LoadProfile(users=users, requests=requests), [request])
            backend.close()
        finally:
            stop_process(process)
    metrics = result.metrics()
    e2e = metrics["load.e2e_ms.p50"]
    cpu_ms = metrics["load.client_cpu_ms_per_request"]
    print(f"  transformers serve, demo model on CPU, {users} users, {requests} requests, max_tokens {max_new_tokens}")
    print(f"    success {result.success_rate:.0%}, {result.requests_per_s:.2f} req/s, {result.tokens_per_s:.1f} tok/s")
    print(f"    e2e p50 {e2e:.0f} ms, p95 {metrics['load.e2e_ms.p95']:.0f} ms; ttft p50 {metrics['load.ttft_ms.p50']:.0f} ms")
    print(f"    client CPU per request {cpu_ms:.2f} ms (the whole process);"
          f" client CPU share {result.client_cpu_share:.1%}; loop lag p99 {metrics['load.loop_lag_ms.p99']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100, help="content chunks per answer")
    parser.add_argument("--requests", type=int, default=200, help="sequential requests for the per-request figures")
    parser.add_argument("--delay-s", type=float, default=0.01, help="pacing between chunks for the concurrency table")
    parser.add_argument("--users", default="1,16,64,256,512", help="comma-separated concurrency levels, 1 first")
    parser.add_argument("--serve-users", type=int, default=32)
    parser.add_argument("--serve-requests", type=int, default=64)
    parser.add_argument("--serve-max-tokens", type=int, default=48)
    parser.add_argument("--no-serve", action="store_true", help="skip the transformers serve part")
    arguments = parser.parse_args()

    print("openai client overhead")
    with scripted_server(arguments.chunks, 0.0) as (url, _pid):
        per_request(url, arguments.chunks, arguments.requests)
    concurrency_table(arguments.chunks, arguments.delay_s, [int(u) for u in arguments.users.split(",")])
    if not arguments.no_serve:
        transformers_serve(arguments.serve_users, arguments.serve_requests, arguments.serve_max_tokens)


if __name__ == "__main__":
    main()
