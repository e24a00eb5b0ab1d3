"""The pytest11 entry point: options, collection, item order, JUnit properties and the summary.

Hooks stay thin and delegate: the nodes live in ``items``, the measuring in ``runner``, and
suites, thresholds, answers, backends, history and reports each in their own module. Nothing
heavy is imported here, so a plain ``pytest`` run without ``--mathperf`` pays nothing for the
plugin being installed.
"""

from __future__ import annotations

import atexit
import functools
import gc
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_mathperf.items import (
    CaseItem,
    LoadItem,
    MathperfItem,
    SuiteFile,
    arrange_items,
    reads_inconclusive,
    suites_per_model,
)
from pytest_mathperf.state import STATE, GateState, Settings

if TYPE_CHECKING:
    from pytest_mathperf.history import HistoryLocation
    from pytest_mathperf.results import RunRecord

DEFAULT_THRESHOLDS = "thresholds.yaml"
DEFAULT_SUITES = "suites"
DEFAULT_HISTORY = ".mathperf/history.db"
DTYPES = ("auto", "float16", "bfloat16", "float32")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
#: The session's exit status when the gate had nothing else to fail but a requested output (HTML, Markdown) was not written.
EXIT_OUTPUT_NOT_WRITTEN = 7


@dataclass(frozen=True)
class Option:
    """One setting, declared once: its command-line flag, its ini name and what values it takes."""

    name: str  # the ini name and the argparse dest
    flag: str
    help: str
    ini_type: str = "string"  # string | bool | linelist (pytest's ini types)
    default: Any = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    action: str | None = None  # store_true | append
    ini: bool = True  # False for flags that make no sense in a config file


OPTIONS: tuple[Option, ...] = (
    Option("mathperf", "--mathperf", "turn the gate on; without it nothing is collected or loaded", "bool", False, action="store_true"),
    Option("mathperf_models", "--mathperf-model", "model under test (HF id from the local cache, a folder, or mathperf-tiny); repeatable, the first is the baseline", "linelist", [], "M", action="append"),
    Option("mathperf_backend", "--mathperf-backend", "hf (default) or openai, or a backend registered under the pytest_mathperf.backends entry points or by a pytest_mathperf_backends hook", default="hf", metavar="NAME"),
    Option("mathperf_endpoint", "--mathperf-endpoint", "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (key from MATHPERF_API_KEY or OPENAI_API_KEY)", metavar="URL"),
    Option("mathperf_retries", "--mathperf-retries", "a served model's requests that fail before their first byte (connection error, HTTP 429 or 5xx) are tried again this many times, after 0.5 s doubling or the server's Retry-After (default 3; 0: fail at once)", default="3", metavar="N"),
    Option("mathperf_device", "--mathperf-device", "auto | cpu | cuda | cuda:N", default="auto", metavar="DEV"),
    Option("mathperf_dtype", "--mathperf-dtype", " | ".join(DTYPES), default="auto", metavar="DTYPE", choices=DTYPES),
    Option("mathperf_thresholds", "--mathperf-thresholds", f"budgets file (default {DEFAULT_THRESHOLDS})", default=DEFAULT_THRESHOLDS, metavar="PATH"),
    Option("mathperf_suites", "--mathperf-suites", f"suite file or folder; repeatable (default {DEFAULT_SUITES})", "linelist", [DEFAULT_SUITES], "PATH", action="append"),
    Option("mathperf_repeats", "--mathperf-repeats", "repeats per case, overriding the suites", metavar="N"),
    Option("mathperf_warmup", "--mathperf-warmup", "warm-up generations per model (default 1), never counted", default="1", metavar="N"),
    Option("mathperf_warmup_tokens", "--mathperf-warmup-tokens", "max_new_tokens of each warm-up generation (default: the longest case's, so long-sequence kernels and memory pools are warm)", metavar="N"),
    Option("mathperf_card", "--mathperf-card", "card name to match in thresholds.yaml instead of the detected one", metavar="NAME"),
    Option("mathperf_history", "--mathperf-history", f"SQLite run history (default {DEFAULT_HISTORY})", default=DEFAULT_HISTORY, metavar="PATH"),
    Option("mathperf_no_history", "--mathperf-no-history", "do not record this run", "bool", False, action="store_true", ini=False),
    Option("mathperf_html", "--mathperf-html", "write the HTML trend report here at the end of the session", metavar="PATH"),
    Option("mathperf_markdown", "--mathperf-markdown", "write the gate's verdict as Markdown here (a PR comment, a GitLab artifact); also appended to $GITHUB_STEP_SUMMARY when that is set", metavar="PATH"),
    Option("mathperf_baseline", "--mathperf-baseline", "the model the others are compared with (default: the first --mathperf-model), or `blessed`: each model's run that `mathperf bless` marked in the history", metavar="MODEL"),
    Option("mathperf_label", "--mathperf-label", "a label for this run in the history and the report (e.g. the candidate's name)", metavar="TEXT"),
    Option("mathperf_busy_guard", "--mathperf-busy-guard", "on (default): a timing verdict that would fail on a busy host is inconclusive instead; off: judge it anyway", default="on", metavar="on|off", choices=("on", "off")),
    Option("mathperf_schedule", "--mathperf-schedule", "interleaved (default): with several models, each repeat of a case is generated by every model back to back, in a seeded random order; turns: each model's cases one model after the other", default="interleaved", metavar="interleaved|turns", choices=("interleaved", "turns")),
    Option("mathperf_allow_estimated_counts", "--mathperf-allow-estimated-counts", "let budgets on tokens/s, TPOT and token counts take values whose token count is an estimate (a server that sends no usage)", "bool", False, action="store_true"),
    Option("mathperf_model_mismatch", "--mathperf-model-mismatch", "warn (default): a served answer whose stream names another model is recorded and reported; fail: it is an error verdict", default="warn", metavar="warn|fail", choices=("warn", "fail")),
    Option("mathperf_shard", "--mathperf-shard", "run only shard K of N of the cases (every model), e.g. 2/3; budgets and comparisons are then judged over all shards by `mathperf judge`", metavar="K/N"),
    Option("mathperf_run_group", "--mathperf-run-group", "the sharded gate this shard belongs to (default: the CI run: GITHUB_RUN_ID, CI_PIPELINE_ID or BUILDKITE_BUILD_ID)", metavar="ID"),
    Option("mathperf_concurrency", "--mathperf-concurrency", "the answer pass keeps up to N generations in flight (batched in-process, N streams over HTTP); timings stay those of the batch-1 latency sample (default 1: every generation alone)", default="1", metavar="N"),
    Option("mathperf_latency_repeats", "--mathperf-latency-repeats", "with --mathperf-concurrency above 1: the first N repeats of each case are measured alone at batch 1 (default: the suite's latency.repeats, else 1)", metavar="N"),
    Option("mathperf_latency_tokens", "--mathperf-latency-tokens", "max_new_tokens of a latency-sample generation (default: the suite's latency.max_new_tokens, else 256; 0: the case's own); one cut short is generated again whole for its answer", metavar="N"),
    Option("mathperf_stop_early", "--mathperf-stop-early", "stop adding repeats of a case once its pass rule is decided (its verdict cannot change)", "bool", False, action="store_true"),
    Option("mathperf_server_pid", "--mathperf-server-pid", "the served model's process, whose CPU and memory a load profile samples (default: the process listening on the endpoint's port, when it is on this host)", metavar="PID"),
    Option("mathperf_strict", "--mathperf-strict", "every wrong answer fails its case, even where an accuracy budget applies", "bool", False, action="store_true"),
)


@pytest.hookimpl
def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_mathperf import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mathperf", "math-reasoning model gate (pytest-mathperf)")
    for option in OPTIONS:
        # default=None on the command line, so that "not given" falls through to the ini value
        extra: dict[str, Any] = {"metavar": option.metavar} if option.metavar else {}
        if option.action:
            extra["action"] = option.action
        group.addoption(option.flag, dest=option.name, default=None, help=option.help, **extra)
        if option.ini:
            parser.addini(option.name, option.help, type=option.ini_type, default=option.default)  # type: ignore[arg-type]


def _baseline(given: str | None, models: list[str]) -> str:
    """The baseline model: the one named, which must be under test, or the first model."""
    if not given:
        return models[0]
    if given == "blessed":
        return given
    if given not in models:
        raise pytest.UsageError(f"--mathperf-baseline {given!r} is not one of the models under test: {', '.join(models)}")
    return given


def _blessed_runs(settings: Settings, runner: Any) -> dict[str, tuple[tuple[int, Any], ...]]:
    """Each model's blessed runs on this card, read once at start: none is a usage error now, not later."""
    from pytest_mathperf.history import History, HistoryError

    if settings.history is None:
        raise pytest.UsageError("--mathperf-baseline blessed reads the history: drop --mathperf-no-history")
    found = {}
    try:
        with History(settings.history) as history:
            for model in settings.models:
                blessed = history.blessed_runs(runner.card, model)
                if not blessed:
                    raise pytest.UsageError(
                        f"--mathperf-baseline blessed: no blessed run of {model} on {runner.card!r} in {history.path}; "
                        "mark three with `mathperf bless RUN RUN RUN`"
                    )
                found[model] = blessed
    except HistoryError as error:
        raise pytest.UsageError(f"--mathperf-baseline blessed: {error}") from None
    return found


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("mathperf") or config.getini("mathperf"))


def _read_settings(config: pytest.Config) -> Settings:
    """Command line over ini; relative ini paths are relative to the ini file."""
    invocation = config.invocation_params.dir
    ini_base = config.inipath.parent if config.inipath else invocation

    def value(name: str) -> tuple[Any, Path]:
        given = config.getoption(name)
        if given is not None:
            return given, invocation
        try:
            return config.getini(name), ini_base
        except (ValueError, pytest.UsageError) as error:  # "invalid truth value 'maybe'" names neither option nor file
            raise pytest.UsageError(f"ini option {name} in {config.inipath}: {error}") from None

    def named(name: str) -> str:  # where a value came from, as an error names it
        return "--" + name.replace("_", "-") if config.getoption(name) is not None else f"ini option {name}"

    def choice(name: str, allowed: str, valid: bool) -> str:
        chosen, _ = value(name)
        if not valid:
            raise pytest.UsageError(f"{named(name)}: {chosen!r} is not one of {allowed}")
        return chosen

    def integer(name: str, minimum: int) -> int | None:
        raw, _ = value(name)
        if raw in (None, ""):
            return None
        option = named(name)
        try:
            number = int(raw)
        except ValueError:
            raise pytest.UsageError(f"{option}: expected a whole number, got {raw!r}") from None
        if number < minimum:
            raise pytest.UsageError(f"{option}: must be at least {minimum}, got {number}")
        return number

    models, _ = value("mathperf_models")
    if not models:
        raise pytest.UsageError("--mathperf needs a model: --mathperf-model mathperf-tiny (or mathperf_models in the ini file)")
    if any(not str(model).strip() for model in models):  # an unset CI variable, say
        raise pytest.UsageError("--mathperf-model: an empty model name; give an HF id, a folder or mathperf-tiny")
    backend, _ = value("mathperf_backend")
    endpoint, _ = value("mathperf_endpoint")
    if not endpoint and (backend == "openai" or any(str(model).startswith("openai:") for model in models)):
        raise pytest.UsageError("--mathperf-backend openai needs --mathperf-endpoint URL (e.g. http://127.0.0.1:8000/v1)")
    thresholds, thresholds_base = value("mathperf_thresholds")
    suites, suites_base = value("mathperf_suites")
    history, history_base = value("mathperf_history")
    html, html_base = value("mathperf_html")
    markdown, markdown_base = value("mathperf_markdown")
    strict, _ = value("mathperf_strict")
    from pytest_mathperf.shard_gate import shard_setting

    shard, run_group = shard_setting(value("mathperf_shard")[0], value("mathperf_run_group")[0], named)

    from pytest_mathperf.answer_pass import PassSettings
    return Settings(
        models=tuple(dict.fromkeys(models)),
        backend=backend,
        endpoint=endpoint or None,
        retries=_default(integer("mathperf_retries", 0), 3),
        device=choice("mathperf_device", "auto | cpu | cuda | cuda:N", bool(DEVICE_PATTERN.match(str(value("mathperf_device")[0])))),
        dtype=choice("mathperf_dtype", " | ".join(DTYPES), value("mathperf_dtype")[0] in DTYPES),
        thresholds=thresholds_base / thresholds,
        thresholds_explicit=config.getoption("mathperf_thresholds") is not None
        or thresholds != DEFAULT_THRESHOLDS,
        suites=tuple((suites_base / path).resolve() for path in suites),
        repeats=integer("mathperf_repeats", 1),
        warmup=integer("mathperf_warmup", 0) or 0,
        warmup_tokens=integer("mathperf_warmup_tokens", 1),
        card=value("mathperf_card")[0] or None,
        history=None if config.getoption("mathperf_no_history") else _history_location(history, history_base),
        html=html_base / html if html else None,
        markdown=markdown_base / markdown if markdown else None,
        strict=bool(strict),
        label=value("mathperf_label")[0] or None,
        allow_estimated_counts=bool(value("mathperf_allow_estimated_counts")[0]),
        server_pid=integer("mathperf_server_pid", 1),
        answer_pass=PassSettings(
            concurrency=_default(integer("mathperf_concurrency", 1), 1),
            latency_repeats=integer("mathperf_latency_repeats", 1),
            latency_tokens=integer("mathperf_latency_tokens", 0),
            stop_early=bool(value("mathperf_stop_early")[0]),
        ),
        baseline=_baseline(value("mathperf_baseline")[0], models),
        busy_guard=choice("mathperf_busy_guard", "on | off", value("mathperf_busy_guard")[0] in ("on", "off")) == "on",
        fail_on_model_mismatch=choice("mathperf_model_mismatch", "warn | fail", value("mathperf_model_mismatch")[0] in ("warn", "fail")) == "fail",
        interleave=choice("mathperf_schedule", "interleaved | turns", value("mathperf_schedule")[0] in ("interleaved", "turns"))
        == "interleaved",
        shard=shard,
        run_group=run_group,
    )


def _history_location(value: str, base: Path) -> HistoryLocation:
    """A file path (relative to ``base``) or a ``postgresql://`` URL, refused when the URL holds a password."""
    from pytest_mathperf.history import HistoryError, parse_location

    try:
        return parse_location(str(value), base)
    except HistoryError as error:
        raise pytest.UsageError(f"--mathperf-history: {error}") from None


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if not _enabled(config):
        return
    _keep_the_collector_away()
    from pytest_mathperf.runner import Runner, RunOptions
    from pytest_mathperf.thresholds import load_thresholds
    from pytest_mathperf.yamlfile import SchemaError

    settings = _read_settings(config)
    from pytest_mathperf.backends import backend_names, use_hook_backends

    try:
        use_hook_backends({name: cls for found in config.hook.pytest_mathperf_backends() for name, cls in found.items()})
    except ValueError as error:
        raise pytest.UsageError(f"pytest_mathperf_backends: {error}") from None
    if settings.backend not in backend_names():
        raise pytest.UsageError(
            f"--mathperf-backend {settings.backend!r}: unknown; available: {', '.join(backend_names())}"
        )
    thresholds = None
    if settings.thresholds.is_file():
        try:
            thresholds = load_thresholds(settings.thresholds)
        except SchemaError as error:
            raise pytest.UsageError(f"thresholds: {error}") from None
    elif settings.thresholds_explicit:
        raise pytest.UsageError(f"--mathperf-thresholds: {settings.thresholds} does not exist")
    options = RunOptions(
        models=settings.models,
        backend=settings.backend,
        device=settings.device,
        dtype=settings.dtype,
        endpoint=settings.endpoint,
        retries=settings.retries,
        repeats=settings.repeats,
        warmup=settings.warmup,
        card=settings.card,
        busy_guard=settings.busy_guard,
        warmup_tokens=settings.warmup_tokens,
        allow_estimated_counts=settings.allow_estimated_counts,
        interleave=settings.interleave and not getattr(config.option, "numprocesses", None),
        fail_on_model_mismatch=settings.fail_on_model_mismatch,
        answer_pass=settings.answer_pass,
        server_pid=settings.server_pid,
    )
    from pytest_mathperf.replay import REPLAY

    replay = config.stash.get(REPLAY, None)  # `mathperf judge`: the shards' records instead of a model
    runner = replay.runner(options) if replay is not None else Runner(options)
    # pytest-xdist registers this marker itself; without xdist installed it must still be known.
    config.addinivalue_line("markers", "xdist_group(name): keeps a model's items on one xdist worker")
    state = GateState(
        settings=settings, runner=runner, thresholds=thresholds, xdist_workers=getattr(config.option, "numprocesses", None) or 0
    )
    config.stash[STATE] = state
    if replay is not None:
        state.share = replay.share
    if settings.shard is not None:
        from pytest_mathperf.shard_gate import check_shardable
        from pytest_mathperf.sharding import Shard

        assert settings.run_group is not None
        state.shard = Shard(*settings.shard, settings.run_group)
        check_shardable(state)
    config.pluginmanager.register(ItemArranger(state), "mathperf-arranger")
    if config.pluginmanager.hasplugin("html"):  # pytest-html is optional: its columns only when it is there
        from pytest_mathperf.pytest_html import PytestHtmlColumns

        config.pluginmanager.register(PytestHtmlColumns(), "mathperf-pytest-html")
    if not hasattr(config, "workerinput"):
        recorder = GateRecorder(state, config)
        recorder.check_outputs()  # before any time is spent: the run must have somewhere to go
        config.pluginmanager.register(recorder, "mathperf-recorder")
        recorder.choose_surfaces(config)
    # A broken suite is one collection error; the other suites still run.
    config.option.continue_on_collection_errors = True
    if config.args_source != pytest.Config.ArgsSource.ARGS:  # no paths given: collect the suites
        for missing in (path for path in settings.suites if not path.exists()):
            raise pytest.UsageError(f"--mathperf-suites: {missing} does not exist")
        config.args = [str(path) for path in settings.suites]
    if getattr(config.option, "numprocesses", None):
        if thresholds is not None and thresholds.cards:
            raise pytest.UsageError(
                f"mathperf: budgets from {thresholds.path} need one process: pytest-xdist workers share the "
                "device and split the samples, so run the gate with -n 0; to check answers only in parallel, "
                "point --mathperf-thresholds at a file that holds just `version: 1`"
            )
        config.issue_config_time_warning(
            pytest.PytestWarning(
                "mathperf: with pytest-xdist the workers share the device, so the latency, throughput and "
                "memory figures are not honest and per-case budgets are not judged; answers are still checked"
            ),
            stacklevel=2,
        )
    try:
        runner.card  # noqa: B018 - fail here, as a usage error, on a device that cannot be used
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    if settings.baseline == "blessed":
        state.blessed.update(_blessed_runs(settings, runner))


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        state.runner.close()  # the last model stays frozen: see _keep_the_collector_away


def _keep_the_collector_away() -> None:
    """The runner freezes each loaded model (``gc.freeze``) and leaves the last one frozen, so
    that pytest's end-of-session collections skip it. An earlier session in this process
    (pytester, a benchmark) may have left its model so: thawed, it is collectable again. And as
    the interpreter exits, everything is frozen: its last collection would otherwise traverse
    the model, torch and sympy (0.6 s of a demo gate) only for the OS to free them."""
    from pytest_mathperf.runner import thaw_earlier_sessions

    thaw_earlier_sessions()
    _freeze_at_exit()


@functools.cache
def _freeze_at_exit() -> None:
    atexit.register(gc.freeze)  # once per process, however many sessions it runs


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(STATE, None)
    if state is None:
        return None
    # From the packages' metadata, not by importing them: a served model's gate and xdist workers never need torch.
    from importlib.metadata import version

    settings = state.settings
    card = state.runner.card
    thresholds = str(settings.thresholds) if state.thresholds else "none (every wrong answer fails its case)"
    return [
        f"mathperf: models {', '.join(settings.models)} · backend {settings.backend}"
        + (f" · endpoint {settings.endpoint}" if settings.endpoint else "")
        + f" · device {state.runner.device_info.device} · dtype {settings.dtype}",
        f"mathperf: card {card!r} · thresholds {thresholds} · torch {version('torch')} · transformers {version('transformers')}",
    ]


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    """An inconclusive budget reads ``i`` / INCONCLUSIVE; it stays a skip to pytest's counts, JUnit and xdist."""
    if config.stash.get(STATE, None) is not None and report.when == "call" and reads_inconclusive(report):
        return "skipped", "i", "INCONCLUSIVE"
    return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    state = parent.config.stash.get(STATE, None)
    if state is None:
        return None
    from pytest_mathperf.suite import is_suite_file

    if not is_suite_file(file_path) or file_path.resolve() == state.settings.thresholds.resolve():
        return None
    resolved = file_path.resolve()
    if not any(resolved == root or root in resolved.parents for root in state.settings.suites):
        return None
    return SuiteFile.from_parent(parent, path=file_path)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    payload = getattr(item, "mathperf_payload", None)
    if payload is not None and call.when == "call":
        report.mathperf = payload  # plain JSON-able data: travels from xdist workers with the report
    if isinstance(item, MathperfItem):
        report.mathperf_gate_item = True  # its outcome is counted in the run's verdicts
    if report.skipped and isinstance(report.longrepr, tuple) and isinstance(item, MathperfItem):
        # a skip raised while judging points at the case or budget in its YAML, not into the plugin
        path, line, _ = item.location
        report.longrepr = (path, (line or 0) + 1, report.longrepr[2])
    return report


class ItemArranger:
    """Makes the budget items and orders the gate's items, after every other selection.

    Registered in ``pytest_configure`` after pytest's cache plugin, so this wrapper runs outside
    its ``--lf``/``--ff`` wrapper and sees the final selection.
    """

    def __init__(self, state: GateState) -> None:
        self.state = state

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
        collected = list(items)  # before -k, -m and --lf narrow it
        result = yield
        state, selected = self.state, list(items)
        if state.shard is not None and not hasattr(config, "workerinput"):
            from pytest_mathperf.shard_gate import claim_share

            state.share = claim_share(state, state.shard, selected)
        if state.share is not None:
            from pytest_mathperf.shard_gate import keep_share

            selected = keep_share(config, selected, state.share)
        arranged = arrange_items(session, state, collected, selected, _last_failed(config))
        if state.shard is not None:
            from pytest_mathperf.shard_gate import group_summary, leave_to_group

            arranged, left = leave_to_group(arranged)
            state.messages.append(group_summary(state, left))
        chosen = {id(item) for item in selected}
        self.state.added_items = sum(1 for item in arranged if id(item) not in chosen)
        items[:] = arranged
        return result

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """A shard left without cases (more shards than cases) has done its part: not a failure."""
        if self.state.shard is not None and self.state.share == frozenset() and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """pytest counts what its collectors found; the budget and comparison items are made after selection, so say so."""
    state = config.stash.get(STATE, None)
    if state is None:
        return []
    lines = suites_per_model(state, items)
    if state.added_items:
        added = state.added_items
        lines.append(f"mathperf: {added} budget and comparison item{'s' if added != 1 else ''} added after selection: {len(items)} items to run")
    return lines


@pytest.hookimpl(trylast=True)
def pytest_mathperf_output_surfaces(config: pytest.Config) -> list[Any]:
    from pytest_mathperf.outputs.session import builtin_surfaces

    return builtin_surfaces(config.stash[STATE])


def _last_failed(config: pytest.Config) -> set[str]:
    """Node ids that failed last time, when ``--lf`` asks for them to run again."""
    if not config.getoption("lf", False) or getattr(config, "cache", None) is None:
        return set()
    return set(config.cache.get("cache/lastfailed", {}))


class GateRecorder:
    """Collects what the reports carry, records the run as it goes and, at the end, records and shows it.

    Runs on the controller (or the only process): under xdist, workers measure and the records
    reach this object through the reports, so history and HTML are written exactly once.
    """

    def __init__(self, state: GateState, config: pytest.Config) -> None:
        from pytest_mathperf.history.recording import RunRecorder

        self.state = state
        self.config = config
        self.recorder = RunRecorder(state.settings.history) if state.settings.history is not None else None
        self._environment: dict[str, str] | None = None
        self.finished: set[str] = set()  # node ids of the items that ran
        self.surfaces: list[Any] = []

    def choose_surfaces(self, config: pytest.Config) -> None:
        """The output surfaces of this session; one that also implements pytest hooks (the terminal's) is registered."""
        from pytest_mathperf.outputs import chosen_surfaces

        self.surfaces = chosen_surfaces(config.hook.pytest_mathperf_output_surfaces(config=config))
        for surface in self.surfaces:
            if any(name.startswith("pytest_") for name in dir(surface)):
                config.pluginmanager.register(surface, f"mathperf-surface-{surface.name}")

    def check_outputs(self) -> None:
        """Refuse to start when the history or the report cannot be written, or would replace what the
        run reads or keeps (the history, the budgets, a suite), before any GPU time is spent."""
        from pytest_mathperf.history import HistoryError
        from pytest_mathperf.history.recording import ensure_writable_file

        outputs = (("--mathperf-html", self.state.settings.html), ("--mathperf-markdown", self.state.settings.markdown))
        junit = getattr(self.config.option, "xmlpath", None)  # pytest's own output, refused here the same way
        for option, path in (*outputs, ("--junitxml", Path(junit) if junit else None)):
            taken = self.state.settings.replaced_by(path) if path is not None else None
            if taken is not None:
                raise pytest.UsageError(f"{option}: {path} is {taken}; writing the output there would replace it")
        html, markdown = (path.resolve() if path is not None else None for _, path in outputs)
        if html is not None and html == markdown:
            raise pytest.UsageError(f"--mathperf-markdown: {self.state.settings.markdown} is also the HTML report's file")
        if self.recorder is not None:
            try:
                self.recorder.ensure_writable()
            except HistoryError as error:
                raise pytest.UsageError(f"--mathperf-history: {error}") from None
        for option, path in outputs:
            if path is None:
                continue
            try:
                ensure_writable_file(path)
            except OSError as error:
                raise pytest.UsageError(f"{option}: {path} cannot be written: {error.strerror or error}") from None

    def environment(self) -> dict[str, str]:
        """Where and from what the run came; read once (it runs git), when the items are known."""
        if self._environment is None:
            from pytest_mathperf.context import run_context
            from pytest_mathperf.devices import environment_fingerprint

            state, settings = self.state, self.state.settings
            environment = environment_fingerprint(state.runner.device_info, settings.backend, settings.suites)
            environment.update(run_context(settings.label, settings.suites[0] if settings.suites else Path.cwd()))
            for name, (fingerprint, _) in sorted(state.suite_fingerprints.items()):
                environment[f"suite_fingerprint.{name}"] = fingerprint
            if state.shard is not None:
                from pytest_mathperf.shard_gate import shard_environment

                environment.update(shard_environment(state))
            if state.xdist_workers:
                environment["timings_comparable"] = f"no: {state.xdist_workers} pytest-xdist workers shared the device"
            self._environment = environment
        return self._environment

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Begin the run's record once the items are known, so a run killed while loading leaves a trace."""
        if self.recorder is not None and not session.config.option.collectonly:
            if any(isinstance(item, (CaseItem, LoadItem)) for item in session.items):
                self.recorder.begin(self.state.started_at, self.environment)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.state.collection_errors += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if getattr(report, "mathperf_gate_item", False):
            self.state.note_outcome(report)
        payload = getattr(report, "mathperf", None)
        if payload is None or report.when != "call":
            return
        from pytest_mathperf.results import BudgetRecord, CaseRecord, ComparisonRecord, ModelRecord

        if "unjudged" in payload:  # a budget that could not be judged: nothing measured to record
            self.state.unjudged_budgets[report.nodeid] = payload["unjudged"]
            return
        model = ModelRecord.from_dict(payload["model"])
        self.state.models[model.model] = model
        if self.recorder is not None:
            self.recorder.begin(self.state.started_at, self.environment)  # under xdist nothing was collected here
        if "case" in payload:
            case = self.state.cases[report.nodeid] = CaseRecord.from_dict(payload["case"])
            if self.recorder is not None:
                self.recorder.case(case, model)
        if "comparison" in payload:
            self.state.comparisons[report.nodeid] = ComparisonRecord.from_dict(payload["comparison"])
        for extended in payload.get("extended", ()):  # cases `inconclusive: more` added repeats to
            case, case_model = CaseRecord.from_dict(extended["case"]), ModelRecord.from_dict(extended["model"])
            if case.nodeid:  # the run's final write replaces the record taken on the way
                self.state.cases[case.nodeid] = case
                self.state.models[case_model.model] = case_model
        if "budget" in payload:
            budget = self.state.budget_records[report.nodeid] = BudgetRecord.from_dict(payload["budget"])
            if self.recorder is not None:
                self.recorder.budget(budget)

    def final_environment(self) -> dict[str, str]:
        """The environment with what only the end knows: whether the host was busy while measuring."""
        busy = [f"{record.model}: {record.details['host_busy']}" for record in self.state.models.values() if record.details.get("host_busy")]
        return {**self.environment(), **({"host_busy": "; ".join(busy)} if busy else {})}

    def run_record(self) -> RunRecord:
        from pytest_mathperf.results import RunRecord

        state = self.state
        order = {model: index for index, model in enumerate(state.settings.models)}
        return RunRecord(
            started_at=state.started_at,
            finished_at=time.time(),
            environment=self.final_environment(),
            models=tuple(sorted(state.models.values(), key=lambda record: order.get(record.model, 0))),
            cases=tuple(state.cases.values()),
            budgets=tuple(state.budget_records.values()),
            comparisons=tuple(state.comparisons.values()),
        )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Record the run and write the report, whatever happened to the session.

        A run the history did not take fails the session (exit status 6 where it would have
        passed); the run is then in a side file for ``mathperf history import``.
        """
        state = self.state
        if not state.models:
            if self.recorder is not None:
                self.recorder.close()  # a run begun but with nothing measured stays marked incomplete
            self.check_anything_ran(session)
            return
        self.check_something_was_judged(session)
        for record in state.models.values():
            if record.details.get("served_model_mismatch"):
                state.messages.append(f"mathperf: {record.model}: {record.details['served_model_mismatch']}")
        run = self.run_record()
        if self.recorder is not None:
            from pytest_mathperf.history.recording import EXIT_RUN_NOT_RECORDED

            state.messages.extend(self.recorder.finish(run, partial=self.why_partial(session)))
            if not self.recorder.recorded and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = EXIT_RUN_NOT_RECORDED
        from pytest_mathperf.outputs import publish_all
        from pytest_mathperf.outputs.session import session_view

        uid = self.recorder.uid if self.recorder is not None and self.recorder.recorded else ""
        state.view = session_view(state, run, session, uid)

        lines, failed = publish_all(self.surfaces, state.view)
        state.messages.extend(lines)
        if failed:  # an output the user asked for is missing: the run says so in its exit status
            self.output_not_written(session)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.finished.add(nodeid)

    def why_partial(self, session: pytest.Session) -> str | None:
        """Why the run did not execute every selected item (-x, --maxfail, --sw, Ctrl-C), or None for a whole run;
        a partial run stays out of trends, calibration and blessing."""
        # under xdist the controller holds no items; its stop flags still say when the run ended early
        missing = len({item.nodeid for item in session.items} - self.finished)
        if session.exitstatus == pytest.ExitCode.INTERRUPTED:
            why = "the session was interrupted"
        elif session.shouldfail or session.shouldstop or missing:
            why = f"the session stopped early ({session.shouldfail or session.shouldstop or 'stopped'})"
        else:
            return None
        return why + (f", {missing} of {len(session.items)} selected items not run" if missing else "")

    def check_something_was_judged(self, session: pytest.Session) -> None:
        """Apply the no_budget policy to a model whose every applied budget turned out unjudgeable."""
        from pytest_mathperf.judge import NO_BUDGET_EFFECT, judged_by_nothing

        state = self.state
        if state.shard is not None:  # a shard judges no budget: the group's judge applies the policy
            return
        effect = NO_BUDGET_EFFECT[state.plan.policy]
        unjudged = judged_by_nothing(
            state.plan, state.budget_records.values(), state.unjudged_budgets.values(), state.comparisons.values()
        )
        for model, reasons in unjudged.items():
            state.messages.append(
                f"mathperf: NO budget judged {model} ({effect}): every budget applied to it could not be judged: "
                + "; ".join(reasons)
            )
        if unjudged and state.plan.policy == "fail":
            state.gate_failures.append(f"no budget judged {', '.join(unjudged)} (no_budget: fail)")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def check_anything_ran(self, session: pytest.Session) -> None:
        """A session whose cases all skipped judged nothing: it meets the no_budget policy as a model with no budget does."""
        from pytest_mathperf.judge import NO_BUDGET_EFFECT

        state = self.state
        if session.exitstatus != pytest.ExitCode.OK or not session.testscollected or state.plan.policy == "record":
            return
        state.messages.append(
            f"mathperf: NOTHING judged ({NO_BUDGET_EFFECT[state.plan.policy]}): no case ran (every selected case was skipped)"
        )
        if state.plan.policy == "fail":
            state.gate_failures.append("no case ran (no_budget: fail)")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @staticmethod
    def output_not_written(session: pytest.Session) -> None:
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = EXIT_OUTPUT_NOT_WRITTEN
