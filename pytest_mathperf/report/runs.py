"""What a run is called, and what changed between two runs of one model on one card.

A trend is only worth reading if a reader can tell a regression from a change: a suite that
gained cases or a model with new weights measures something else (a *content* change, which
breaks the trend line), and a new torch or driver explains a step without the model being worse
(an *environment* change, which is marked). A busy host is shown on the run's own point, never as
a change: its wording moves with the neighbours' load from one run to the next. Every key read here may be missing from
older runs, so each is optional.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pytest_mathperf.history import ALL_SUITES, ModelSummary, RunSummary

#: Environment keys that say which run this is, not where it ran; they change every run.
IDENTITY_KEYS: tuple[str, ...] = ("label", "git_commit", "git_branch", "ci_run_id", "run_uid", "blessed")
#: Environment keys that describe the suites' content: changes to them are content changes.
SUITES_KEYS: tuple[str, ...] = ("suites_fingerprint", "suites_commit")
#: Prefix of one suite's content fingerprint in the environment (``suite_fingerprint.algebra``).
SUITE_FINGERPRINT_PREFIX = "suite_fingerprint."
#: The weights' revision in the environment (``model_revision.NAME`` per model, or one for all),
#: read when the model's record has none.
MODEL_REVISION = "model_revision"
#: A reason string (or ``yes``) when the host was busy with something else during the run.
HOST_BUSY = "host_busy"
#: Model fields that belong to its environment (the weights' revision is content, not environment).
MODEL_ENVIRONMENT_FIELDS: tuple[str, ...] = ("backend", "device", "dtype", "source", "memory_source")
#: Environment keys shown first, in this order, when listing a run's environment or its changes.
ENVIRONMENT_ORDER: tuple[str, ...] = (
    "label", "git_commit", "git_branch", "ci_run_id", "blessed", "card", "driver", "cuda", "torch",
    "transformers", "backend", "device", "dtype", "revision", "source", "memory_source", HOST_BUSY,
    "suites_commit", "suites_fingerprint", "pytest-mathperf", "math-verify", "python", "host", "platform", "cpu",
)
_HASH = re.compile(r"[0-9a-f]{32,}(\+dirty)?")
_FALSE = frozenset({"", "0", "no", "false", "off"})


@dataclass(frozen=True)
class RunName:
    """How a run is shown: ``short`` under the x-axis, ``full`` in hovers and tables."""

    short: str
    full: str


@dataclass(frozen=True)
class Change:
    """One difference between a run and the previous run of the same model × card.

    ``content`` changes (suite, weights) break the trend line; ``suite`` names the suite a
    content change concerns (None: the whole model), so other suites' charts stay joined.
    """

    kind: str  # content | environment
    key: str
    before: str
    after: str
    text: str
    suite: str | None = None


def run_name(summary: RunSummary) -> RunName:
    """The run's label, commit, branch and CI run id where recorded; its number otherwise."""
    environment = summary.environment
    number = f"run {summary.run_id}" if summary.run_id is not None else "this run"
    label = _text(environment.get("label"))
    commit = _text(environment.get("git_commit"))[:10]
    branch = _text(environment.get("git_branch"))
    ci_run = _text(environment.get("ci_run_id"))
    parts = [number]
    if label:
        parts.append(label)
    if commit:
        parts.append(f"{commit} ({branch})" if branch else commit)
    elif branch:
        parts.append(f"branch {branch}")
    if ci_run:
        parts.append(f"CI run {ci_run}")
    short = label or commit[:7] or (f"CI {ci_run}" if ci_run else number)
    return RunName(short=short, full=" · ".join(parts))


def busy_note(summary: RunSummary) -> str:
    """A busy host, for the run's own point: it is no change of environment (its wording moves with the load)."""
    busy = _text(summary.environment.get(HOST_BUSY))
    return "" if busy.lower() in _FALSE else f" · measured on a busy host: {busy}"


def is_blessed(summary: RunSummary) -> bool:
    """Marked by ``mathperf bless`` in the history, or by a ``blessed`` environment value of an imported run."""
    return summary.blessed or _text(summary.environment.get("blessed")).lower() not in _FALSE


def changes_between(
    before: tuple[RunSummary, ModelSummary], after: tuple[RunSummary, ModelSummary]
) -> list[Change]:
    """Content changes first (they decide whether the line is broken), then environment changes."""
    return _content_changes(before, after) + _environment_changes(before, after)


def _content_changes(
    before: tuple[RunSummary, ModelSummary], after: tuple[RunSummary, ModelSummary]
) -> list[Change]:
    (old_run, old_model), (new_run, new_model) = before, after
    found: list[Change] = []
    old_revision, new_revision = _revision(old_run, old_model), _revision(new_run, new_model)
    if old_revision and new_revision and old_revision != new_revision:
        found.append(Change("content", "revision", old_revision, new_revision,
                            f"model weights changed: {_short(old_revision)} → {_short(new_revision)}"))
    old_counts, new_counts = _case_counts(old_model), _case_counts(new_model)
    old_prints, new_prints = _suite_fingerprints(old_run.environment), _suite_fingerprints(new_run.environment)
    for suite in sorted(set(old_counts) | set(new_counts)):
        old_count, new_count = old_counts.get(suite), new_counts.get(suite)
        if old_count is None:
            found.append(Change("content", f"suite {suite}", "—", f"{new_count} cases", f"suite {suite} added: {new_count} cases", suite))
        elif new_count is None:
            found.append(Change("content", f"suite {suite}", f"{old_count} cases", "—", f"suite {suite} left out (had {old_count} cases)", suite))
        elif old_count != new_count:
            found.append(Change("content", f"suite {suite}", f"{old_count} cases", f"{new_count} cases",
                                f"suite {suite} changed: {old_count} → {new_count} cases", suite))
        elif old_prints.get(suite) and new_prints.get(suite) and old_prints[suite] != new_prints[suite]:
            found.append(Change("content", f"suite {suite}", _short(old_prints[suite]), _short(new_prints[suite]),
                                f"suite {suite} changed: same {new_count} cases, new content", suite))
    if not any(change.suite for change in found) and not (old_prints and new_prints):
        # Without per-suite fingerprints, a change of the suites' whole fingerprint (or commit) is all there is.
        for key in SUITES_KEYS:
            old, new = _text(old_run.environment.get(key)), _text(new_run.environment.get(key))
            if old and new and old != new:
                found.append(Change("content", key, _short(old), _short(new), f"suites changed: {key} {_short(old)} → {_short(new)}"))
                break
    return found


def _environment_changes(
    before: tuple[RunSummary, ModelSummary], after: tuple[RunSummary, ModelSummary]
) -> list[Change]:
    old, new = environment_of(*before), environment_of(*after)
    found = []
    for key in ordered((set(old) | set(new)) - {HOST_BUSY}):  # the neighbours' load is not what the numbers run on
        was, now = old.get(key, ""), new.get(key, "")
        if was != now:
            found.append(Change("environment", key, was or "—", now or "—", f"{key}: {was or '—'} → {now or '—'}"))
    return found


def environment_of(summary: RunSummary, model: ModelSummary) -> dict[str, str]:
    """What a run ran in, for this model: the run's environment with the model's own fields over it.

    Left out: the card (a panel is one card), which run it was, and the suites' content (a
    content change, not an environment one).
    """
    environment = {
        key: _text(value)
        for key, value in summary.environment.items()
        if key != "card" and key not in IDENTITY_KEYS and key not in SUITES_KEYS
        and not key.startswith(SUITE_FINGERPRINT_PREFIX) and not key.startswith(MODEL_REVISION)
    }
    environment = {key: value for key, value in environment.items() if key != HOST_BUSY or value.lower() not in _FALSE}
    for key in MODEL_ENVIRONMENT_FIELDS:
        value = getattr(model.model, key)
        if value is not None:
            environment[key] = str(value)
    return environment


def ordered(keys: set[str]) -> list[str]:
    known = [key for key in ENVIRONMENT_ORDER if key in keys]
    return known + sorted(keys - set(known))


def _revision(summary: RunSummary, model: ModelSummary) -> str:
    environment = summary.environment
    return _text(
        model.model.revision or environment.get(f"{MODEL_REVISION}.{model.model.model}") or environment.get(MODEL_REVISION)
    )


def _case_counts(model: ModelSummary) -> dict[str, int]:
    return {suite: total for suite, (_, total) in model.accuracy.items() if suite != ALL_SUITES}


def _suite_fingerprints(environment: Mapping[str, object]) -> dict[str, str]:
    return {
        key[len(SUITE_FINGERPRINT_PREFIX):]: _text(value)
        for key, value in environment.items()
        if key.startswith(SUITE_FINGERPRINT_PREFIX)
    }


def _short(value: str) -> str:
    """Hashes shortened the way git shows them; anything else as it is."""
    return value[:10] + ("+dirty" if value.endswith("+dirty") else "") if _HASH.fullmatch(value) else value


def _text(value: object) -> str:
    return "" if value is None else str(value)
