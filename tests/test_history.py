"""The run history: round trips, schema versions, concurrent writers, killed writers, bad files."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_mathperf.history import ALL_SUITES, SCHEMA_VERSION, History, HistoryError
from pytest_mathperf.metrics import statistic
from pytest_mathperf.results import BudgetRecord, CaseRecord, GenerationRecord, ModelRecord, RunRecord

ROOT = Path(__file__).resolve().parents[1]
CARD = "NVIDIA GeForce RTX 3090"


def make_run(tag: str, *, cases: int = 4, repeats: int = 3, output_chars: int = 120, seed: int = 0) -> RunRecord:
    """A run as the plugin records it: two models, CJK prompts, per-generation metrics, budgets."""
    rng = random.Random(f"{tag}-{seed}")
    started = 1_735_700_000.0 + seed * 3_600 + rng.random()
    models, records, budgets = [], [], []
    for model, ttft in (("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 298.0), ("Qwen/Qwen2.5-Math-1.5B", 412.0)):
        models.append(
            ModelRecord(
                model=model, backend="hf", card=CARD, device="cuda:0", dtype="float16", revision="a1b2c3d",
                source="/root/.cache/huggingface/hub", metrics={"load_s": 9.25, "vram_load_gb": 6.7, "vram_peak_gb": 7.0},
                memory_source="nvml-process", details={"attn_implementation": "sdpa"},
            )
        )
        for number in range(cases):
            suite = ("algebra", "geometry")[number % 2]
            generations = tuple(
                GenerationRecord(
                    repeat=repeat, seed=repeat, status=("correct", "wrong", "truncated")[(number + repeat) % 3],
                    extracted=None if (number + repeat) % 3 == 2 else f"{17 + repeat}",
                    reason="hit max_new_tokens inside <think>" if (number + repeat) % 3 == 2 else "",
                    finish_reason="length" if (number + repeat) % 3 == 2 else "stop",
                    metrics={"ttft_ms": ttft * rng.uniform(0.9, 1.2), "tokens_per_s": 107.6 * rng.uniform(0.9, 1.1),
                             "output_tokens": 200, "e2e_ms": 1858.7 + repeat},
                    output=("两个连续奇数之和为 36。" * output_chars)[:output_chars] + f" \\boxed{{{17 + repeat}}} {tag}",
                )
                for repeat in range(repeats)
            )
            records.append(
                CaseRecord(
                    model=model, suite=suite, case=f"case-{number}", nodeid=f"suites/{suite}.yaml::case-{number}",
                    prompt="两个连续奇数之和为 36，求这两个数。", expected="17, 19", tags=("zh", "seed"),
                    pass_rule="majority", passed=number % 3 != 1, generations=generations,
                )
            )
        budgets.append(BudgetRecord(model, "ttft_ms.p50", "ttft_ms", "p50", "model", None, None, None, 350.0, 301.5, cases * repeats, True, CARD, "thresholds.yaml::m::ttft_ms.p50"))
        budgets.append(BudgetRecord(model, "accuracy", "accuracy", None, "suite", "algebra", None, 0.9, None, 0.5, cases // 2, False, CARD, "thresholds.yaml::m::algebra::accuracy"))
        budgets.append(BudgetRecord(model, "ttft_ms.p95", "ttft_ms", "p95", "case", "algebra", "case-0", None, 600.0, None, 0, False, CARD, "suites/algebra.yaml::case-0::ttft_ms.p95"))
    environment = {"card": CARD, "driver": "550.54.14", "cuda": "12.4", "torch": "2.5.1", "transformers": "4.51.3",
                   "host": tag, "backend": "hf", "suites_commit": "3c9e2a1", "python": "3.11.7"}
    return RunRecord(started, started + 61.5, environment, tuple(models), tuple(records), tuple(budgets))


def test_round_trip(tmp_path: Path) -> None:
    first, second = make_run("a", seed=1), make_run("b", seed=2)
    with History(tmp_path / "history.db") as history:
        ids = [history.append(first), history.append(second)]
        assert history.run(ids[0]) == first
        assert history.run(ids[1]) == second
        assert history.latest_run() == second
        assert history.run_ids() == ids
    with History(tmp_path / "history.db") as reopened:
        assert reopened.run(ids[0]) == first


def test_file_is_created_on_first_write_only(tmp_path: Path) -> None:
    path = tmp_path / "nested" / ".mathperf" / "history.db"
    history = History(path)
    assert history.latest_run() is None
    assert history.summaries() == []
    assert not path.exists() and not path.parent.exists()
    history.append(make_run("a"))
    history.close()
    assert path.exists()
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT value FROM mathperf_meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)


def test_missing_run_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with pytest.raises(HistoryError, match=f"^{path} does not exist$"):
        History(path).run(1)
    with History(path) as history:
        history.append(make_run("a"))
        with pytest.raises(HistoryError, match=f"^{path} has no run 7$"):
            history.run(7)


def test_summaries_match_the_records(tmp_path: Path) -> None:
    run = make_run("a", cases=6)
    with History(tmp_path / "history.db") as history:
        run_id = history.append(run)
        [summary] = history.summaries()
    assert summary.run_id == run_id and summary.environment == run.environment
    assert summary.budgets_failed == 4 and summary.cases_failed == 4
    model = summary.models[0]
    assert model.model == run.models[0]
    cases = run.cases_of(model.model.model)
    ttfts = [value for case in cases for value in case.samples("ttft_ms")]
    stats = model.stats[("ttft_ms", ALL_SUITES)]
    assert stats.count == 18 and stats.values["p95"] == statistic(ttfts, "p95")
    algebra = [value for case in cases if case.suite == "algebra" for value in case.samples("ttft_ms")]
    assert model.stats[("ttft_ms", "algebra")].values["p50"] == statistic(algebra, "p50")
    assert model.accuracy == {ALL_SUITES: (4, 6), "algebra": (2, 3), "geometry": (2, 3)}
    assert [b.scope for b in model.budgets] == ["model", "suite"]  # per-case budgets are not charted


SCHEMA_1_SQL = """
CREATE TABLE mathperf_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL NOT NULL, environment TEXT NOT NULL);
CREATE TABLE models (run_id INTEGER NOT NULL, position INTEGER NOT NULL, model TEXT NOT NULL, backend TEXT NOT NULL,
    card TEXT NOT NULL, device TEXT, dtype TEXT, revision TEXT, source TEXT, metrics TEXT NOT NULL, memory_source TEXT,
    load_error TEXT, details TEXT NOT NULL, PRIMARY KEY (run_id, position));
CREATE TABLE cases (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, position INTEGER NOT NULL, model TEXT NOT NULL,
    suite TEXT NOT NULL, case_id TEXT NOT NULL, nodeid TEXT NOT NULL, prompt TEXT NOT NULL, expected TEXT NOT NULL,
    tags TEXT NOT NULL, pass_rule TEXT NOT NULL, passed INTEGER NOT NULL);
CREATE INDEX cases_by_run ON cases (run_id, position);
CREATE TABLE generations (case_row INTEGER NOT NULL, position INTEGER NOT NULL, repeat INTEGER NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL, extracted TEXT, reason TEXT NOT NULL, finish_reason TEXT, metrics TEXT NOT NULL, output TEXT NOT NULL,
    PRIMARY KEY (case_row, position));
CREATE TABLE budgets (run_id INTEGER NOT NULL, position INTEGER NOT NULL, model TEXT NOT NULL, name TEXT NOT NULL,
    metric TEXT NOT NULL, statistic TEXT, scope TEXT NOT NULL, suite TEXT, case_id TEXT, minimum REAL, maximum REAL,
    measured REAL, samples INTEGER NOT NULL, passed INTEGER NOT NULL, card TEXT NOT NULL, nodeid TEXT NOT NULL,
    PRIMARY KEY (run_id, position));
INSERT INTO mathperf_meta VALUES ('schema_version', '1'), ('created_by', 'pytest-mathperf 0.1.0');
INSERT INTO runs VALUES (1, 1735700000.5, 1735700061.0, '{"card": "cpu", "torch": "2.4.1"}');
INSERT INTO models VALUES (1, 0, 'mathperf-tiny', 'hf', 'cpu', 'cpu', 'float32', NULL, 'bundled', '{"load_s": 0.4, "rss_peak_gb": 0.9}', 'rss', NULL, '{}');
INSERT INTO cases VALUES (1, 1, 0, 'mathperf-tiny', 'algebra', 'linear-system', 'suites/algebra.yaml::linear-system',
    '已知 x + 2y = 10，3x - y = 5，求 x 和 y 的值。', 'x = 20/7, y = 25/7', '["zh"]', 'majority', 1);
INSERT INTO generations VALUES (1, 0, 0, 0, 'correct', 'x = 20/7, y = 25/7', '', 'stop', '{"ttft_ms": 12.5, "tokens_per_s": 80.0}', 'x = 20/7, y = 25/7');
INSERT INTO generations VALUES (1, 1, 1, 1, 'correct', 'x = 20/7, y = 25/7', '', 'stop', '{"ttft_ms": 14.5, "tokens_per_s": 70.0}', 'x = 20/7, y = 25/7');
INSERT INTO budgets VALUES (1, 0, 'mathperf-tiny', 'ttft_ms.p50', 'ttft_ms', 'p50', 'model', NULL, NULL, NULL, 50.0, 13.5, 2, 1, 'cpu', 'thresholds.yaml::mathperf-tiny::ttft_ms.p50');
"""


def test_schema_1_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(SCHEMA_1_SQL)
    connection.close()
    with History(path) as history:
        old = history.run(1)
        assert old.cases[0].generations[1].metrics == {"ttft_ms": 14.5, "tokens_per_s": 70.0}
        [summary] = history.summaries()
        assert summary.models[0].stats[("ttft_ms", ALL_SUITES)].values["p50"] == 13.5
        new_id = history.append(make_run("after-migration"))
        assert history.run_ids() == [1, new_id]
        assert history.integrity_check() == "ok"
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT value FROM mathperf_meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    connection.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with History(path) as history:
        history.append(make_run("a"))
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE mathperf_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    connection.close()
    with pytest.raises(HistoryError) as error:
        History(path).latest_run()
    assert str(error.value).startswith(f"{path} was written by a newer pytest-mathperf (schema {SCHEMA_VERSION + 1} > {SCHEMA_VERSION})")


def test_random_bytes_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    path.write_bytes(random.Random(0).randbytes(8192))
    for action in (lambda h: h.latest_run(), lambda h: h.append(make_run("a"))):
        with pytest.raises(HistoryError) as error:
            action(History(path))
        assert str(error.value) == f"{path} is corrupt or not an SQLite file: file is not a database"
    assert "\n" not in str(error.value)


def test_damaged_pages_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with History(path) as history:
        for seed in range(3):
            history.append(make_run("a", seed=seed, cases=20))
    data = bytearray(path.read_bytes())
    page = 4096
    garbage = random.Random(1).randbytes(len(data) - 2 * page)
    data[2 * page :] = garbage  # keep the header and schema page, ruin every table page after them
    path.write_bytes(bytes(data))
    with pytest.raises(HistoryError, match=rf"^{path} is corrupt"):
        with History(path) as history:
            for run_id in (1, 2, 3):
                history.run(run_id)


def test_foreign_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO users (name) VALUES ('ada')")
    connection.close()
    before = path.read_bytes()
    with pytest.raises(HistoryError) as error:
        History(path).append(make_run("a"))
    assert str(error.value) == f"{path} is not a pytest-mathperf history (no mathperf_meta table)"
    assert path.read_bytes() == before


WRITER = """
import signal, sys, time
from pathlib import Path
# Ctrl-C as at a terminal, even when this test runs where SIGINT is inherited as ignored (a
# background job of a shell without job control): Python then installs no handler of its own.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path[:0] = [{root!r}, {tests!r}]
from pytest_mathperf.history import History
from test_history import make_run

path, tag, count, folder = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
(folder / f"ready-{{tag}}").touch()
while not (folder / "go").exists():
    time.sleep(0.005)
history = History(path)
seed = 0
while count < 0 or seed < count:
    run_id = history.append(make_run(tag, seed=seed, cases=int(sys.argv[5]), output_chars=int(sys.argv[6])))
    print(run_id, flush=True)
    seed += 1
history.close()
"""


def _writer(tmp_path: Path, history: Path, tag: str, count: int, cases: int = 4, output_chars: int = 120) -> subprocess.Popen[str]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT), tests=str(ROOT / "tests")))
    return subprocess.Popen(
        [sys.executable, str(script), str(history), tag, str(count), str(tmp_path), str(cases), str(output_chars)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_two_processes_writing_at_once_both_land(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    writers = [_writer(tmp_path, path, tag, 25) for tag in ("writer-1", "writer-2")]
    for tag in ("writer-1", "writer-2"):
        _wait_for(tmp_path / f"ready-{tag}")
    (tmp_path / "go").touch()
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr
    with History(path) as history:
        runs = [history.run(run_id) for run_id in history.run_ids()]
        assert history.integrity_check() == "ok"
    for tag in ("writer-1", "writer-2"):
        mine = [run for run in runs if run.environment["host"] == tag]
        assert mine == [make_run(tag, seed=seed) for seed in range(25)]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_writer_killed_mid_run_leaves_earlier_runs_readable(tmp_path: Path, how: signal.Signals) -> None:
    path = tmp_path / "history.db"
    writer = _writer(tmp_path, path, "doomed", -1, cases=60, output_chars=3000)  # big runs: long transactions
    _wait_for(tmp_path / "ready-doomed")
    (tmp_path / "go").touch()
    assert writer.stdout is not None
    committed = [int(writer.stdout.readline()) for _ in range(3)]
    time.sleep(0.02)  # into the next run's transaction
    os.kill(writer.pid, how)
    writer.communicate(timeout=30)
    assert writer.returncode != 0
    with History(path) as history:
        ids = history.run_ids()
        assert ids[: len(committed)] == committed
        for seed, run_id in enumerate(ids):
            assert history.run(run_id) == make_run("doomed", seed=seed, cases=60, output_chars=3000)
        assert history.integrity_check() == "ok"
        history.append(make_run("next"))  # and the file is still writable
        assert len(history.run_ids()) == len(ids) + 1


def test_a_run_of_the_previous_schema_can_be_blessed_and_compared_with(tmp_path: Path) -> None:
    """A history written by release 0.1.0 (schema 2) migrates in place, and its raw samples serve as a baseline."""
    import shutil

    from pytest_mathperf.compare import Comparison, compare_samples
    from pytest_mathperf.results import CaseRecord

    old = tmp_path / "old.db"
    shutil.copy(Path(__file__).parent / "data" / "history-0.1.0-da657ef.db", old)
    with History(old) as history:
        history.bless([1])
        run_id, record = history.blessed_run("cpu", "mathperf-tiny")
        assert run_id == 1 and history.check().schema_version == SCHEMA_VERSION
    samples = {key: value for case in record.cases_of("mathperf-tiny") for key, value in CaseRecord.keyed_samples(case, "ttft_ms").items()}
    assert len(samples) >= 2 and all(value > 0 for value in samples.values())
    same = Comparison("ttft_ms", "p50", 1.25, None, None, "model", None, old, 1)
    assert compare_samples(same, samples, samples, 0.95).verdict == "within_margin"
