"""Runs cases on models: warm-up first, every repeat measured, models interleaved where they fit.

This is where the gate's measuring happens, kept out of the pytest hooks: the plugin asks for a
case × model and gets back a ``CaseRecord``; budgets ask for the samples they judge. With several
models the first item of a case generates it on all of them, repeat by repeat in the order
``schedule.py`` draws; where the models do not fit in memory together they run in turns.
"""

from __future__ import annotations

import gc
import re
import time
from dataclasses import dataclass, field, replace

from pytest_mathperf.answer_pass import ModelPass, PassSettings
from pytest_mathperf.backends import (
    Backend,
    BackendError,
    BackendOptions,
    GenerationRequest,
    LoadInfo,
    Message,
    ModelLoadError,
    backend_class,
    create_backend,
    split_model_spec,
)
from pytest_mathperf.devices import DeviceInfo, describe_device, detect_card, resolve_device
from pytest_mathperf.generation import generate_and_check
from pytest_mathperf.hostload import HostLoad, HostSnapshot, card_busy_reason, snapshot
from pytest_mathperf.load import LoadResult
from pytest_mathperf.measurements import Measurements
from pytest_mathperf.memory import MemoryFigures, MemoryMonitor, devices_of
from pytest_mathperf.results import CaseRecord, GenerationRecord, ModelRecord
from pytest_mathperf.schedule import Schedule
from pytest_mathperf.suite import Case, Suite


@dataclass(frozen=True)
class RunOptions:
    """Everything the user chose for this run that changes what is measured."""

    models: tuple[str, ...]
    backend: str = "hf"
    device: str = "auto"
    dtype: str = "auto"
    endpoint: str | None = None
    retries: int = 3  # a served model's requests that failed before their first byte, tried again
    repeats: int | None = None
    warmup: int = 1
    card: str | None = None
    seed: int = 0
    busy_guard: bool = True  # a busy host makes failing timing verdicts inconclusive
    warmup_tokens: int | None = None  # max_new_tokens of each warm-up generation; None: the longest case's
    allow_estimated_counts: bool = False  # budgets take tokens/s, TPOT, ... that rest on estimated token counts
    fail_on_model_mismatch: bool = False  # an answer from a server naming another model is an error, not just reported
    interleave: bool = True  # several models generate each repeat back to back (turns where they do not fit)
    answer_pass: PassSettings = PassSettings()  # concurrency of the answers, the batch-1 latency sample
    server_pid: int | None = None  # the served model's process, for load profiles; None: found by its port


class NoRoomBeside(ModelLoadError):
    """A model ran out of memory loading beside the others: run in turns instead."""


def model_slug(model: str) -> str:
    """A short, readable id for node ids: ``deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B`` → ``deepseek-r1-distill-qwen-1.5b``.

    A model behind a backend prefix (``openai:NAME``) gets the backend as a suffix.
    """
    backend, name = split_model_spec(model, default_backend="")
    name = name.rstrip("/").rsplit("/", 1)[-1].lower()
    slug = re.sub(r"[^a-z0-9._-]+", "-", name).strip("-") or "model"
    return f"{slug}-{backend}" if backend else slug


@dataclass
class ModelSession:
    """One model of this run: its backend while loaded, and everything measured on it."""

    model: str
    backend: Backend | None = None
    load_info: LoadInfo | None = None
    load_error: str | None = None
    first_failure_reported: bool = False
    monitor: MemoryMonitor | None = None  # while loaded; its figures stay in ``memory`` after
    memory: MemoryFigures | None = None
    warmed_up: bool = False
    cases: dict[tuple[str, str], CaseRecord] = field(default_factory=dict)
    load_results: dict[str, LoadResult] = field(default_factory=dict)  # suite → its load profile's result
    host_load: HostLoad = field(default_factory=HostLoad)  # what other processes did while this model was measured
    specs: dict[tuple[str, str], tuple[Suite, Case]] = field(default_factory=dict)  # what each case was run from
    warmup_s: float | None = None
    card_busy: str | None = None  # on CUDA: other processes on the card, or slowed clocks, seen after a case
    served_as: dict[str, int] = field(default_factory=dict)  # another model id a server answered as → generations
    held_bytes: int = 0  # what loading this model added to the process, when loaded beside others
    others_at_load: int = 0  # bytes of other models already loaded when this one loaded
    others_measured: int = 0  # bytes of other models loaded while this one was measured

    @property
    def loaded(self) -> bool:
        return self.backend is not None

    def memory_figures(self) -> MemoryFigures | None:
        """The model's own memory: what other models loaded beside it held is taken out."""
        figures = self.monitor.figures() if self.monitor is not None else self.memory
        return figures.without(self.others_at_load, self.others_measured) if figures is not None else None

    def model_metrics(self) -> dict[str, float]:
        figures = self.memory_figures()
        values = figures.metrics() if figures is not None else {}
        if self.load_info is not None:
            values["load_s"] = self.load_info.load_s
        if self.warmup_s is not None:
            values["warmup_s"] = self.warmup_s
        for result in self.load_results.values():
            values.update(result.metrics())
        return values


class _Frozen:
    """Whether a session of this process froze a model and left it so: the collector is the
    process's, and pytester and benchmarks run several sessions in one process."""

    left_by_a_session = False


def thaw_earlier_sessions() -> None:
    """Make the model an earlier session in this process left frozen collectable again; objects
    frozen by anyone else stay as they are."""
    if _Frozen.left_by_a_session:
        gc.unfreeze()
        _Frozen.left_by_a_session = False


class Runner:
    """The session's measuring engine (one per pytest process, kept in ``config.stash``)."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.sessions: dict[str, ModelSession] = {model: ModelSession(model) for model in options.models}
        #: the longest max_new_tokens among each model's selected cases, set once selection is known
        self.warmup_tokens: dict[str, int] = {}
        self._device_info: DeviceInfo | None = None
        self._released_a_model = False
        #: (suite, case) → the case and the models it runs on, set once selection is known
        self.planned: dict[tuple[str, str], tuple[Suite, Case, tuple[str, ...]]] = {}
        self.schedule: Schedule = "interleaved" if options.interleave and len(options.models) > 1 else "turns"
        self.turns_reason: str | None = None  # why models that were to be interleaved ran in turns
        #: each model's selected cases, in order, for a latency sample and answer pass over all of them
        self.pass_plan: dict[str, dict[tuple[str, str], tuple[Suite, Case]]] = {}
        self.passes: dict[str, ModelPass] = {}

    @property
    def device_info(self) -> DeviceInfo:
        """The card the models run on; for a remote backend, this host's first GPU unless ``--mathperf-card``."""
        if self._device_info is None:
            if any(self.in_process(model) for model in self.options.models):
                info = describe_device(resolve_device(self.options.device))
            else:  # a served model: the card is this host's, unless --mathperf-card names the server's
                info = DeviceInfo(device="remote", card=detect_card())
            if self.options.card:
                info = replace(info, card=self.options.card)
            self._device_info = info
        return self._device_info

    @property
    def card(self) -> str:
        return self.device_info.card

    def backend_of(self, model: str) -> str:
        return split_model_spec(model, self.options.backend)[0]

    def in_process(self, model: str) -> bool:
        """Whether the model runs in this process (its memory and card are measured here)."""
        return bool(getattr(backend_class(self.backend_of(model)), "in_process", False))

    def report_load_failure_once(self, model: str) -> bool:
        """True the first time a model's load failure is asked about: one failure, then skips."""
        session = self.sessions[model]
        first, session.first_failure_reported = not session.first_failure_reported, True
        return first

    def name_of(self, model: str) -> str:
        """The model's name without a backend prefix: what suites and thresholds.yaml match."""
        return split_model_spec(model, self.options.backend)[1]

    def session(self, model: str, *, beside_others: bool = False) -> ModelSession:
        """The model's session, loaded now if it is not: alone (every other model unloaded first),
        or ``beside_others``, where an out-of-memory load raises ``NoRoomBeside`` and marks nothing."""
        session = self.sessions[model]
        if session.load_error is not None:
            raise ModelLoadError(session.load_error)
        if session.loaded:
            return session
        others = [other for other in self.sessions.values() if other is not session]
        if not beside_others:
            for other in others:
                self._unload(other)
        if self._released_a_model:  # its memory must not count as the next model's
            gc.unfreeze()
            gc.collect()
            self._released_a_model = False
        backend_name, name = split_model_spec(model, self.options.backend)
        options = BackendOptions(
            model=name, device=self.options.device, dtype=self.options.dtype, endpoint=self.options.endpoint,
            retries=self.options.retries,
        )
        backend = None
        # memory is watched from before the load, so the load's own peak is seen too
        # Loaded again (a comparison asking for more repeats): the first load's time and memory stay
        # the model's figures, and the fresh copy is warmed up again before anything is measured.
        reload = session.load_info is not None
        monitor = MemoryMonitor.before_load(self.options.device) if self.in_process(model) and not reload else None
        before = monitor.current_bytes() if monitor is not None else 0
        try:
            backend = create_backend(backend_name, options)
            load_info = backend.load()
        except Exception as error:  # any failure to load is one error for every case of the model
            if monitor is not None:
                monitor.close()
            if backend is not None:
                backend.close()  # a half-loaded model must not hold memory the next one is measured with
                self._released_a_model = True
            message = str(error) if isinstance(error, ModelLoadError) else f"{type(error).__name__}: {error}"
            if beside_others and "out of memory" in message.lower() and any(other.loaded for other in others):
                raise NoRoomBeside(message) from error
            session.load_error = message
            raise ModelLoadError(session.load_error) from error
        session.backend, session.warmed_up = backend, False
        if not reload:
            session.load_info = load_info
        # The loaded model is many long-lived objects: moved out of the collector's sight, they are
        # not traversed by the collections during the measured generations, nor by pytest's at
        # the end (a full collection over a large process costs a fifth of a second). A released
        # model stays frozen until another one loads, which collects it first; the last one stays
        # frozen until the process exits, or until the next session in this process thaws it.
        gc.freeze()
        _Frozen.left_by_a_session = True
        if monitor is not None:
            monitor.after_load(devices_of(load_info))
            session.monitor = monitor
            if beside_others:
                session.held_bytes = max(0, monitor.current_bytes() - before)
                session.others_at_load = sum(other.held_bytes for other in others if other.loaded)
        return session

    def _unload(self, session: ModelSession) -> None:
        if not session.loaded:
            return
        if session.monitor is not None:
            session.monitor.stop()
            session.memory, session.monitor = session.monitor.figures(), None
        assert session.backend is not None
        session.backend.close()
        session.backend = None
        self._released_a_model = True

    def close(self) -> None:
        for session in self.sessions.values():
            self._unload(session)

    def request_for(self, case: Case, repeat: int) -> GenerationRequest:
        messages = [Message("user", case.rendered_prompt())]
        if case.system:
            messages.insert(0, Message("system", case.system))
        return GenerationRequest(
            messages=tuple(messages),
            max_new_tokens=case.max_new_tokens,
            temperature=case.temperature,
            top_p=case.top_p,
            repetition_penalty=case.repetition_penalty,
            seed=self.options.seed + repeat,
            timeout_s=case.timeout_s,
        )

    def repeats_for(self, case: Case) -> int:
        return self.options.repeats or case.repeats

    def plan_case(self, model: str, suite: Suite, case: Case) -> None:
        """Note a selected case, so the model's answer pass can take it with all the others."""
        self.pass_plan.setdefault(model, {})[(suite.name, case.id)] = (suite, case)

    @property
    def two_passes(self) -> bool:
        """Whether cases run as a batch-1 latency sample and an answer pass, not one by one."""
        settings = self.options.answer_pass
        return settings.concurrency > 1 or settings.stop_early

    def run_case(self, model: str, suite: Suite, case: Case, nodeid: str) -> CaseRecord:
        """Generate every repeat of ``case`` on ``model`` and judge each answer.

        Where the case is planned on several models, the first of them to ask generates it on
        all (interleaved, or each model's every pending case in turns) and the others find it done.
        """
        if self.two_passes:  # a batch-1 latency sample, then the answers at concurrency N
            return self._run_case_from_pass(model, suite, case, nodeid)
        key = (suite.name, case.id)
        models = self.planned.get(key, (None, None, ()))[2]
        if len(models) > 1 and model in models:
            from pytest_mathperf.interleave import run_planned

            run_planned(self, model, models, suite, case)
        session = self.sessions[model]
        if key in session.cases:
            if session.load_error is not None:
                raise ModelLoadError(session.load_error)
            session.cases[key] = replace(session.cases[key], nodeid=nodeid)
            return session.cases[key]
        session = self.session(model, beside_others=self.schedule == "interleaved")
        if not session.warmed_up:
            self.warm_up(session, case)
        generations = self.generate(session, case, range(self.repeats_for(case)))
        session.specs[key] = (suite, case)
        return self.record(session, suite, case, nodeid, generations)

    def _run_case_from_pass(self, model: str, suite: Suite, case: Case, nodeid: str) -> CaseRecord:
        """The case's generations from its model's two passes, run over every planned case at its first case."""
        from pytest_mathperf.answer_pass import run_model_pass
        from pytest_mathperf.generation import judged_record

        session = self.session(model)
        key = (suite.name, case.id)
        done = self.passes.get(model)
        if done is None or key not in done.generations:  # the first case, or one run outside the plan
            if not session.warmed_up:
                _, cap = self.options.answer_pass.latency_for(suite)
                if cap is not None and model in self.warmup_tokens:  # nothing longer than the cap is timed
                    self.warmup_tokens[model] = min(self.warmup_tokens[model], cap)
                self.warm_up(session, case)
            planned = self.pass_plan.get(model, {}) if done is None else {}
            cases = [(s, c, self.repeats_for(c)) for s, c in ({**planned, key: (suite, case)}).values()]
            more = run_model_pass(session, cases, self.options.answer_pass, self.request_for, judged_record)
            done = self.passes.setdefault(model, more)
            if more is not done:
                done.merge(more)
        session.specs[key] = (suite, case)
        return self.record(session, suite, case, nodeid, done.generations[key], planned=done.planned[key])

    def pass_metrics(self, model: str) -> dict[str, float]:
        """Where the model's time went in the two passes, and the answer pass's aggregate tokens/s."""
        done = self.passes.get(model)
        return done.metrics() if done is not None else {}

    def add_repeats(self, models: tuple[str, ...], key: tuple[str, str], total: int) -> None:
        """More repeats of a case already run, up to ``total``, on every model of a comparison
        (interleaved where the run is), with new seeds: a comparison that needs more evidence."""
        from pytest_mathperf.interleave import add_repeats

        add_repeats(self, models, key, total)

    def warm_up(self, session: ModelSession, case: Case, *, open_window: bool = True) -> None:
        """Unmeasured generations first, as long as the longest case asks, so allocator pools and
        long-sequence kernels are warm before anything is measured; the time is shown."""
        backend = session.backend
        assert backend is not None
        tokens = self.options.warmup_tokens or self.warmup_tokens.get(session.model, case.max_new_tokens)
        warmup = replace(self.request_for(case, 0), max_new_tokens=tokens)
        started = time.perf_counter()
        for _ in range(self.options.warmup):
            try:
                backend.generate(warmup)
            except BackendError:
                break  # the measured generations will meet and report the same problem
        if session.warmup_s is None:  # a reloaded copy's warm-up is not the model's figure
            session.warmup_s = time.perf_counter() - started
        session.warmed_up = True
        if session.monitor is not None and open_window:
            session.monitor.start()  # the peak window opens after the warm-up, which never counts

    def generate(self, session: ModelSession, case: Case, repeats: range) -> list[GenerationRecord]:
        host_before = snapshot()
        generations = [self.generate_one(session, case, repeat) for repeat in repeats]
        self.after_generations(session, host_before)
        return generations

    def after_generations(self, session: ModelSession, host_before: HostSnapshot | None) -> None:
        """What the host did meanwhile, and on CUDA whether the card was shared, once per batch of generations."""
        session.host_load = session.host_load.plus(host_before, snapshot())
        if session.card_busy is None and session.load_info is not None and str(session.load_info.device).startswith("cuda"):
            session.card_busy = card_busy_reason(self.device_info.nvml_target)

    def _served_otherwise(self, session: ModelSession, served: str | None) -> str | None:
        """Why the answer came from another model than asked for (counted for the model's record), or None."""
        asked = self.name_of(session.model)
        if served is None or served == asked:
            return None
        session.served_as[served] = session.served_as.get(served, 0) + 1
        return f"the server answered as model {served!r}, not {asked!r}"

    def generate_one(self, session: ModelSession, case: Case, repeat: int) -> GenerationRecord:
        assert session.backend is not None
        return generate_and_check(
            session.backend, self.request_for(case, repeat), case, repeat,
            lambda served: self._served_otherwise(session, served), self.options.fail_on_model_mismatch,
        )

    def record(
        self, session: ModelSession, suite: Suite, case: Case, nodeid: str, generations: list[GenerationRecord],
        planned: int | None = None,
    ) -> CaseRecord:
        """``planned``: the repeats the pass rule is over, where the answer pass stopped once it was decided."""
        from pytest_mathperf.answers import format_expected

        correct = sum(1 for generation in generations if generation.status == "correct")
        record = CaseRecord(
            model=session.model,
            suite=suite.name,
            case=case.id,
            nodeid=nodeid,
            prompt=case.rendered_prompt(),
            expected=format_expected(case.answer),
            tags=case.tags,
            pass_rule=case.pass_rule,
            passed=case.passes(correct, max(planned or 0, len(generations))),
            generations=tuple(generations),
        )
        session.cases[(suite.name, case.id)] = record
        return record

    def run_load(self, model: str, suite: Suite) -> LoadResult:
        """Drive the suite's load profile against the served model, cycling through its prompts."""
        from pytest_mathperf.backends.openai import OpenAIBackend
        from pytest_mathperf.load import run_load

        assert suite.load is not None
        session = self.session(model)
        if not isinstance(session.backend, OpenAIBackend):
            raise ModelLoadError(f"load profiles need a served model (--mathperf-backend openai), not {self.backend_of(model)}")
        from pytest_mathperf.server_resources import is_local, sampler_for

        requests = [self.request_for(case, 0) for case in suite.cases]
        endpoint = session.backend.endpoint
        gpu_index = 0 if is_local(endpoint) else None  # a local server's card is this host's first
        with sampler_for(endpoint, self.options.server_pid, gpu_index) as sampler:
            result = run_load(session.backend, suite.load, requests)
        result = replace(result, server=sampler.result())
        session.load_results[suite.name] = result
        return result

    def model_record(self, model: str) -> ModelRecord:
        session = self.sessions[model]
        info = session.load_info
        memory = session.memory_figures()
        return ModelRecord(
            model=model,
            backend=self.backend_of(model),
            card=self.card,
            device=info.device if info else None,
            dtype=info.dtype if info else None,
            revision=info.revision if info else None,
            source=info.source if info else None,
            metrics={**session.model_metrics(), **self.pass_metrics(model)},
            memory_source=memory.label if memory is not None else None,
            load_error=session.load_error,
            details={
                **(dict(info.details) if info else {}),
                **({"memory_note": memory.note} if memory is not None and memory.note else {}),
                **self._host_details(model),
                **self._served_details(model),
            },
        )

    def busy_reason(self, model: str) -> str | None:
        """Why this model's timings were taken on a busy host; None when quiet, or when served elsewhere."""
        session = self.sessions[model]
        if not self.options.busy_guard or not session.cases or not self.in_process(model):
            return None
        return session.host_load.busy_reason() or session.card_busy

    def _host_details(self, model: str) -> dict[str, str]:
        session = self.sessions[model]
        if not session.cases:
            return {}
        busy = (session.host_load.busy_reason() or session.card_busy) if self.in_process(model) else None
        return {"host_load": session.host_load.describe(), "host_busy": busy or ""}

    def _served_details(self, model: str) -> dict[str, str]:
        served = self.sessions[model].served_as
        if not served:
            return {}
        named = ", ".join(f"{name!r} ({count} generations)" for name, count in sorted(served.items()))
        return {"served_model_mismatch": f"the server answered as {named}, not {self.name_of(model)!r}"}

    def measurements(self, model: str) -> Measurements:
        """What this run measured of ``model``, as judging reads it: a value, never the live session."""
        session = self.sessions[model]
        return Measurements(
            model=model,
            card=self.card,
            load_error=session.load_error,
            served_elsewhere=session.load_info is not None and session.load_info.device is None,
            cases=tuple(session.cases.values()),
            load_results=tuple(session.load_results.values()),
            model_metrics={**session.model_metrics(), **self.pass_metrics(model)},
            busy=self.busy_reason(model),
            allow_estimated_counts=self.options.allow_estimated_counts,
            busy_guard=self.options.busy_guard,
        )
