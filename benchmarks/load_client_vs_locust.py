"""Our load client beside locust (and a bare httpx client), on one ``transformers serve``, in one run.

Each client drives the same users, for the same time, with the same requests (the demo model on
CPU, loopback), one after the other; each reports the CPU time its whole process spent while
the load ran, divided by the requests it completed, and the TTFT and e2e it measured. The CPU is
what matters on a GPU runner, where the client shares the host with the server it measures.

    pip install locust        # optional benchmark dependency: pip install '.[benchmark]'
    python benchmarks/load_client_vs_locust.py [--users 32] [--duration-s 25] [--max-tokens 48] [--rounds 1]
                                               [--loops uvloop,asyncio] [--no-httpx]

locust runs as its own process (``locust --headless``, the default ``HttpUser``, streaming the
response with ``requests``); its locustfile notes ``time.process_time()`` at test start and stop.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from servers import serve_model_dir, start_transformers_serve, stop_process  # noqa: E402

from pytest_mathperf.backends import BackendOptions, GenerationRequest, Message  # noqa: E402
from pytest_mathperf.backends.openai import OpenAIBackend, transport  # noqa: E402
from pytest_mathperf.load import LoadProfile, run_load  # noqa: E402
from pytest_mathperf.metrics import statistic  # noqa: E402

QUESTIONS = ("What is 427 + 385?", "What is 105 + 768?", "What is 19 + 23?", "What is 600 + 401?")

LOCUSTFILE = textwrap.dedent(
    '''
    import json, os, time
    from locust import HttpUser, constant, events, task

    BODIES = json.loads(open(os.environ["BENCH_BODIES"]).read())
    OUT = os.environ["BENCH_OUT"]
    state = {"ttft": [], "e2e": [], "ok": 0, "failed": 0, "next": 0}

    @events.test_start.add_listener
    def started(environment, **kwargs):
        state["cpu0"], state["wall0"] = time.process_time(), time.perf_counter()

    @events.test_stop.add_listener
    def stopped(environment, **kwargs):
        state["cpu_s"] = time.process_time() - state["cpu0"]
        state["wall_s"] = time.perf_counter() - state["wall0"]
        with open(OUT, "w") as out:
            json.dump({k: v for k, v in state.items() if k not in ("cpu0", "wall0", "next")}, out)

    class Streamer(HttpUser):
        wait_time = constant(0)

        @task
        def chat(self):
            body = BODIES[state["next"] % len(BODIES)]
            state["next"] += 1
            began = time.perf_counter()
            ttft = None
            finished = False
            with self.client.post("/chat/completions", json=body, stream=True, catch_response=True,
                                  name="chat") as response:
                for line in response.iter_lines():
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        finished = True
                        break
                    chunk = json.loads(data)
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        if ttft is None and (delta.get("content") or delta.get("reasoning_content")):
                            ttft = time.perf_counter() - began
                        if choice.get("finish_reason"):
                            finished = True
                if finished:
                    response.success()
                    state["ok"] += 1
                    state["e2e"].append((time.perf_counter() - began) * 1000)
                    if ttft is not None:
                        state["ttft"].append(ttft * 1000)
                else:
                    response.failure("stream ended without a finish_reason")
                    state["failed"] += 1
    '''
)


def ours(
    backend: OpenAIBackend, users: int, duration_s: float, requests: list[GenerationRequest], loop: str
) -> dict[str, object]:
    """``run_load`` as the gate runs it; ``loop="asyncio"`` swaps uvloop for asyncio's own loop."""
    default_loop = transport.new_event_loop
    if loop == "asyncio":
        transport.new_event_loop = asyncio.new_event_loop
    try:
        result = run_load(backend, LoadProfile(users=users, duration_s=duration_s), requests)
    finally:
        transport.new_event_loop = default_loop
    ok = result.succeeded
    return {
        "ok": len(ok),
        "failed": len(result.failed),
        "cpu_s": result.client_cpu_s,
        "wall_s": result.wall_s,
        "ttft": [record.ttft_ms for record in ok if record.ttft_ms is not None],
        "e2e": [record.e2e_ms for record in ok],
    }


def bare_httpx(url: str, users: int, duration_s: float, bodies: list[dict[str, object]]) -> dict[str, object]:
    """The stack this project used before: httpx + asyncio, one client per user, reading lines."""
    import httpx

    state: dict[str, object] = {"ok": 0, "failed": 0, "ttft": [], "e2e": []}
    counter = [0]

    async def user(deadline: float) -> None:
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=1)) as client:
            while time.perf_counter() < deadline:
                body = bodies[counter[0] % len(bodies)]
                counter[0] += 1
                began = time.perf_counter()
                ttft = None
                finished = False
                async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            finished = True
                            break
                        for choice in json.loads(data).get("choices") or ():
                            delta = choice.get("delta") or {}
                            if ttft is None and (delta.get("content") or delta.get("reasoning_content")):
                                ttft = time.perf_counter() - began
                            if choice.get("finish_reason"):
                                finished = True
                key = "ok" if finished else "failed"
                state[key] = int(state[key]) + 1  # type: ignore[call-overload]
                if finished:
                    state["e2e"].append((time.perf_counter() - began) * 1000)  # type: ignore[union-attr]
                    if ttft is not None:
                        state["ttft"].append(ttft * 1000)  # type: ignore[union-attr]

    async def run() -> None:
        deadline = time.perf_counter() + duration_s
        await asyncio.gather(*(user(deadline) for _ in range(users)))

    cpu0, wall0 = time.process_time(), time.perf_counter()
    asyncio.run(run())
    state["cpu_s"], state["wall_s"] = time.process_time() - cpu0, time.perf_counter() - wall0
    return state


def locust(url: str, users: int, duration_s: float, bodies: list[dict[str, object]], folder: Path) -> dict[str, object]:
    (folder / "bodies.json").write_text(json.dumps(bodies))
    (folder / "locustfile.py").write_text(LOCUSTFILE)
    out = folder / "locust.json"
    command = [sys.executable, "-m", "locust", "--headless", "-f", str(folder / "locustfile.py"), "--host", url,
               "-u", str(users), "-r", str(users), "-t", f"{duration_s:g}s", "--only-summary",
               "--stop-timeout", "120", "--loglevel", "WARNING"]  # fmt: skip
    environment = {"BENCH_BODIES": str(folder / "bodies.json"), "BENCH_OUT": str(out), "PATH": str(Path(sys.executable).parent)}
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=duration_s + 180)
    if not out.exists():
        raise SystemExit(f"locust wrote no result (exit {completed.returncode}):\n{completed.stderr[-2000:]}")
    return json.loads(out.read_text())


def line(name: str, state: dict[str, object]) -> str:
    ok, failed = int(state["ok"]), int(state["failed"])  # type: ignore[call-overload]
    requests = ok + failed
    cpu_ms = float(state["cpu_s"]) * 1000 / requests if requests else float("nan")  # type: ignore[arg-type]
    ttft, e2e = state["ttft"], state["e2e"]
    p = lambda samples, stat: statistic(samples, stat) if samples else float("nan")  # noqa: E731
    return (f"  {name:<22} {requests:>5} {failed:>4} {requests / float(state['wall_s']):>7.2f}"  # type: ignore[arg-type]
            f" {cpu_ms:>10.2f} {float(state['cpu_s']) / float(state['wall_s']):>6.0%}"  # type: ignore[arg-type]
            f" {p(ttft, 'p50'):>9.0f} {p(ttft, 'p95'):>9.0f} {p(e2e, 'p50'):>8.0f} {p(e2e, 'p95'):>8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=25.0)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the side-by-side runs, alternating")
    parser.add_argument("--no-httpx", action="store_true", help="skip the bare httpx client")
    parser.add_argument("--loops", default="uvloop", help="event loops for our client: uvloop, asyncio or both")
    arguments = parser.parse_args()

    model_dir = serve_model_dir()
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        process, served = start_transformers_serve(model_dir, folder / "serve.log")
        try:
            backend = OpenAIBackend(BackendOptions(model=served.model, endpoint=served.base_url))
            backend.load()
            requests = [GenerationRequest(messages=(Message("user", q),), max_new_tokens=arguments.max_tokens)
                        for q in QUESTIONS]  # fmt: skip
            bodies = [backend.request_body(request) for request in requests]
            for request in requests:
                backend.generate(request)  # warm the server and both ends of the connection
            print(f"load client vs locust: transformers serve, demo model on CPU, {arguments.users} users, "
                  f"{arguments.duration_s:g} s each, max_tokens {arguments.max_tokens}, loopback")
            print(f"  {'client':<22} {'reqs':>5} {'fail':>4} {'req/s':>7} {'CPU ms/req':>10} {'CPU':>6}"
                  f" {'TTFT p50':>9} {'TTFT p95':>9} {'e2e p50':>8} {'e2e p95':>8}")
            for _ in range(arguments.rounds):
                for loop in arguments.loops.split(","):
                    state = ours(backend, arguments.users, arguments.duration_s, requests, loop)
                    print(line(f"mathperf ({loop})", state), flush=True)
                print(line("locust 2 (HttpUser)", locust(served.base_url, arguments.users, arguments.duration_s,
                                                          bodies, folder)), flush=True)
                if not arguments.no_httpx and importlib.util.find_spec("httpx") is None:
                    print("  bare httpx + asyncio   skipped: httpx is not installed")
                elif not arguments.no_httpx:
                    print(line("bare httpx + asyncio", bare_httpx(served.base_url, arguments.users,
                                                                   arguments.duration_s, bodies)), flush=True)
            backend.close()
        finally:
            stop_process(process)
    print("CPU ms/req: the client process's CPU time while the load ran / requests it completed or failed")


if __name__ == "__main__":
    main()
