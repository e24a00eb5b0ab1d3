"""The gate's pytest nodes: a suite file, a case × model, a load profile, a budget.

Each item's ``runtest`` delegates to the runner and raises ``MathperfFailure`` with the text a
person reads; ``repr_failure`` shows just that text, never a traceback into the plugin.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_mathperf.state import STATE, GateState

if TYPE_CHECKING:
    from pytest_mathperf.compare import Comparison
    from pytest_mathperf.suite import Case, Suite
    from pytest_mathperf.thresholds import Budget


class MathperfFailure(Exception):
    """A check failed; the message is what the user reads (no traceback into the plugin)."""


class MathperfItem(pytest.Item):
    """An item whose failures are the plugin's own short text; anything else keeps its traceback."""

    def __init__(self, *, name: str, parent: pytest.Node, **kwargs: Any) -> None:
        # Given as a string, the node id is parsed as pytest parses ids it reads back from its cache,
        # so the ``[model]`` suffix is the id's parameter part and --lf/--ff recognise the item.
        kwargs.setdefault("nodeid", f"{parent.nodeid}::{name}")
        super().__init__(name=name, parent=parent, **kwargs)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, MathperfFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)


class SuiteFile(pytest.File):
    """A suite YAML file; collects one item per case and model."""

    def _data_root(self, state: GateState) -> Path:
        """Where ``cases_from`` may read: the project (pytest's rootdir), or the ``--mathperf-suites`` folder
        outside it that holds this file."""
        parents = self.path.resolve().parents
        outside = [folder for folder in state.settings.suites if folder in parents and self.config.rootpath not in parents]
        return outside[0] if outside else self.config.rootpath

    def collect(self) -> Iterator[pytest.Item]:
        from pytest_mathperf.context import file_fingerprint
        from pytest_mathperf.suite import load_suite, name_taken
        from pytest_mathperf.yamlfile import SchemaError

        state = self.config.stash[STATE]
        try:
            suite = load_suite(self.path, root=self._data_root(state))
        except SchemaError as error:
            raise self.CollectError(str(error)) from None
        first = state.suite_paths.setdefault(suite.name, self.path)
        if first != self.path:  # results are kept by suite and case: one would overwrite the other's
            raise self.CollectError(name_taken(suite, first))
        sources = [self.path, *sorted({case.source for case in suite.cases if case.source is not None})]
        state.suite_fingerprints[suite.name] = (file_fingerprint(sources), len(suite.cases))
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

    def __init__(self, *, suite: Suite, case: Case, model: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.case = case
        self.model = model
        self.mathperf_payload: dict[str, Any] | None = None

    def runtest(self) -> None:
        from pytest_mathperf.backends import ModelLoadError
        from pytest_mathperf.judge import judge_case
        from pytest_mathperf.reporting import case_failure_text, case_properties, left_to_budget_text

        state = self.config.stash[STATE]
        try:
            record = state.runner.run_case(self.model, self.suite, self.case, self.nodeid)
        except ModelLoadError as error:
            self.mathperf_payload = {"model": state.runner.model_record(self.model).to_dict()}  # recorded too
            if state.runner.report_load_failure_once(self.model):
                raise MathperfFailure(f"model {self.model} did not load: {error}") from None
            pytest.skip(f"{self.model} did not load (see the first failure): {error}")
        self.user_properties.extend(case_properties(record))
        self.mathperf_payload = {"case": record.to_dict(), "model": state.runner.model_record(self.model).to_dict()}
        _warn_once_about_turns(state)
        outcome = judge_case(record, state.plan.for_model(self.model), strict=state.settings.strict)
        if outcome.status == "left_to_budget":
            # A skip, not an xfail: JUnit writes a skip's reason as the element's text, which GitLab,
            # Jenkins and pytest-html show; an xfail's reason is only an attribute they ignore.
            pytest.skip(left_to_budget_text(outcome))
        if outcome.status == "failed":
            raise MathperfFailure(case_failure_text(outcome))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        source = self.case.source or self.path
        return source, self.case.line - 1, f"{self.suite.name}::{self.case.id} [{self.model}]"


def _warn_once_about_turns(state: GateState) -> None:
    reason = state.runner.turns_reason
    message = f"mathperf: the models ran in turns, not interleaved: {reason}; comparisons between them carry a between-turn term"
    if reason and message not in state.messages:
        state.messages.append(message)
        warnings.warn(pytest.PytestWarning(message), stacklevel=1)


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
        if state.runner.in_process(self.model):
            pytest.skip("load profiles need a served model: --mathperf-backend openai --mathperf-endpoint URL")
        try:
            result = state.runner.run_load(self.model, self.suite)
        except ModelLoadError as error:
            pytest.skip(f"{self.model} did not load: {error}")
        metrics = result.metrics()
        self.user_properties.extend([("mathperf.model", self.model), ("mathperf.load", result.profile.describe())])
        if result.server is not None:
            self.user_properties.append(("mathperf.server", result.server.describe()))
        self.user_properties.extend((name, round(value, 4)) for name, value in sorted(metrics.items()))
        self.mathperf_payload = {"model": state.runner.model_record(self.model).to_dict()}
        if not result.succeeded:
            raise MathperfFailure(
                f"load profile ({result.profile.describe()}) on {self.model}: no request succeeded\n  "
                + "\n  ".join(result.errors())
            )

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, self.suite.load_line - 1, f"{self.suite.name}::load [{self.model}]"


class ThresholdsFile(pytest.File):
    """The thresholds file as a node, so budgets read ``thresholds.yaml::model::ttft_ms.p50``."""

    def collect(self) -> Iterator[pytest.Item]:
        return iter(())  # budget items are made after selection, in pytest_collection_modifyitems


class BudgetItem(MathperfItem):
    """One budget on one model: compares a statistic over what that model's cases measured."""

    def __init__(self, *, budget: Budget, model: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = budget
        self.model = model
        self.mathperf_payload: dict[str, Any] | None = None

    def runtest(self) -> None:
        from pytest_mathperf.judge import judge_budget
        from pytest_mathperf.reporting import budget_failure_text, budget_properties, budget_record

        state = self.config.stash[STATE]
        card = state.runner.card
        outcome = judge_budget(state.runner.measurements(self.model), self.budget)
        if outcome.status == "cannot_judge":
            self.mathperf_payload = {"unjudged": {"model": self.model, "name": self.budget.name, "reason": outcome.reason}}
            pytest.skip(outcome.reason)
        model_record = state.runner.model_record(self.model)
        self.mathperf_payload = {
            "budget": budget_record(outcome, self.model, card, self.nodeid).to_dict(),
            "model": model_record.to_dict(),
        }
        self.user_properties.extend(budget_properties(outcome, self.model, card, model_record.memory_source))
        if outcome.status == "inconclusive":
            pytest.skip(f"{INCONCLUSIVE}: {outcome.measured_text} against {self.budget.bound_text}: {outcome.reason}")
        if outcome.status == "failed":
            raise MathperfFailure(budget_failure_text(outcome, self.model, card, model_record.memory_source))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, self.budget.line - 1, f"budget {self.name} [{self.model}]"


class CompareItem(MathperfItem):
    """One margin of a candidate against its baseline: regression fails, within margin passes,
    inconclusive follows ``compare_defaults.inconclusive``."""

    def __init__(self, *, comparison: Comparison, model: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.comparison = comparison
        self.model = model
        self.mathperf_payload: dict[str, Any] | None = None

    def runtest(self) -> None:
        from pytest_mathperf.judge import BLESSED_PREFIX
        from pytest_mathperf.judge_comparisons import judge_with_more
        from pytest_mathperf.reporting import comparison_properties, comparison_record, comparison_text

        state = self.config.stash[STATE]
        baseline = state.plan.for_model(self.model).baseline or ""
        stored = tuple(run for _, run in state.blessed.get(self.model, ())) if baseline.startswith(BLESSED_PREFIX) else ()
        judged = judge_with_more(state.runner, state.plan, self.model, self.comparison, stored)
        outcome = judged.outcome
        if outcome.verdict == "cannot_judge":
            pytest.skip(f"cannot compare with {baseline}: {outcome.reason}")
        record = comparison_record(outcome, self.model, baseline, state.runner.card, self.nodeid)
        self.mathperf_payload = {
            "comparison": record.to_dict(),
            "model": state.runner.model_record(self.model).to_dict(),
            # the cases as `more` extended them: the run keeps the samples the verdict was decided on
            "extended": [
                {"case": case.to_dict(), "model": state.runner.model_record(case.model).to_dict()} for case in judged.extended
            ],
        }
        self.user_properties.extend(comparison_properties(record))
        if outcome.verdict == "regression":
            raise MathperfFailure(comparison_text(record))
        if outcome.verdict == "inconclusive":
            if state.plan.compare.inconclusive == "fail" and not outcome.busy:
                raise MathperfFailure(comparison_text(record) + "\n  policy   : compare_defaults.inconclusive: fail")
            pytest.skip(f"{INCONCLUSIVE}: {record.name} {comparison_text(record, short=True)}")

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, self.comparison.line - 1, f"compare {self.name} [{self.model}]"


class NoBudgetItem(MathperfItem):
    """Stands for a model that thresholds.yaml has nothing to judge by, so the policy is visible."""

    def __init__(self, *, model: str, reason: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.reason = reason

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        if state.plan.policy == "fail":
            raise MathperfFailure(self.reason)
        pytest.skip(self.reason)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"no budgets [{self.model}]"


def arrange_items(
    session: pytest.Session,
    state: GateState,
    collected: list[pytest.Item],
    selected: list[pytest.Item],
    last_failed: set[str],
) -> list[pytest.Item]:
    """The selected cases model by model, each model's budget items right after its cases.

    The budget plan is made here, once, after ``-k``/``-m``/``--lf`` selection, so budgets judge
    exactly the cases that run. Under ``--lf`` (``last_failed`` given) only the budgets that
    failed last time are made, and every case they judge runs again with them: a budget never
    passes because ``--lf`` deselected its cases. An xdist worker makes no budget items: it sees
    only its share of the samples (the plugin refuses ``-n`` when thresholds.yaml applies). Every
    item of a model shares its xdist group, so ``--dist loadgroup`` keeps a model's cases on one
    worker.
    """
    from pytest_mathperf.judge import plan_budgets

    others = [item for item in selected if not isinstance(item, (CaseItem, LoadItem))]
    cases = [item for item in selected if isinstance(item, (CaseItem, LoadItem))]
    if not cases and not last_failed:
        return selected
    if hasattr(session.config, "workerinput"):
        state.runner.schedule = "turns"  # a worker holds one model's cases
        return others + _grouped(state, cases, [])
    for item in cases:
        if isinstance(item, CaseItem):
            longest = state.runner.warmup_tokens.get(item.model, 0)
            state.runner.warmup_tokens[item.model] = max(longest, item.case.max_new_tokens)
            if item.get_closest_marker("skip") is None:
                state.runner.plan_case(item.model, item.suite, item.case)
    every_case = [item for item in collected if isinstance(item, (CaseItem, LoadItem))]
    if last_failed:
        state.plan = plan_budgets(state.thresholds, state.runner.card, _selected_models(state, every_case), _baselines(state))
        failed_budgets = [item for item in _budget_items(session, state, every_case) if item.nodeid in last_failed]
        if failed_budgets or any(case.nodeid in last_failed for case in every_case):
            judged = {id(case) for budget in failed_budgets for case in every_case if _judges(state, budget, case)}
            chosen = {id(case) for case in cases} | judged
            return others + _grouped(state, [case for case in every_case if id(case) in chosen], failed_budgets)
    state.plan = plan_budgets(state.thresholds, state.runner.card, _selected_models(state, cases), _baselines(state))
    _warn_of_budgets_for_missing_suites(session, state)
    return others + _grouped(state, cases, _budget_items(session, state, cases))


def _warn_of_budgets_for_missing_suites(session: pytest.Session, state: GateState) -> None:
    """Say so, as ``mathperf lint`` does, of a suite budget whose suite no collected file defines."""
    import warnings

    from pytest_mathperf.judge import suite_budgets_judging_nothing

    every_suite = session.config.args_source != pytest.Config.ArgsSource.ARGS  # no paths narrowed collection
    models = [state.runner.name_of(model) for model in state.settings.models]
    for message in suite_budgets_judging_nothing(state.thresholds, state.runner.card, models, state.suite_paths, every_suite=every_suite):
        warnings.warn(pytest.PytestWarning(message), stacklevel=2)


def _baselines(state: GateState) -> dict[str, str]:
    """Each candidate's baseline: the blessed run of its card and model, or the baseline model of this run."""
    from pytest_mathperf.judge import blessed_name

    if state.blessed:
        return {model: blessed_name([run_id for run_id, _ in runs]) for model, runs in state.blessed.items()}
    baseline = state.settings.baseline or state.settings.models[0]
    return {model: baseline for model in state.settings.models if model != baseline}


def _selected_models(state: GateState, cases: list[pytest.Item]) -> list[Any]:
    from pytest_mathperf.judge import SelectedModel

    per_model: dict[str, list[Any]] = {}
    for item in cases:
        if item.get_closest_marker("skip") is None:  # a case marked skip: measures nothing, like a deselected one
            per_model.setdefault(item.model, []).append(item)  # type: ignore[attr-defined]
    return [
        SelectedModel(
            model=model,
            name=state.runner.name_of(model),
            suites=tuple(sorted({item.suite.name for item in items})),
            case_budgets=tuple(budget for item in items if isinstance(item, CaseItem) for budget in item.case.budgets),
        )
        for model, items in per_model.items()
    ]


def _budget_items(session: pytest.Session, state: GateState, cases: list[pytest.Item]) -> list[MathperfItem]:
    """One item per budget of the plan (and one per model with nothing to judge it by)."""
    slugs = unique_slugs(state.settings.models)
    thresholds_node = (
        ThresholdsFile.from_parent(session, path=state.thresholds.path) if state.thresholds is not None else None
    )
    case_parents = {
        (item.model, item.suite.name, item.case.id): item.parent  # type: ignore[attr-defined]
        for item in cases
        if isinstance(item, CaseItem)
    }
    made: list[MathperfItem] = []
    for model in state.settings.models:
        plan = state.plan.for_model(model)
        for budget in plan.budgets:
            if budget.scope == "case":
                parent = case_parents[(model, budget.suite, budget.case)]  # case ids repeat across suites
                name = f"{budget.case}.{budget.name}[{slugs[model]}]"
            else:
                assert thresholds_node is not None
                suite = f"{budget.suite}::" if budget.scope == "suite" else ""
                parent, name = thresholds_node, f"{slugs[model]}::{suite}{budget.name}"
            made.append(BudgetItem.from_parent(parent, name=name, budget=budget, model=model))
        if plan.no_budget_reason is not None and state.plan.policy != "record":
            assert thresholds_node is not None
            made.append(NoBudgetItem.from_parent(thresholds_node, name=f"{slugs[model]}::card", model=model, reason=plan.no_budget_reason))
        for comparison in plan.comparisons:
            assert thresholds_node is not None
            suite = f"{comparison.suite}::" if comparison.scope == "suite" else ""
            name = f"{slugs[model]}::compare::{suite}{comparison.name}"
            made.append(CompareItem.from_parent(thresholds_node, name=name, comparison=comparison, model=model))
    return made


def _judges(state: GateState, budget: MathperfItem, case: pytest.Item) -> bool:
    """Whether a budget or comparison item judges a case item: its model (or its baseline) and, by ``judges``, its scope."""
    from pytest_mathperf.judge import judges

    if isinstance(budget, CompareItem):
        rule: Any = budget.comparison
        models = (budget.model, state.plan.for_model(budget.model).baseline)
    else:
        rule, models = getattr(budget, "budget", None), (budget.model,)  # type: ignore[attr-defined]
    if case.model not in models:  # type: ignore[attr-defined]
        return False
    case_id = case.case.id if isinstance(case, CaseItem) else None
    return rule is None or judges(rule, case.suite.name, case_id)  # type: ignore[attr-defined]


def _grouped(state: GateState, cases: list[pytest.Item], budgets: list[MathperfItem]) -> list[pytest.Item]:
    """Model by model (one model loaded at a time), each model's budgets after its cases, and the
    comparisons last, when every model they compare has run. Where models are interleaved, each
    case's items on every model come together, first, since the first of them generates all."""
    slugs = unique_slugs(state.settings.models)
    ordered: list[pytest.Item] = []
    comparisons = [item for item in budgets if isinstance(item, CompareItem)]
    interleaved = _plan_interleaving(state, cases)
    together = {id(item) for item in interleaved}
    for model in state.settings.models:
        group = [item for item in cases if item.model == model and id(item) not in together]  # type: ignore[attr-defined]
        group += [item for item in budgets if item.model == model and not isinstance(item, CompareItem)]
        for item in group:
            if item.get_closest_marker("xdist_group") is None:
                item.add_marker(pytest.mark.xdist_group(slugs[model]))
        ordered.extend(group)
    return interleaved + ordered + comparisons


INCONCLUSIVE = "inconclusive"  # how the skip of an inconclusive budget or comparison begins


def reads_inconclusive(report: pytest.TestReport) -> bool:
    """Whether a report is the skip of an inconclusive budget or comparison."""
    message = report.longrepr[2] if report.skipped and isinstance(report.longrepr, tuple) else ""
    return message.removeprefix("Skipped: ").startswith(f"{INCONCLUSIVE}:")


def suites_per_model(state: GateState, items: list[pytest.Item]) -> list[str]:
    """The header's lines on which suites each selected model runs."""
    from pytest_mathperf.run_header import SelectedCase, suites_lines

    cases = [
        SelectedCase(item.model, item.suite.name, item.case.max_new_tokens, state.runner.repeats_for(item.case))
        for item in items
        if isinstance(item, CaseItem)
    ]
    return suites_lines(cases, state.settings.models)


def _plan_interleaving(state: GateState, cases: list[pytest.Item]) -> list[pytest.Item]:
    """Tell the runner which models run each case, and return the items of cases run on several
    models, case by case (empty where the run is not interleaved)."""
    if state.runner.schedule != "interleaved":
        return []
    by_case: dict[tuple[str, str], list[CaseItem]] = {}
    for item in cases:
        if isinstance(item, CaseItem) and item.get_closest_marker("skip") is None:
            by_case.setdefault((item.suite.name, item.case.id), []).append(item)
    ordered: list[pytest.Item] = []
    for key, items in by_case.items():
        state.runner.planned[key] = (items[0].suite, items[0].case, tuple(item.model for item in items))
        if len(items) > 1:
            ordered.extend(items)
    return ordered
