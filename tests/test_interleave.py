"""Interleaved A/B: every model generates each repeat back to back, in a seeded order; turns
where the models do not fit together; intervals that resample cases, not generations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy
from scripted import ScriptedBackend

from pytest_mathperf.backends import ModelLoadError, use_hook_backends
from pytest_mathperf.compare import Comparison, compare_samples
from pytest_mathperf.runner import Runner, RunOptions
from pytest_mathperf.schedule import interleaved, model_order
from pytest_mathperf.suite import load_suite

SUITE = "suite: arithmetic\ncases:\n" + "".join(
    f"  - id: c{i}\n    prompt: \"What is {100 + i} + {7 * i}?\"\n    answer: {100 + 8 * i}\n    repeats: 3\n" for i in range(3)
)
TTFT_P50 = Comparison("ttft_ms", "p50", 1.10, None, None, "model", None, Path("thresholds.yaml"), 3)


class LoggingBackend(ScriptedBackend):
    """Scripted models that write down who generated which seed, and that cannot share memory
    when ``exclusive`` is set (as two large models on one card)."""

    log: ClassVar[list[tuple[str, int]]] = []
    exclusive: ClassVar[bool] = False
    loaded: ClassVar[set[str]] = set()

    def load(self) -> Any:
        if self.exclusive and self.loaded - {self.options.model}:
            raise ModelLoadError(f"--mathperf-model {self.options.model}: out of memory while loading on cpu: no room")
        self.loaded.add(self.options.model)
        return super().load()

    def generate(self, request: Any) -> Any:
        self.log.append((self.options.model, request.seed))
        return super().generate(request)

    def close(self) -> None:
        self.loaded.discard(self.options.model)


def runner_with_plan(tmp_path: Path, models: tuple[str, ...], *, exclusive: bool = False) -> tuple[Runner, Any]:
    backend = type("LoggingBackend", (LoggingBackend,), {"log": [], "exclusive": exclusive, "loaded": set()})
    use_hook_backends({"logging": backend})
    (tmp_path / "arithmetic.yaml").write_text(SUITE, encoding="utf-8")
    suite = load_suite(tmp_path / "arithmetic.yaml")
    runner = Runner(RunOptions(models=models, backend="logging", device="cpu", seed=7))
    for case in suite.cases:
        runner.planned[(suite.name, case.id)] = (suite, case, models)
    return runner, (backend, suite)


def test_each_repeat_is_generated_by_every_model_back_to_back_in_the_seeded_order(tmp_path: Path) -> None:
    models = ("base", "mid", "cand")
    runner, (backend, suite) = runner_with_plan(tmp_path, models)
    try:
        for case in suite.cases:
            for model in models:  # the items' order: the first one asks for all
                record = runner.run_case(model, suite, case, f"{case.id}[{model}]")
                assert record.nodeid == f"{case.id}[{model}]" and len(record.generations) == 3
        generated = backend.log[3:]  # after one warm-up per model, all loaded together
        expected = [(w.model, w.repeat + 7) for case in suite.cases for w in interleaved(models, suite.name, case.id, range(3), 7)]
        assert generated == expected
        assert all(len({model for model, _ in generated[i : i + 3]}) == 3 for i in range(0, len(generated), 3))
        orders = {tuple(model_order(models, 7, suite.name, case.id, r)) for case in suite.cases for r in range(3)}
        assert len(orders) > 1  # drawn, not fixed: no model always goes first
        assert runner.schedule == "interleaved" and runner.turns_reason is None
    finally:
        runner.close()


def test_more_repeats_interleave_too_with_new_seeds(tmp_path: Path) -> None:
    runner, (backend, suite) = runner_with_plan(tmp_path, ("base", "cand"))
    try:
        case = suite.cases[0]
        runner.run_case("base", suite, case, "c0[base]")
        before = len(backend.log)
        runner.add_repeats(("base", "cand"), (suite.name, case.id), 6)
        added = backend.log[before:]
        assert sorted(added) == sorted((model, seed) for model in ("base", "cand") for seed in range(10, 13))
        assert all(added[i][0] != added[i + 1][0] for i in range(0, 6, 2))  # each repeat on both, back to back
        assert [g.seed for g in runner.sessions["cand"].cases[(suite.name, case.id)].generations] == [7, 8, 9, 10, 11, 12]
    finally:
        runner.close()


def test_models_that_do_not_fit_together_run_in_turns_and_say_why(tmp_path: Path) -> None:
    runner, (backend, suite) = runner_with_plan(tmp_path, ("base", "cand"), exclusive=True)
    try:
        for case in suite.cases:
            for model in ("base", "cand"):
                assert len(runner.run_case(model, suite, case, f"{case.id}[{model}]").generations) == 3
        assert runner.schedule == "turns"
        assert runner.turns_reason is not None and runner.turns_reason.startswith("cand did not fit in memory beside base")
        models = [model for model, _ in backend.log]
        assert models == ["base"] * models.count("base") + ["cand"] * models.count("cand")  # one turn each, one load each
        assert runner.sessions["cand"].load_error is None
    finally:
        runner.close()


def keyed(per_case: list[list[float]]) -> dict[tuple[str, str, int], float]:
    return {("s", f"c{case}", repeat): value for case, values in enumerate(per_case) for repeat, value in enumerate(values)}


def test_repeats_of_the_same_cases_do_not_narrow_the_interval() -> None:
    """Repeats share their case's prompt: eight copies of each case are not eight times the evidence."""
    rng = numpy.random.default_rng(3)
    base = [float(v) for v in numpy.exp(rng.normal(math.log(50), 0.3, 12))]
    cand = [b * math.exp(rng.normal(0.05, 0.10)) for b in base]  # a case × model effect
    once = compare_samples(TTFT_P50, keyed([[c] for c in cand]), keyed([[b] for b in base]), 0.95)
    eight = compare_samples(TTFT_P50, keyed([[c] * 8 for c in cand]), keyed([[b] * 8 for b in base]), 0.95)
    width_once = math.log(once.high) - math.log(once.low)
    width_eight = math.log(eight.high) - math.log(eight.low)
    assert width_eight > 0.9 * width_once  # a per-generation bootstrap would shrink it by about √8
    assert eight.p_value == once.p_value  # the signed-rank test counts cases, not generations


def test_an_interleaved_comparison_is_judged_on_a_busy_host_and_says_so_one_in_turns_is_not(tmp_path: Path) -> None:
    from scripted import Script

    from pytest_mathperf.hostload import HostLoad
    from pytest_mathperf.judge import BudgetPlan, ModelPlan
    from pytest_mathperf.judge_comparisons import judge_comparison

    runner, (backend, suite) = runner_with_plan(tmp_path, ("base", "cand"))
    backend.scripts = {"base": Script(ttft_ms=(5.0, 5.4, 4.8)), "cand": Script(ttft_ms=(15.0, 16.0, 14.5))}
    try:
        for case in suite.cases:
            runner.run_case("base", suite, case, f"{case.id}[base]")
        for model in ("base", "cand"):  # a neighbour on 1.5 cores throughout
            runner.sessions[model].host_load = HostLoad(wall_s=10.0, other_cpu_s=15.0, total_s=20.0)
        plan = BudgetPlan({"cand": ModelPlan("cand", comparisons=(TTFT_P50,), baseline="base")})
        outcome = judge_comparison(runner, plan, "cand", TTFT_P50)
        assert outcome.verdict == "regression" and not outcome.busy  # the whole interval lies beyond the margin
        assert "the host was busy, and both models shared it, interleaved: cand: other processes used 1.5" in outcome.reason
        runner.schedule = "turns"  # each model met its own stretch of the load: no evidence either way
        in_turns = judge_comparison(runner, plan, "cand", TTFT_P50)
        assert in_turns.verdict == "inconclusive" and in_turns.busy
    finally:
        runner.close()
