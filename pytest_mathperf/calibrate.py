"""``mathperf calibrate``: budgets for this card and model, derived from repeated runs of the gate.

Budgets written by hand from one run and a guess either leave 10x room (and miss a model that got
twice as slow) or flap on noise. Calibration runs the gate itself N times (a subprocess per run,
so each run's memory figures are its own) or reads N recorded runs back from the history, checks
that they were taken on a quiet host in one environment, and derives:

- timing and throughput budgets from the run-to-run spread of the run-level statistic: a
  one-sided normal-theory prediction bound for one future run, ``mean ± t(1-α, n-1)·s·√(1+1/n)``,
  never closer to the mean than a floor margin (identical runs must not give a zero-width budget);
- memory budgets from the highest observed peak plus a margin (memory barely varies run to run,
  so a spread says little; a leak or a larger model moves it by far more than the margin);
- accuracy floors per suite as a prediction bound for the next run: the beta-binomial predictive
  distribution of its count of correct cases, from the accuracy pooled over the runs;
- ``compare:`` margins (asked for with ``--compare``) as ratios from the same spread.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pytest_mathperf.calibrate_yaml import CalibrationFileError, WrittenBound, edit_entry, entry_line
from pytest_mathperf.metrics import METRICS, format_value, wilson_interval
from pytest_mathperf.results import RunRecord, summary_statistic

#: Per-generation budgets calibration writes: metric → statistics (the demo gate's own choice).
GENERATION_BUDGETS: dict[str, tuple[str, ...]] = {"ttft_ms": ("p50", "p95"), "tokens_per_s": ("mean",)}
#: Per-model timing budgets (one value per run).
MODEL_TIMING_BUDGETS: tuple[str, ...] = ("load_s",)
#: Memory budgets: the observed peak plus a margin.
MEMORY_BUDGETS: tuple[str, ...] = ("rss_peak_gb", "vram_peak_gb")
#: What must be equal in every run calibrated from (besides each suite's content fingerprint).
ENVIRONMENT_KEYS: tuple[str, ...] = (
    "card", "device", "driver", "cuda", "backend", "cpu", "torch", "transformers", "math-verify", "pytest-mathperf",
)
#: What must be equal for the model in every run.
MODEL_KEYS: tuple[str, ...] = ("backend", "device", "dtype", "revision", "source")


class CalibrationError(Exception):
    """Calibration cannot honestly go on; the message says why, naming the runs or the file."""


@dataclass(frozen=True)
class CalibrationSettings:
    """The stated error rates and margins every written number is derived with."""

    runs: int = 3
    alpha: float = 0.01  # one-sided false-alarm rate per timing and accuracy budget for one future run
    floor_margin: float = 0.10  # a timing budget is at least this far from the mean
    memory_margin: float = 0.10  # memory budget = observed peak × (1 + margin)
    accuracy_confidence: float = 0.95  # the Wilson interval behind compare: accuracy max_drop
    compare: bool = False
    busy_retries: int | None = None  # gate runs added for runs found busy (None: as many as ``runs``)
    shared_host: bool = False  # a host that is never quiet: busy runs count, their load is in the spread


#: Runs a calibration on a shared host needs: its spread includes the neighbours' load, and few
#: runs would miss how far that reaches.
SHARED_HOST_RUNS = 10


@dataclass(frozen=True)
class CalibratedRun:
    """One run of the model calibrated from: its id in the history and its record."""

    run_id: int
    record: RunRecord


@dataclass(frozen=True)
class Calibration:
    """What was derived for one model, ready to write."""

    card: str
    model: str  # the key in thresholds.yaml (the model's name without a backend prefix)
    bounds: tuple[WrittenBound, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


# -- statistics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictionBound:
    """A one-sided bound one future run's statistic stays within (with probability 1-α if normal)."""

    mean: float
    margin: float  # the distance from the mean, floor included
    floored: bool  # the floor margin, not the spread, decided it

    @property
    def relative(self) -> float:
        return self.margin / self.mean if self.mean else math.inf


def prediction_bound(values: Sequence[float], alpha: float, floor_margin: float) -> PredictionBound:
    """``t(1-α, n-1)·s·√(1+1/n)`` from the mean, at least ``floor_margin`` of the mean."""
    from scipy.stats import t

    n = len(values)
    mean = sum(values) / n
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.inf
    margin = float(t.ppf(1 - alpha, n - 1)) * spread * math.sqrt(1 + 1 / n)
    floor = abs(mean) * floor_margin
    return PredictionBound(mean, max(margin, floor), margin < floor)


def accuracy_floor(correct: int, total: int, cases: int, alpha: float) -> int:
    """The fewest of ``cases`` the next run gets right, but with probability ``alpha``.

    The beta-binomial predictive distribution of the next run's count, from the ``correct`` of
    ``total`` answers pooled over the runs (Jeffreys prior). A confidence bound on the accuracy
    itself would not do: it narrows as runs are added, while the next run's own sampling of its
    ``cases`` does not, so such a floor fails an unchanged model more often the more runs it saw.
    """
    from scipy.stats import betabinom

    return int(betabinom.ppf(alpha, cases, correct + 0.5, total - correct + 0.5))


def round_outward(value: float, *, up: bool, digits: int = 2) -> float:
    """``digits`` significant figures, rounded away from the mean: a max up, a min down."""
    if value == 0 or not math.isfinite(value):
        return value
    exponent = math.floor(math.log10(abs(value))) - digits + 1
    step = 10.0**exponent
    scaled = value / step
    count = math.ceil(scaled - 1e-9) if up else math.floor(scaled + 1e-9)
    return round(count * step, max(0, -exponent))


def floor_share(value: float, step: float = 0.01) -> float:
    """A share rounded down to whole points (0.974 → 0.97)."""
    return round(math.floor(value / step + 1e-9) * step, 2)


def ceil_share(value: float, step: float = 0.01) -> float:
    return round(math.ceil(value / step - 1e-9) * step, 2)


# -- choosing and checking the runs -----------------------------------------------------------


def model_records(run: RunRecord, model: str) -> list:
    return [record for record in run.models if record.model == model]


def matching_runs(history: object, model: str, card: str) -> list[CalibratedRun]:
    """Every complete run of ``model`` on ``card`` that measured cases, oldest first."""
    found = []
    for run_id in history.run_ids(include_incomplete=False):  # type: ignore[attr-defined]
        record = history.run(run_id)  # type: ignore[attr-defined]
        models = model_records(record, model)
        if not models or models[0].load_error or not record.cases_of(model):
            continue
        if (record.environment.get("card") or models[0].card) != card:
            continue
        found.append(CalibratedRun(run_id, record))
    return found


def last_runs(history: object, model: str, card: str, count: int, *, quiet_only: bool = False) -> list[CalibratedRun]:
    """The last ``count`` runs (with ``quiet_only``, of those the gate did not find busy)."""
    runs = matching_runs(history, model, card)
    busy = ""
    if quiet_only:
        quiet = [run for run in runs if not any(m.details.get("host_busy") for m in model_records(run.record, model))]
        busy = f" ({len(runs) - len(quiet)} more were measured on a busy host and left out)" if len(quiet) < len(runs) else ""
        runs = quiet
    if len(runs) < count and quiet_only:
        raise CalibrationError(
            f"{len(runs)} of the gate runs of {model!r} on card {card!r} were quiet{busy}; calibration needs {count} "
            f"(--runs {count}): calibrate when the host is quiet, allow more --busy-retries, or, on a host that is "
            f"never quiet (a shared CI runner), calibrate with --shared-host --runs {SHARED_HOST_RUNS}: the budgets then "
            "include the neighbours' load"
        )
    if len(runs) < count:
        where = getattr(history, "path", history)
        raise CalibrationError(
            f"{where} holds {len(runs)} complete run{'s' if len(runs) != 1 else ''} of {model!r} on card {card!r}; "
            f"calibration needs {count} (--runs {count}): run the gate {count - len(runs)} more time(s), or lower --runs"
        )
    return runs[-count:]


def refuse_busy_or_mixed(runs: Sequence[CalibratedRun], model: str, *, shared_host: bool = False) -> list[str]:
    """A busy host (unless ``shared_host``: then it is part of the spread, and said so) or a changed
    environment makes the spread meaningless: refuse, naming both. Returns the notes to show."""
    busy = []
    for run in runs:
        for record in model_records(run.record, model):
            if record.details.get("host_busy"):
                busy.append(f"run {run.run_id}: {record.details['host_busy']}")
    if busy and not shared_host:
        raise CalibrationError(
            f"the host was busy while {model} was measured, so its timings say nothing about the model: "
            + "; ".join(busy) + f". Calibrate on a quiet host, or, where the host is never quiet, with --shared-host "
            f"--runs {SHARED_HOST_RUNS}."
        )
    differences = []

    def compare(label: str, values: dict[int, str]) -> None:
        if len(set(values.values())) > 1:
            shown = ", ".join(f"run {run_id}: {value or '(none)'}" for run_id, value in values.items())
            differences.append(f"{label} differs ({shown})")

    keys = set(ENVIRONMENT_KEYS) | {
        key for run in runs for key in run.record.environment if key.startswith("suite_fingerprint.")
    }
    for key in sorted(keys):
        compare(key, {run.run_id: str(run.record.environment.get(key, "")) for run in runs})
    for key in MODEL_KEYS:
        compare(f"{model} {key}", {run.run_id: str(getattr(model_records(run.record, model)[0], key) or "") for run in runs})
    if differences:
        raise CalibrationError(
            "the runs disagree on their environment, so their spread mixes two setups: " + "; ".join(differences)
        )
    if not busy:
        return []
    return [f"--shared-host: {len(busy)} of {len(runs)} runs met a busy host; their load is part of the spread the budgets allow"]


# -- deriving the budgets ---------------------------------------------------------------------


def derive(runs: Sequence[CalibratedRun], model: str, name: str, card: str, settings: CalibrationSettings) -> Calibration:
    """Every budget (and, with ``compare``, every margin) the runs support, with where it came from."""
    if len(runs) < 2:
        raise CalibrationError("calibration needs at least 2 runs to see a spread (--runs 2 or more)")
    ids = "/".join(str(run.run_id) for run in runs)
    day = datetime.fromtimestamp(max(run.record.finished_at for run in runs), timezone.utc).strftime("%Y-%m-%d")
    source = f"{len(runs)} runs ({ids}) {day}"
    bounds: list[WrittenBound] = []
    ratios: list[WrittenBound] = []
    notes: list[str] = []

    def timing(path: tuple[str, ...], metric: str, values: list[float]) -> None:
        higher = METRICS[metric].higher_is_better
        bound = prediction_bound(values, settings.alpha, settings.floor_margin)
        raw = bound.mean - bound.margin if higher else bound.mean + bound.margin
        observed = " / ".join(format_value(metric, v, unit=False) for v in values)
        rule = f"floor ±{settings.floor_margin:.0%}" if bound.floored else f"t-bound α={settings.alpha:g}"
        if raw <= 0:
            notes.append(f"{'.'.join(path)}: the runs spread too widely for a lower bound above 0 ({observed}); not written")
            return
        value = round_outward(raw, up=not higher)
        side = "min" if higher else "max"
        bounds.append(WrittenBound((*path, side), value, f"{source}: {observed} {METRICS[metric].unit}; {rule}".strip()))
        if settings.compare:
            relative = bound.relative
            ratio = floor_share(1 - relative) if higher else ceil_share(1 + relative)
            if ratio > 0:
                ratios.append(WrittenBound(("compare", *path, f"{side}_ratio"), ratio, f"{source}: run-to-run ±{relative:.1%}; {rule}"))

    cases_by_run = [run.record.cases_of(model) for run in runs]
    for metric, statistics in GENERATION_BUDGETS.items():
        for stat in statistics:
            # as the gate judges: values resting on an estimated token count are left out by default
            values = [summary_statistic(cases, metric, stat, estimated=False) for cases in cases_by_run]
            if all(value is not None for value in values):
                timing((metric, stat), metric, [float(v) for v in values])  # type: ignore[arg-type]
            elif all(summary_statistic(cases, metric, stat) is not None for cases in cases_by_run):
                notes.append(
                    f"{metric}.{stat}: rests on token counts estimated from stream chunks (the server sent no usage), "
                    "which the gate does not judge by default; not written"
                )
    model_metrics = [model_records(run.record, model)[0].metrics for run in runs]
    for metric in MODEL_TIMING_BUDGETS:
        if all(metric in metrics for metrics in model_metrics):
            timing((metric,), metric, [float(metrics[metric]) for metrics in model_metrics])
    for metric in MEMORY_BUDGETS:
        if all(metric in metrics for metrics in model_metrics):
            values = [float(metrics[metric]) for metrics in model_metrics]
            peak = max(values)
            observed = " / ".join(format_value(metric, v, unit=False) for v in values)
            rule = f"peak +{settings.memory_margin:.0%}"
            bounds.append(WrittenBound((metric, "max"), round_outward(peak * (1 + settings.memory_margin), up=True), f"{source}: {observed} GB; {rule}"))
            if settings.compare:
                ratios.append(WrittenBound(("compare", metric, "max_ratio"), ceil_share(1 + settings.memory_margin), f"{rule} of the baseline's"))
    suites = sorted({case.suite for cases in cases_by_run for case in cases})
    pooled_correct = pooled_total = 0
    for suite in suites:
        passed = [sum(c.passed for c in cases if c.suite == suite) for cases in cases_by_run]
        totals = [sum(1 for c in cases if c.suite == suite) for cases in cases_by_run]
        pooled_correct, pooled_total = pooled_correct + sum(passed), pooled_total + sum(totals)
        per_run = ", ".join(f"{p}/{t}" for p, t in zip(passed, totals))
        cases = min(totals)
        floor = accuracy_floor(sum(passed), sum(totals), cases, settings.alpha)
        bounds.append(
            WrittenBound(
                ("suites", suite, "accuracy", "min"),
                floor_share(floor / cases),
                f"{source}: {per_run} correct; next run ≥ {floor}/{cases} but with α={settings.alpha:g} (beta-binomial)",
            )
        )
    if settings.compare and pooled_total:
        interval = wilson_interval(pooled_correct, pooled_total, settings.accuracy_confidence)
        drop = ceil_share(interval.value - interval.low)
        ratios.append(
            WrittenBound(("compare", "accuracy", "max_drop"), drop, f"{source}: {pooled_correct}/{pooled_total}; Wilson {settings.accuracy_confidence:.0%} half-width below")
        )
    return Calibration(card, name, tuple(bounds + ratios), tuple(notes))


# -- measuring --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateOptions:
    """What each gate run is given: exactly the gate's own options, nothing calibration-specific."""

    suites: tuple[str, ...]
    card: str | None = None
    backend: str | None = None
    endpoint: str | None = None
    device: str | None = None
    dtype: str | None = None
    repeats: int | None = None

    def arguments(self, model: str, history: Path, thresholds: Path) -> list[str]:
        arguments = [
            "-p", "no:cacheprovider", "-q", "--mathperf", "--mathperf-model", model,
            "--mathperf-history", str(history), "--mathperf-thresholds", str(thresholds),
        ]
        for suite in self.suites:
            arguments += ["--mathperf-suites", suite]
        for flag, value in (
            ("--mathperf-card", self.card), ("--mathperf-backend", self.backend), ("--mathperf-endpoint", self.endpoint),
            ("--mathperf-device", self.device), ("--mathperf-dtype", self.dtype), ("--mathperf-repeats", self.repeats),
        ):
            if value is not None:
                arguments += [flag, str(value)]
        return arguments


def measure(
    models: Sequence[str],
    options: GateOptions,
    runs: int,
    history: Path,
    progress: Callable[[str], None],
    max_busy_retries: int | None = None,
    *,
    shared_host: bool = False,
) -> None:
    """Run the gate until ``runs`` quiet runs per model are recorded in ``history``, each in its own process.

    A file holding only ``version: 1`` stands in for thresholds.yaml, so no old budget fails a
    run (and nothing is judged); the gate's measuring, warm-up and recording are untouched. A run
    the gate found busy is said so and run again (at most ``max_busy_retries``, default ``runs``
    more times); the busy run stays in the history, where the check before deriving refuses it.
    With ``shared_host`` a busy run counts like any other: on a host that is never quiet, the
    neighbours' load belongs in the spread the budgets allow.
    """
    from pytest_mathperf.history import History

    retries = runs if max_busy_retries is None else max_busy_retries
    with tempfile.TemporaryDirectory(prefix="mathperf-calibrate-") as scratch:
        thresholds = Path(scratch) / "thresholds.yaml"
        thresholds.write_text("version: 1\n", encoding="utf-8")
        started = time.monotonic()
        for model in models:
            quiet, attempt = 0, 0
            while quiet < runs and attempt < runs + retries:
                attempt += 1
                progress(f"calibrate: run {quiet + 1} of {runs}, {model}, {time.monotonic() - started:.0f} s elapsed")
                command = [sys.executable, "-m", "pytest", *options.arguments(model, history, thresholds)]
                done = subprocess.run(command, capture_output=True, text=True, cwd=Path.cwd())
                if done.returncode not in (0, 1):  # 1: a case failed its answer, still measured and recorded
                    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
                    raise CalibrationError(f"gate run {attempt} of {model} exited {done.returncode}:\n{tail}")
                with History(history) as recorded:
                    record = recorded.latest_run()
                busy = record is not None and any(m.details.get("host_busy") for m in model_records(record, model))
                if busy and not shared_host:
                    reason = "; ".join(m.details["host_busy"] for m in model_records(record, model))  # type: ignore[union-attr]
                    left = runs + retries - attempt
                    then = "running it again" if left and quiet + left >= runs else "too few tries left for enough quiet runs"
                    progress(f"calibrate: that run was on a busy host ({reason}); {then}")
                    if not left or quiet + left < runs:
                        break
                else:
                    quiet += 1
        progress(f"calibrate: done in {time.monotonic() - started:.0f} s")


# -- the command ------------------------------------------------------------------------------


def detected_card(device: str | None, served: bool = False) -> str:
    """The card the gate would match on this machine (``cpu`` without an accelerator), as the runner picks it."""
    from pytest_mathperf.devices import describe_first_card, describe_host_card

    if served:
        return describe_host_card().card  # NVML's card even where torch cannot use CUDA
    if device == "cpu":
        return "cpu"
    return describe_first_card().card


def all_served(models: Sequence[str], backend: str | None) -> bool:
    """Whether every model runs behind a server, so the gate names this host's card as NVML sees it."""
    from pytest_mathperf.backends import backend_class, split_model_spec

    try:
        classes = [backend_class(split_model_spec(model, backend or "hf")[0]) for model in models]
    except ValueError:
        return False  # an unknown backend: the gate run says so
    return not any(getattr(cls, "in_process", False) for cls in classes)


def calibrate_command(
    models: Sequence[str],
    options: GateOptions,
    settings: CalibrationSettings,
    thresholds: Path,
    history_location: str,
    *,
    from_history: bool,
    update: bool,
    dry_run: bool,
    out: Callable[[str], None] = print,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> int:
    """Measure (or read), derive, show the diff and write: 0 when written, 1 when refused."""
    from pytest_mathperf.backends import split_model_spec
    from pytest_mathperf.history import History, HistoryError

    card = options.card or detected_card(options.device, all_served(models, options.backend))
    scratch = None
    try:
        if not update:
            for model in models:
                name = split_model_spec(model, options.backend or "hf")[1]
                line = entry_line(thresholds, card, name)
                if line is not None:  # say so before spending minutes measuring
                    raise CalibrationFileError(
                        f"{thresholds}:{line}: card {card!r} already has an entry for {name!r}; "
                        "pass --update to replace it (the diff is printed first)"
                    )
        if from_history:
            location: str | Path = history_location
        else:
            scratch = tempfile.TemporaryDirectory(prefix="mathperf-calibrate-history-")
            location = Path(scratch.name) / "history.db"
            measure(models, options, settings.runs, location, progress, settings.busy_retries,
                    shared_host=settings.shared_host)
        calibrations = []
        with History(location) as history:
            for model in models:
                runs = last_runs(history, model, card, settings.runs, quiet_only=not from_history and not settings.shared_host)
                for note in refuse_busy_or_mixed(runs, model, shared_host=settings.shared_host):
                    progress(f"calibrate: {note}")
                name = split_model_spec(model, options.backend or "hf")[1]
                calibrations.append(derive(runs, model, name, card, settings))
        for calibration in calibrations:
            edit = edit_entry(thresholds, card, calibration.model, calibration.bounds, update=update)
            for note in calibration.notes:
                progress(f"calibrate: {note}")
            out(edit.diff.rstrip("\n"))
            if not dry_run:
                thresholds.write_text(edit.after, encoding="utf-8")
        if dry_run:
            out(f"calibrate: --dry-run, {thresholds} left as it was")
        else:
            written = ", ".join(c.model for c in calibrations)
            out(f"calibrate: wrote budgets for card {card!r}, {written}, into {thresholds}")
        return 0
    except (CalibrationError, CalibrationFileError, HistoryError) as error:
        print(f"mathperf calibrate: {error}", file=sys.stderr)
        return 1
    finally:
        if scratch is not None:
            scratch.cleanup()
