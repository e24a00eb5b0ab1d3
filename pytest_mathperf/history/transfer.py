"""Moving runs between stores: ``mathperf history import`` and the side file of a run the history refused.

A run keeps its uid wherever it goes, so importing the same source twice adds nothing, and a
side file replaces the incomplete copy its run left in the history. The source is never
changed: an SQLite source is read through a private copy (migrated there if it is old), which
also makes import the way to salvage a damaged file: every run that still reads is copied, and
the runs that do not are named.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_mathperf.history.database import HistoryError, HistoryLocation, parse_location
from pytest_mathperf.history.store import History, StoredRun
from pytest_mathperf.results import RunRecord

SIDE_FILE_FORMAT = "pytest-mathperf run"
SIDE_FILE_VERSION = 1


@dataclass
class ImportResult:
    """What one import did, run by run of the source."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "run 7: <why>"


def import_history(source: str | Path, target: History) -> ImportResult:
    """Copy every run of ``source`` (a history or a side file) that ``target`` lacks, each in one transaction."""
    result = ImportResult()
    for stored in _source_runs(source, result):
        outcome = target.import_run(stored)
        getattr(result, outcome).append(stored.uid)
    return result


def _source_runs(source: str | Path, result: ImportResult) -> Iterator[StoredRun]:
    location = parse_location(source)
    if location.path is not None:
        if not location.path.is_file():
            raise HistoryError(f"{location.path} does not exist or is not a file")
        if location.path.read_bytes()[:1] in (b"{", b"["):
            yield read_side_file(location.path)
            return
    with _readable_copy(location) as copy:

        def named(error: HistoryError) -> str:
            """The message about the private copy, naming the file the user gave instead."""
            return str(error).replace(str(copy), str(location))

        try:
            with History(copy) as history:
                for run_id in history.run_ids():
                    try:
                        yield history.stored_run(run_id)
                    except HistoryError as error:
                        result.unreadable.append(f"run {run_id}: {named(error)}")
        except HistoryError as error:
            raise HistoryError(named(error)) from error


@contextmanager
def _readable_copy(location: HistoryLocation) -> Iterator[HistoryLocation]:
    """The source itself for PostgreSQL; for an SQLite file, a private copy that may be migrated freely."""
    if location.path is None:
        yield location
        return
    with tempfile.TemporaryDirectory(prefix="mathperf-import-") as folder:
        # A plain file copy: even a read-only SQLite connection would leave -wal and -shm files
        # beside the source. The source's WAL, where a writer's last commits may still be, comes along.
        copy = Path(folder) / "source.db"
        try:
            shutil.copyfile(location.path, copy)
            wal = location.path.with_name(location.path.name + "-wal")
            if wal.exists():
                shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        except OSError as exc:
            raise HistoryError(f"{location.path} cannot be read: {exc.strerror or exc}") from exc
        yield HistoryLocation(path=copy)


# -- side files -----------------------------------------------------------------------------------


def write_side_file(run: RunRecord, uid: str, complete: bool, near: Path | None) -> Path:
    """Save a run the history could not take, for ``mathperf history import``; the first folder that takes it wins.

    Tried in order: beside the history file, the current folder, the temporary folder.
    """
    document = {
        "format": SIDE_FILE_FORMAT,
        "version": SIDE_FILE_VERSION,
        "uid": uid,
        "complete": complete,
        "run": run.to_dict(),
    }
    text = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True)
    folders = [near] if near is not None else []
    folders += [Path.cwd(), Path(tempfile.gettempdir())]
    errors = []
    for folder in folders:
        path = folder / f"mathperf-unrecorded-run-{uid}.json"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return path
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
    raise OSError("; ".join(errors))


def read_side_file(path: Path) -> StoredRun:
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HistoryError(f"{path} cannot be read as a pytest-mathperf run file: {exc}") from exc
    except RecursionError:
        raise HistoryError(f"{path}: nested too deeply to be a pytest-mathperf run file") from None
    if not isinstance(document, dict) or document.get("format") != SIDE_FILE_FORMAT:
        raise HistoryError(f"{path} is not a pytest-mathperf run file (no \"format\": {SIDE_FILE_FORMAT!r})")
    if document.get("version") != SIDE_FILE_VERSION:
        raise HistoryError(f"{path}: run file version {document.get('version')!r}; this pytest-mathperf reads {SIDE_FILE_VERSION}")
    problem = _shape_problem(document.get("run"))
    if problem is not None:
        raise HistoryError(f"{path}: a run file with a malformed field: {problem}")
    try:
        record = RunRecord.from_dict(document["run"])
        stored = StoredRun(run_id=0, uid=str(document["uid"]), complete=bool(document["complete"]), record=record)
    except (KeyError, TypeError, ValueError) as exc:
        raise HistoryError(f"{path}: a run file with a missing or malformed field: {exc}") from exc
    problem = _malformed_number(record)
    if problem is not None:  # taken in, it would break every report drawn from the history
        raise HistoryError(f"{path}: a run file with a malformed field: {problem}")
    return stored


#: The lists of objects a run holds, with the lists of objects each of those holds.
_RUN_LISTS = {"models": (), "cases": ("generations",), "budgets": (), "comparisons": ()}


def _shape_problem(run: Any) -> str | None:
    """The first field whose kind is wrong (a string where a list belongs), or whose text is no text
    (a lone UTF-16 surrogate, which no store can hold), as ``run.cases[0]...``; None when all are sound."""
    if not isinstance(run, dict):
        return f"run: expected an object, got {_kind(run)}"
    if not isinstance(run.get("environment", {}), dict):
        return f"run.environment: expected an object, got {_kind(run['environment'])}"
    for name, inner_lists in _RUN_LISTS.items():
        items = run.get(name, [])
        if not isinstance(items, list):
            return f"run.{name}: expected a list, got {_kind(items)}"
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                return f"run.{name}[{index}]: expected an object, got {_kind(item)}"
            for inner in inner_lists:
                nested = item.get(inner, [])
                if not isinstance(nested, list) or not all(isinstance(element, dict) for element in nested):
                    return f"run.{name}[{index}].{inner}: expected a list of objects"
    return _lone_surrogate(run)


def _lone_surrogate(run: dict[str, Any]) -> str | None:
    pending: list[tuple[str, Any]] = [("run", run)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, dict):
            pending.extend((f"{where}.{key}", item) for key, item in value.items())
            pending.extend((f"{where} (a key)", key) for key in value)
        elif isinstance(value, list):
            pending.extend((f"{where}[{index}]", item) for index, item in enumerate(value))
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"{where}: a lone UTF-16 surrogate, not text"
    return None


def _kind(value: Any) -> str:
    kinds = {str: "a string", bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _malformed_number(record: RunRecord) -> str | None:
    """The first field that should hold a number and does not, as ``run.cases[0]....``; None when all do."""

    def bad(value: Any, optional: bool = False) -> bool:
        if value is None:
            return not optional
        return isinstance(value, bool) or not isinstance(value, (int, float))

    for name in ("started_at", "finished_at"):
        if bad(getattr(record, name)):
            return f"run.{name}: expected a number, got {getattr(record, name)!r}"
    for index, model in enumerate(record.models):
        for metric, value in model.metrics.items():
            if bad(value):
                return f"run.models[{index}].metrics.{metric}: expected a number, got {value!r}"
    for index, case in enumerate(record.cases):
        for number, generation in enumerate(case.generations):
            for metric, value in generation.metrics.items():
                if bad(value, optional=True):
                    return f"run.cases[{index}].generations[{number}].metrics.{metric}: expected a number, got {value!r}"
    for index, budget in enumerate(record.budgets):
        for name in ("minimum", "maximum", "measured"):
            if bad(getattr(budget, name), optional=True):
                return f"run.budgets[{index}].{name}: expected a number, got {getattr(budget, name)!r}"
    return None
