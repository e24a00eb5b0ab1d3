"""The gate's pytest nodes: a suite file, a case × model, a load profile, a budget.

Each item's ``runtest`` delegates to the runner and raises ``MathperfFailure`` with the text a
person reads; ``repr_failure`` shows just that text, never a traceback into the plugin.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_mathperf.state import STATE, GateState

#: Budgets that only an in-process model can be held to.
MEMORY_METRICS = frozenset({"vram_load_gb", "vram_peak_gb", "rss_load_gb", "rss_peak_gb"})

if TYPE_CHECKING:
    from pytest_mathperf.results import BudgetRecord, CaseRecord
    from pytest_mathperf.suite import Case, Suite
    from pytest_mathperf.thresholds import Budget, BudgetOutcome


class MathperfFailure(Exception):
    """A check failed; the message is what the user reads (no traceback into the plugin)."""


class MathperfItem(pytest.Item):
    """An item whose failures are the plugin's own short text; anything else keeps its traceback."""

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, MathperfFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)


class SuiteFile(pytest.File):
    """A suite YAML file; collects one item per case and model."""

    def collect(self) -> Iterator[pytest.Item]:
        from pytest_mathperf.suite import load_suite
        from pytest_mathperf.thresholds import case_budgets
        from pytest_mathperf.yamlfile import SchemaError

        state = self.config.stash[STATE]
        try:
            suite = load_suite(self.path)
            per_case_budgets = {
                case.id: case_budgets(case.source or self.path, case.line, suite.name, case.id, case.budgets)
                for case in suite.cases
                if case.budgets
            }
        except SchemaError as error:
            raise self.CollectError(str(error)) from None
        slugs = unique_slugs(state.settings.models)
        for model in state.settings.models:
            if not suite.applies_to(state.runner.name_of(model)):
                continue
            for case in suite.cases:
                item = CaseItem.from_parent(
                    self,
                    name=f"{case.id}[{slugs[model]}]",
                    suite=suite,
                    case=case,
                    model=model,
                    budgets=per_case_budgets.get(case.id, []),
                )
                for tag in case.tags:
                    self.config.addinivalue_line("markers", f"{tag}: suite tag (pytest-mathperf)")
                    item.add_marker(getattr(pytest.mark, tag))
                if case.skip:
                    item.add_marker(pytest.mark.skip(reason=case.skip))
                if case.xfail:
                    item.add_marker(pytest.mark.xfail(reason=case.xfail, strict=False))
                item.add_marker(pytest.mark.xdist_group(slugs[model]))
                yield item
            if suite.load is not None:
                load_item = LoadItem.from_parent(self, name=f"load[{slugs[model]}]", suite=suite, model=model)
                load_item.add_marker(pytest.mark.xdist_group(slugs[model]))
                yield load_item


def unique_slugs(models: tuple[str, ...]) -> dict[str, str]:
    from pytest_mathperf.runner import model_slug

    slugs: dict[str, str] = {}
    for model in models:
        slug = model_slug(model)
        while slug in slugs.values():
            slug += "-2"
        slugs[model] = slug
    return slugs


class CaseItem(MathperfItem):
    """One case on one model: generate every repeat, judge each answer, apply the pass rule."""

    def __init__(self, *, suite: Suite, case: Case, model: str, budgets: list[Budget], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.case = case
        self.model = model
        self.case_budgets = budgets
        self.mathperf_payload: dict[str, Any] | None = None

    def runtest(self) -> None:
        from pytest_mathperf.backends import ModelLoadError
        from pytest_mathperf.runner import case_properties

        state = self.config.stash[STATE]
        try:
            record = state.runner.run_case(self.model, self.suite, self.case, self.nodeid)
        except ModelLoadError as error:
            session = state.runner.sessions[self.model]
            self.mathperf_payload = {"model": state.runner.model_record(self.model).to_dict()}  # recorded too
            if session.first_failure_reported:
                pytest.skip(f"{self.model} did not load (see the first failure): {error}")
            session.first_failure_reported = True
            raise MathperfFailure(f"model {self.model} did not load: {error}") from None
        self.user_properties.extend(case_properties(record))
        self.mathperf_payload = {
            "case": record.to_dict(),
            "model": state.runner.model_record(self.model).to_dict(),
        }
        has_error = any(generation.status == "error" for generation in record.generations)
        if record.passed and not has_error:
            return
        message = _case_failure_text(record, self.case)
        if not has_error and not state.settings.strict and state.accuracy_budget_applies(self.model, self.suite.name):
            first = next(g for g in record.generations if g.status != "correct")
            pytest.xfail(
                f"{record.verdict} ({record.correct_count}/{len(record.generations)} correct), left to the accuracy "
                f"budget: expected {record.expected}, extracted {first.extracted or 'nothing'}"
            )
        raise MathperfFailure(message)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        source = self.case.source or self.path
        return source, self.case.line - 1, f"{self.suite.name}::{self.case.id} [{self.model}]"


class LoadItem(MathperfItem):
    """A suite's load profile on one served model: many concurrent streams, judged by load budgets."""

    def __init__(self, *, suite: Suite, model: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.model = model
        self.mathperf_payload: dict[str, Any] | None = None

    def runtest(self) -> None:
        from pytest_mathperf.backends import ModelLoadError

        state = self.config.stash[STATE]
        if state.runner.backend_of(self.model) == "hf":
            pytest.skip("load profiles need a served model: --mathperf-backend openai --mathperf-endpoint URL")
        try:
            result = state.runner.run_load(self.model, self.suite)
        except ModelLoadError as error:
            pytest.skip(f"{self.model} did not load: {error}")
        metrics = result.metrics()
        self.user_properties.extend([("mathperf.model", self.model), ("mathperf.load", result.profile.describe())])
        self.user_properties.extend((name, round(value, 4)) for name, value in sorted(metrics.items()))
        self.mathperf_payload = {"model": state.runner.model_record(self.model).to_dict()}
        if not result.succeeded:
            raise MathperfFailure(
                f"load profile ({result.profile.describe()}) on {self.model}: no request succeeded\n  "
                + "\n  ".join(result.errors())
            )

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, self.suite.load_line - 1, f"{self.suite.name}::load [{self.model}]"


def _case_failure_text(record: CaseRecord, case: Case) -> str:
    failing = [g for g in record.generations if g.status != "correct"]
    shown = next((g for g in failing if g.status == "error"), failing[0])  # a backend failure first
    output = shown.output if len(shown.output) <= 2000 else "…" + shown.output[-2000:]
    lines = [
        f"{shown.status if record.passed else record.verdict}: "
        f"{record.correct_count} of {len(record.generations)} generations correct "
        f"(pass rule: {record.pass_rule}) — {record.model}",
        f"  expected : {record.expected}",
        f"  extracted: {shown.extracted or '(nothing)'}   [repeat {shown.repeat}: {shown.status}, {shown.reason}]",
        f"  prompt   : {case.prompt}",
        f"  raw output (repeat {shown.repeat}, finish: {shown.finish_reason}):",
        *("    " + line for line in output.splitlines() or [""]),
    ]
    return "\n".join(lines)


class ThresholdsFile(pytest.File):
    """The thresholds file as a node, so budgets read ``thresholds.yaml::model::ttft_ms.p50``."""

    def collect(self) -> Iterator[pytest.Item]:
        return iter(())  # budget items are made after selection, in pytest_collection_modifyitems


class BudgetItem(MathperfItem):
    """One budget on one model: compares a statistic over what that model's cases measured."""

    def __init__(self, *, budget: Budget | None, model: str, policy_message: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = budget
        self.model = model
        self.policy_message = policy_message  # for the unknown-card item, which has no budget
        self.mathperf_payload: dict[str, Any] | None = None

    def runtest(self) -> None:
        from pytest_mathperf.thresholds import evaluate

        state = self.config.stash[STATE]
        if self.budget is None:
            if state.thresholds is not None and state.thresholds.unknown_card == "fail":
                raise MathperfFailure(self.policy_message)
            pytest.skip(self.policy_message)
        session = state.runner.sessions[self.model]
        if session.load_error is not None:
            pytest.skip(f"{self.model} did not load, nothing to judge")
        if self.budget.metric in MEMORY_METRICS and session.load_info is not None and session.load_info.device is None:
            pytest.skip(f"{self.model} is served by another process: its memory is the server's, not measured here")
        if self.budget.scope == "load" and not session.load_results:
            pytest.skip("no load profile ran for this model (a suite's `load:` block, with --mathperf-backend openai)")
        samples = state.runner.samples(self.model, self.budget)
        if not samples and not session.cases and not session.load_results:
            pytest.skip(f"no case of {self.model} ran, so there is nothing to judge")
        if not samples and not state.runner.measures(self.model, self.budget.metric):
            pytest.skip(f"{self.budget.metric} is not measured for {self.model} on {state.runner.card}")
        outcome = evaluate(self.budget, samples)
        record = _budget_record(outcome, self.model, state.runner.card, self.nodeid)
        self.mathperf_payload = {
            "budget": record.to_dict(),
            "model": state.runner.model_record(self.model).to_dict(),
        }
        self.user_properties.extend(
            [
                ("mathperf.model", self.model),
                ("mathperf.budget", self.budget.name),
                ("mathperf.measured", "" if outcome.measured is None else round(outcome.measured, 4)),
                ("mathperf.bound", self.budget.bound_text),
                ("mathperf.samples", outcome.samples),
                ("mathperf.card", state.runner.card),
            ]
        )
        if not outcome.passed:
            text = _budget_failure_text(outcome, self.model, state.runner.card)
            for result in session.load_results.values() if self.budget.scope == "load" else ():
                text += "".join(f"\n  failures : {line}" for line in result.errors())
                warning = result.client_warning()
                text += f"\n  client   : {warning}" if warning else ""
            raise MathperfFailure(text)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.budget.line - 1 if self.budget else None
        return self.path, line, f"budget {self.name} [{self.model}]"


def _budget_record(outcome: BudgetOutcome, model: str, card: str, nodeid: str) -> BudgetRecord:
    from pytest_mathperf.results import BudgetRecord

    budget = outcome.budget
    return BudgetRecord(
        model=model,
        name=budget.name,
        metric=budget.metric,
        statistic=budget.statistic,
        scope=budget.scope,
        suite=budget.suite,
        case=budget.case,
        minimum=budget.minimum,
        maximum=budget.maximum,
        measured=outcome.measured,
        samples=outcome.samples,
        passed=outcome.passed,
        card=card,
        nodeid=nodeid,
    )


def _budget_failure_text(outcome: BudgetOutcome, model: str, card: str) -> str:
    budget = outcome.budget
    over = f" over {outcome.samples} {'cases' if budget.metric == 'accuracy' else 'samples'}"
    statistic = f"{budget.statistic} " if budget.statistic else ""
    scope = {"suite": f" in suite {budget.suite}", "case": f" in case {budget.case}"}.get(budget.scope, "")
    where = f"{budget.source}:{budget.line}"
    return "\n".join(
        [
            f"budget {budget.name} failed for {model}{scope} on {card}",
            f"  measured : {statistic}{outcome.measured_text}{over if outcome.measured is not None else ''}",
            f"  budget   : {budget.bound_text}   ({where})",
            f"  card     : {card}",
            f"  samples  : {outcome.samples}",
        ]
    )


def items_in_run_order(session: pytest.Session, state: GateState, model_items: list[pytest.Item]) -> list[pytest.Item]:
    """The selected cases model by model, each model's budget items right after its cases.

    Budgets are made here, after ``-k``/``-m`` selection, so they judge exactly the cases that run.
    An xdist worker makes none: it sees only its share of the samples (the plugin refuses ``-n``
    when thresholds.yaml applies, and warns otherwise). Every item of a model shares its xdist
    group, so ``--dist loadgroup`` keeps a model's cases on one worker.
    """
    slugs = unique_slugs(state.settings.models)
    per_model: dict[str, list[pytest.Item]] = {model: [] for model in state.settings.models}
    for item in model_items:
        per_model[item.model].append(item)
    on_xdist_worker = hasattr(session.config, "workerinput")
    for item in [] if on_xdist_worker else model_items:
        for budget in getattr(item, "case_budgets", []):
            name = f"{item.case.id}.{budget.name}[{slugs[item.model]}]"
            per_model[item.model].append(BudgetItem.from_parent(item.parent, name=name, budget=budget, model=item.model))
    if state.thresholds is not None and not on_xdist_worker:
        thresholds_node = ThresholdsFile.from_parent(session, path=state.thresholds.path)
        for model, items in per_model.items():
            suites = sorted({item.suite.name for item in items if isinstance(item, (CaseItem, LoadItem))})
            if suites:
                items.extend(_threshold_items(thresholds_node, state, model, slugs[model], suites))
    for model, items in per_model.items():
        for item in items:
            if item.get_closest_marker("xdist_group") is None:
                item.add_marker(pytest.mark.xdist_group(slugs[model]))
    return [item for items in per_model.values() for item in items]


def _threshold_items(
    node: ThresholdsFile, state: GateState, model: str, slug: str, suites: list[str]
) -> list[BudgetItem]:
    """One item per budget of thresholds.yaml that applies to this card, model and these suites."""
    assert state.thresholds is not None
    card, name = state.runner.card, state.runner.name_of(model)
    budgets = state.thresholds.budgets_for(card, name, suites)
    if budgets is None:
        if state.thresholds.unknown_card == "record":
            return []
        message = (
            f"no budgets for card {card!r} and model {name!r} in {state.thresholds.path} "
            f"(unknown_card: {state.thresholds.unknown_card}); `mathperf card` prints this card's name"
        )
        return [BudgetItem.from_parent(node, name=f"{slug}::card", budget=None, model=model, policy_message=message)]
    state.budgets[model] = budgets
    return [
        BudgetItem.from_parent(
            node,
            name=f"{slug}::{budget.suite + '::' if budget.scope == 'suite' else ''}{budget.name}",
            budget=budget,
            model=model,
        )
        for budget in budgets
    ]
