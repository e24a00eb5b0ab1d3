"""Real servers on loopback for the HTTP backend's tests: no mocked client anywhere.

* ``served_model``: ``transformers serve`` on 127.0.0.1 with the bundled demo model on CPU,
  started once per session and stopped at its end (skipped with the reason when it cannot start).
  Its start is seconds of imports on one core, so it begins in the background as soon as a
  test that needs it is collected; collection and the tests before that one go on meanwhile. A
  test that measures real timings with the busy-host guard on asks for ``no_server_starting``.
* ``scripted_server``: a small OpenAI-compatible server (stdlib asyncio, a real socket) that
  misbehaves on purpose: drops the stream, answers 429 (with a chosen ``Retry-After``) then 200,
  401 or 404, never sends the first byte, stalls; it can also stream reasoning apart, spread each
  event over several ``data:`` lines, and report ``completion_tokens_details``. ``python tests/servers.py --chunks 200`` runs its fast mode alone, for
  benchmarks that need the server in another process.

Loaded as a plugin from ``tests/conftest.py`` (``pytest_plugins = ["servers"]``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL = REPO_ROOT / "pytest_mathperf" / "models" / "mathperf-tiny"
#: Point the fixture at another local model folder (development only; the suite uses the bundled one).
SERVE_MODEL_VARIABLE = "MATHPERF_TEST_SERVE_MODEL"
SERVE_START_TIMEOUT_S = 180.0
#: The served model's niceness in the tests (see ServeStart): the lowest priority, so it takes only idle CPU.
BACKGROUND_NICENESS = 19
#: A background start may wait this long for idle CPU; SERVE_START_TIMEOUT_S counts from when a test needs it.
BACKGROUND_START_LIMIT_S = 1800.0
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (the kernel picks it; closed again before returning)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------------------------
# transformers serve
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedModel:
    """A running ``transformers serve``: where it listens and the name it serves the model under."""

    base_url: str  # ends in /v1
    model: str
    log_path: Path


def _serving_missing() -> str | None:
    for module in ("fastapi", "uvicorn", "openai"):
        try:
            __import__(module)
        except ImportError:
            return f"transformers serve needs {module}: pip install 'transformers[serving]'"
    return None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _get_json(url: str, timeout_s: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # loopback only
        return json.loads(response.read())


def start_transformers_serve(
    model_dir: Path,
    log_path: Path,
    *,
    niceness: int = 0,
    cancel: threading.Event | None = None,
    timeout_s: float = SERVE_START_TIMEOUT_S,
    extra_args: tuple[str, ...] = (),
) -> tuple[subprocess.Popen[bytes], ServedModel]:
    """Start ``transformers serve`` pinned to ``model_dir`` on a free loopback port; wait until it answers.

    Pinned (the positional ``force_model``), the server loads the model at start-up, lists it
    under the path it was given, and answers requests that name that path. A positive
    ``niceness`` runs it under ``nice``, so that it takes only CPU time that nothing else wants.
    Setting ``cancel`` stops a start under way (RuntimeError).
    """
    executable = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if executable is None:
        raise RuntimeError("the `transformers` command is not installed next to this Python")
    model = str(model_dir)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # The demo model is tiny: intra-op threads only spin against pytest and each other.
        "OMP_NUM_THREADS": os.environ.get("MATHPERF_TEST_SERVE_THREADS", "1"),
    }
    last_error = "no attempt"
    for _attempt in range(3):  # another process may take the free port before the server binds it
        port = free_port()
        log = log_path.open("wb")
        nice = ["nice", "-n", str(niceness)] if niceness and shutil.which("nice") else []
        process = subprocess.Popen(
            [*nice, executable, "serve", model, "--host", LOOPBACK, "--port", str(port), "--device", "cpu",
             "--dtype", "float32", "--log-level", "warning", *extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        if niceness:  # with autogroup scheduling, niceness counts only inside the new session's group
            with contextlib.suppress(OSError):
                Path(f"/proc/{process.pid}/autogroup").write_text(f"{niceness}\n")
        base_url = f"http://{LOOPBACK}:{port}/v1"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                stop_process(process)
                raise RuntimeError("the start was cancelled")
            if process.poll() is not None:
                last_error = f"exited with {process.returncode}:\n{_tail(log_path)}"
                break
            try:
                listing = _get_json(f"{base_url}/models", timeout_s=2.0)
                served = [entry["id"] for entry in listing.get("data", [])]
                if model in served:
                    return process, ServedModel(base_url, model, log_path)
                last_error = f"serves {served}, not {model}"
            except (OSError, ValueError, urllib.error.URLError) as exc:
                last_error = str(exc)
            time.sleep(0.25)
        else:
            stop_process(process)
            raise RuntimeError(f"transformers serve did not answer within {timeout_s:g} s: {last_error}")
        if "address already in use" not in last_error.lower():
            break
    raise RuntimeError(f"transformers serve failed to start: {last_error}")


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group, then SIGKILL after ``grace_s``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace_s)


def serve_model_dir() -> Path:
    override = os.environ.get(SERVE_MODEL_VARIABLE)
    return Path(override).resolve() if override else BUNDLED_MODEL


def _cannot_serve(model_dir: Path) -> str | None:
    """Why ``transformers serve`` cannot run here (the reason a test is skipped), or None."""
    if not (model_dir / "config.json").is_file():
        return f"no model to serve at {model_dir} (config.json missing)"
    return _serving_missing()


class ServeStart:
    """One start of ``transformers serve`` on a thread of its own; ``wait`` gives the running server.

    The server runs niced: started in the background, it must not slow the tests that run meanwhile
    (a tiny model's two torch threads lose several times their speed to a third busy thread).
    """

    def __init__(self, model_dir: Path) -> None:
        self.log_path = Path(tempfile.mkdtemp(prefix="transformers-serve-")) / "serve.log"
        self._model_dir = model_dir
        self._started: tuple[subprocess.Popen[bytes], ServedModel] | None = None
        self._error: RuntimeError | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._start, name="transformers-serve-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            self._started = start_transformers_serve(
                self._model_dir,
                self.log_path,
                niceness=BACKGROUND_NICENESS,
                cancel=self._cancel,
                timeout_s=BACKGROUND_START_LIMIT_S,
            )
        except RuntimeError as error:
            self._error = error

    @property
    def starting(self) -> bool:
        return self._thread.is_alive()

    def wait(self) -> ServedModel:
        """The running server; RuntimeError (why not) when it did not start in time."""
        self._thread.join(SERVE_START_TIMEOUT_S)
        if self._thread.is_alive():
            log = _tail(self.log_path)
            self.stop()
            raise RuntimeError(f"transformers serve did not answer within {SERVE_START_TIMEOUT_S:g} s:\n{log}")
        if self._started is None:
            raise self._error or RuntimeError("no start was attempted")
        return self._started[1]

    def stop(self) -> None:
        self._cancel.set()
        self._thread.join()
        if self._started is not None:
            stop_process(self._started[0])
        shutil.rmtree(self.log_path.parent, ignore_errors=True)  # a failed start's log tail is in its error


_SERVE_START = pytest.StashKey[ServeStart]()


def _needs_the_server(item: pytest.Item) -> bool:
    return "served_model" in getattr(item, "fixturenames", ())


def pytest_itemcollected(item: pytest.Item) -> None:
    """Begin starting the server as soon as a test that needs it is collected."""
    config = item.config
    if config.option.collectonly or _SERVE_START in config.stash or not _needs_the_server(item):
        return
    if hasattr(config, "workerinput"):  # an xdist worker collects every test; it starts one when it runs one
        return
    if not _cannot_serve(serve_model_dir()):
        config.stash[_SERVE_START] = ServeStart(serve_model_dir())


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop it again when selection (``-k``, ``-m``) left no test that needs it."""
    start = session.config.stash.get(_SERVE_START, None)
    if start is not None and not any(_needs_the_server(item) for item in session.items):
        start.stop()
        del session.config.stash[_SERVE_START]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop a server that no test asked for after all (``-x``, a failed collection, ``-k``)."""
    start = session.config.stash.get(_SERVE_START, None)
    if start is not None:
        start.stop()


@pytest.fixture(scope="session")
def served_model(request: pytest.FixtureRequest) -> Iterator[ServedModel]:
    """``transformers serve`` with the demo model on CPU, for the whole session."""
    model_dir = serve_model_dir()
    reason = _cannot_serve(model_dir)
    if reason:
        pytest.skip(reason)
    start = request.config.stash.get(_SERVE_START, None) or ServeStart(model_dir)
    request.config.stash[_SERVE_START] = start
    try:
        served = start.wait()
    except RuntimeError as exc:
        pytest.skip(f"transformers serve could not start: {exc}")
    try:
        yield served
    finally:
        start.stop()


@pytest.fixture
def no_server_starting(request: pytest.FixtureRequest) -> None:
    """Wait for a background start of the server to end: its imports would slow what a test times."""
    start = request.config.stash.get(_SERVE_START, None)
    if start is not None and start.starting:
        with contextlib.suppress(RuntimeError):  # the test that needs the server reports why it did not start
            start.wait()


# --------------------------------------------------------------------------------------------
# The scripted server: real sockets, deliberate misbehaviour
# --------------------------------------------------------------------------------------------

DEFAULT_PIECES: tuple[str, ...] = ("427 + 385 ", "= 812. ", "The answer is ", "\\boxed{812}", ".")


@dataclass
class Script:
    """What the scripted server does; mutable so that a test can change it between requests."""

    mode: str = "ok"  # ok | drop | flaky | unauthorized | wrong-model | silent | headers-only | stall | no-finish
    pieces: tuple[str, ...] = DEFAULT_PIECES
    reasoning: tuple[str, ...] = ()  # sent as reasoning_content deltas before the pieces
    chunks: int = 0  # when > 0: send this many one-token pieces instead of `pieces` (benchmarks)
    failures: int = 2  # flaky: how many chat requests fail before one succeeds
    failure_status: int = 429
    retry_after: str | None = "0"  # the Retry-After header of a flaky failure (None: no header)
    drop_after: int = 3  # drop/stall: events sent (the role chunk included) before the cut or the silence
    finish_reason: str = "stop"
    usage: bool = True
    usage_reasoning_tokens: int | None = None  # sent as usage.completion_tokens_details.reasoning_tokens
    done_marker: bool = True
    models: tuple[str, ...] = ("scripted-model",)
    echo_key_in_errors: bool = True  # 401 bodies quote the key, as some real servers do
    delay_s: float = 0.0  # between chunks
    multiline: bool = False  # spread each event's JSON over several `data:` lines, as the SSE format allows
    keepalive_s: float = 0.0  # stall: send ": ping" comments this often instead of silence, as proxies do
    linger_s: float = 0.0  # keep the body open this long after [DONE] before ending it
    served_as: str | None = None  # the model id the chunks name (default: the one requested), as a swapped server would


@dataclass
class Received:
    """What the server was sent, for assertions; headers without Authorization."""

    method: str
    path: str
    body: dict[str, Any] | None
    had_authorization: bool


def _chunk_json(
    delta: dict[str, Any], finish_reason: str | None = None, usage: dict[str, Any] | None = None, model: str = "scripted-model"
) -> bytes:
    payload: dict[str, Any] = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        payload["usage"] = usage
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _spread_over_lines(event: bytes) -> bytes:
    """The same event with its JSON pretty-printed, one ``data:`` line per JSON line."""
    payload = json.loads(event.removeprefix(b"data: ").strip())
    lines = json.dumps(payload, indent=1).splitlines()
    return b"".join(b"data: " + line.encode() + b"\r\n" for line in lines) + b"\r\n"


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class ScriptedServer:
    """An OpenAI-compatible server on 127.0.0.1 that does what its :class:`Script` says."""

    def __init__(self, script: Script | None = None, port: int = 0) -> None:
        self.script = script or Script()
        self.received: list[Received] = []
        self.chat_requests = 0
        self._requested_port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._stopping: asyncio.Event | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._stopping = asyncio.Event()
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, LOOPBACK, self._requested_port, backlog=1024)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_until_complete(self._stopping.wait())
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            handlers = asyncio.all_tasks(loop)  # streams still being answered: end them as asyncio.run does
            for handler in handlers:
                handler.cancel()
            loop.run_until_complete(asyncio.gather(*handlers, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="scripted-openai-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("scripted server did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def serve_forever(self) -> None:
        """For running in a process of its own (benchmarks): listen until interrupted."""
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, LOOPBACK, self._requested_port, backlog=4096)
        self.port = server.sockets[0].getsockname()[1]
        print(f"listening {self.base_url}", flush=True)
        async with server:
            await self._stopping.wait()

    # ---- HTTP ----------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(100_000):  # keep-alive: one connection, many requests, bounded
                request_line = await reader.readline()
                if not request_line:
                    return
                method, path, _version = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                for _ in range(200):
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b""
                body = json.loads(raw) if raw else None
                self.received.append(Received(method, path, body, "authorization" in headers))
                keep_open = await self._respond(method, path, headers, body, writer)
                if not keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, payload: Any, extra: str = "") -> None:
        reasons = {200: "OK", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable"}
        data = json.dumps(payload).encode()
        head = (
            f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n{extra}\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()

    async def _respond(
        self, method: str, path: str, headers: dict[str, str], body: Any, writer: asyncio.StreamWriter
    ) -> bool:
        script = self.script
        if script.mode == "unauthorized":
            key = headers.get("authorization", "").removeprefix("Bearer ")
            quoted = f": {key}" if script.echo_key_in_errors and key else ""
            await self._send_json(
                writer, 401, {"error": {"message": f"Incorrect API key provided{quoted}", "type": "invalid_request_error"}}
            )
            return True
        if method == "GET" and path.rstrip("/").endswith("/models"):
            data = [{"id": name, "object": "model", "owned_by": "scripted"} for name in script.models]
            await self._send_json(writer, 200, {"object": "list", "data": data})
            return True
        if not (method == "POST" and path.rstrip("/").endswith("/chat/completions")):
            await self._send_json(writer, 404, {"detail": "Not Found"})
            return True
        self.chat_requests += 1
        requested = (body or {}).get("model")
        if script.mode == "wrong-model" or requested not in script.models:
            await self._send_json(
                writer, 404, {"error": {"message": f"The model `{requested}` does not exist.", "code": 404}}
            )
            return True
        if script.mode == "flaky" and self.chat_requests <= script.failures:
            retry_after = f"Retry-After: {script.retry_after}\r\n" if script.retry_after is not None else ""
            await self._send_json(writer, script.failure_status, {"error": {"message": "busy, retry later"}}, retry_after)
            return True
        if script.mode == "silent":
            assert self._stopping is not None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=60)
            return False
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        await writer.drain()
        if script.mode == "headers-only":
            assert self._stopping is not None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=60)
            return False
        return await self._stream(script, body or {}, writer)

    async def _stream(self, script: Script, body: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        pieces = ("x",) * script.chunks if script.chunks > 0 else script.pieces
        max_tokens = int(body.get("max_tokens") or 1_000_000)
        finish_reason = script.finish_reason
        if len(script.reasoning) + len(pieces) > max_tokens:
            finish_reason = "length"
        model = script.served_as or str(body.get("model") or "scripted-model")
        events: list[bytes] = [_chunk_json({"role": "assistant", "content": ""}, model=model)]
        events += [_chunk_json({"reasoning_content": text}, model=model) for text in script.reasoning]
        events += [_chunk_json({"content": text}, model=model) for text in pieces]
        events = events[: 1 + max_tokens]
        if script.multiline:
            events = [_spread_over_lines(event) for event in events]
        for sent, event in enumerate(events):
            if script.mode in ("drop", "stall") and sent >= script.drop_after:
                await writer.drain()
                if script.mode == "drop":
                    writer.transport.abort()  # mid-answer, without ending the chunked body
                    return False
                assert self._stopping is not None
                deadline = time.monotonic() + 60
                while script.keepalive_s and not self._stopping.is_set() and time.monotonic() < deadline:
                    try:
                        writer.write(_http_chunk(b": ping\n\n"))
                        await writer.drain()
                    except (ConnectionError, OSError):
                        return False  # the client gave up on us: what the test wants
                    await asyncio.sleep(script.keepalive_s)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=max(deadline - time.monotonic(), 0))
                return False
            writer.write(_http_chunk(event))
            if script.delay_s:
                await writer.drain()
                await asyncio.sleep(script.delay_s)
        if script.mode != "no-finish":
            tokens = len(events) - 1
            usage: dict[str, Any] | None = None
            if script.usage:
                usage = {"prompt_tokens": 11, "completion_tokens": tokens, "total_tokens": 11 + tokens}
                if script.usage_reasoning_tokens is not None:
                    usage["completion_tokens_details"] = {"reasoning_tokens": script.usage_reasoning_tokens}
            writer.write(_http_chunk(_chunk_json({}, finish_reason=finish_reason, usage=usage, model=model)))
            if script.done_marker:
                writer.write(_http_chunk(b"data: [DONE]\n\n"))
        if script.linger_s:
            await writer.drain()
            await asyncio.sleep(script.linger_s)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    """A fresh scripted server per test; set ``scripted_server.script.mode`` to choose its misbehaviour."""
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://{LOOPBACK}:{free_port()}/v1"


def main(argv: list[str] | None = None) -> None:
    """Run the scripted server in fast mode in a process of its own (for benchmarks)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=100, help="one-token content chunks per answer")
    parser.add_argument("--delay-s", type=float, default=0.0, help="pause between chunks, to pace like a real server")
    arguments = parser.parse_args(argv)
    server = ScriptedServer(Script(chunks=arguments.chunks, delay_s=arguments.delay_s), port=arguments.port)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve_forever())


if __name__ == "__main__":
    main()
