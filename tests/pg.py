"""A real, throw-away PostgreSQL server for the tests: Debian's binaries, a temporary cluster, a loopback port.

initdb refuses to run as root, so as root the cluster belongs to an unprivileged user
(``nobody``). Tests that need the server are skipped, with the reason, only when none can be
started here (no PostgreSQL installed, no psycopg, or the server would not come up).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SUPERUSER = "mathperf"


@dataclass
class PostgresServer:
    host: str
    port: int
    bin_dir: Path
    _databases: itertools.count = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser, outside any transaction (CREATE DATABASE needs that)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            cursor = connection.execute(statement)
            return cursor.fetchall() if cursor.description is not None else []

    def new_database(self) -> str:
        name = f"history_{next(self._databases)}"
        self.sql(f"CREATE DATABASE {name}")
        return name


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(folder: Path) -> tuple[PostgresServer, list[str]]:
    """Start a cluster in ``folder``; the server and the command prefix that runs its tools as its owner."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[4]))
    if not candidates:
        pytest.skip("no PostgreSQL server here: install Debian's postgresql package (.ci/run does) to run these tests")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed: pip install 'pytest-mathperf[postgres]'")
    bin_dir = Path(candidates[-1]).parent
    as_owner: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: initdb refuses root and no other user can start the server")
        as_owner = [runuser, "-u", "nobody", "--"]
        shutil.chown(folder, user="nobody")
    data = folder / "data"
    subprocess.run(
        [*as_owner, str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-locale"],
        check=True, capture_output=True, text=True,
    )
    # The superuser connects without a password (these tests set up everything); any other role
    # over TCP must give one, which is what the password tests need.
    (data / "pg_hba.conf").write_text(
        f"local all all trust\nhost all {SUPERUSER} 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
    )
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder} -c max_connections=60 -F"
    started = subprocess.run(
        [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60", "-o", options, "start"],
        capture_output=True, text=True,
    )
    if started.returncode != 0:
        log = (folder / "server.log").read_text(errors="replace") if (folder / "server.log").exists() else ""
        pytest.skip(f"the PostgreSQL server would not start: {started.stderr.strip()} {log.strip()[-500:]}")
    return PostgresServer("127.0.0.1", port, bin_dir), as_owner


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One server for the whole session; each test takes a fresh database from it (``postgres_url``)."""
    folder = Path(tempfile.mkdtemp(prefix="mathperf-pg-"))
    os.chmod(folder, 0o755)
    try:
        try:
            server, as_owner = _start(folder)
        except subprocess.CalledProcessError as error:
            pytest.skip(f"initdb failed: {error.stderr.strip()[-500:]}")
        try:
            yield server
        finally:
            subprocess.run(
                [*as_owner, str(server.bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop"],
                capture_output=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database on the test server (no password: the superuser is trusted on loopback)."""
    return postgres_server.url(postgres_server.new_database())
