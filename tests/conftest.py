"""Shared fixtures: a gate run inside ``pytester`` on the bundled demo model, parsed JUnit."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["servers", "pg"]  # real servers on loopback: HTTP backend (tests/servers.py), PostgreSQL (tests/pg.py)

DEMO_MODEL = "mathperf-tiny"
MODEL_DIR = Path(__file__).resolve().parent.parent / "pytest_mathperf" / "models" / DEMO_MODEL

#: Three problems from the held-out set the demo model never trains on (see suites/demo).
ARITHMETIC_SUITE = """
suite: arithmetic
defaults:
  max_new_tokens: 64
cases:
  - id: add
    prompt: "What is 705 + 583?"
    answer: 1288
    tags: [en]
  - id: sub
    prompt: "计算 501 - 885。"
    answer: -384
    tags: [zh]
  - id: sub-en
    prompt: "What is 527 - 476?"
    answer: 51
    tags: [en]
"""

#: Margins of a candidate against the baseline, for every model on the CPU.
COMPARE = """
version: 1
cards:
  cpu:
    models:
      "*":
        compare:
          ttft_ms: {p50: {max_ratio: 1.25}}
          tokens_per_s: {mean: {min_ratio: 0.8}}
          accuracy: {max_drop: 0.05}
"""
#: Twelve additions any arithmetic model answers: enough samples for an interval.
TWELVE_CASES = "suite: arithmetic\ncases:\n" + "".join(
    f"  - id: c{i}\n    prompt: \"What is {100 + i} + {7 * i}?\"\n    answer: {100 + 8 * i}\n" for i in range(12)
)


@dataclass
class GateRun:
    result: pytest.RunResult
    junit: ElementTree.Element

    def testcase(self, name_part: str) -> ElementTree.Element:
        """The one test case whose ``classname.name`` contains ``name_part`` (``::`` written as ``.``)."""
        wanted = name_part.replace("::", ".")
        matches = [
            case for case in self.junit.iter("testcase") if wanted in f"{case.get('classname')}.{case.get('name')}"
        ]
        assert len(matches) == 1, f"{name_part!r} matches {[c.get('name') for c in matches]}"
        return matches[0]

    def properties(self, name_part: str) -> dict[str, str]:
        case = self.testcase(name_part)
        return {prop.get("name"): prop.get("value") for prop in case.iter("property")}

    @property
    def output(self) -> str:
        return self.result.stdout.str()


def write(pytester: pytest.Pytester, relative: str, text: str) -> Path:
    path = pytester.path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def heavy_modules() -> None:
    """Import what an in-process gate run imports, once, in the outer process.

    ``pytester.runpytest`` restores ``sys.modules`` after each inner run; torch cannot be imported
    a second time in one process (its C extension registers itself once), so it must already be
    there before the first inner run — and before any ``pytester`` takes its snapshot, hence the
    session scope. The plugin's own modules too: re-imported (and their asserts rewritten) for
    every inner run, they cost a quarter of the plugin tests' time. They hold no state from one
    session to the next (a session's state lives in its config), so sharing them hides nothing;
    a fresh import is tested in a subprocess (test_plugin.py).
    """
    import importlib
    import pkgutil

    import math_verify  # noqa: F401
    import scipy.stats  # noqa: F401 - statistics for budgets and comparisons: slow to import anew per inner run
    import torch  # noqa: F401
    import transformers.models.qwen2.modeling_qwen2  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    import pytest_mathperf

    for module in pkgutil.walk_packages(pytest_mathperf.__path__, "pytest_mathperf."):
        importlib.import_module(module.name)


@pytest.fixture
def run_gate(heavy_modules: None, pytester: pytest.Pytester) -> Callable[..., GateRun]:
    """Run ``pytest --mathperf`` on the demo model in the pytester folder and parse its JUnit XML."""

    def run(*args: str, model: str = DEMO_MODEL, history: bool = False) -> GateRun:
        # with "=", pytest never takes a folder for a test path
        options = ["-p", "no:cacheprovider", *([f"--mathperf-model={model}"] if model else [])]
        return _gate(pytester, options, args, history)

    return run


def _gate(pytester: pytest.Pytester, options: list[str], args: tuple[str, ...], history: bool) -> GateRun:
    """Run ``pytest --mathperf`` with ``options`` and ``args`` in the pytester folder; parse its JUnit XML."""
    junit_path = pytester.path / "junit.xml"
    options = ["--mathperf", f"--junitxml={junit_path}", "-o", "junit_family=xunit1", *options]
    if not history:
        options.append("--mathperf-no-history")
    result = pytester.runpytest(*options, *args)
    junit = ElementTree.parse(junit_path).getroot() if junit_path.exists() else ElementTree.Element("none")
    return GateRun(result, junit)


@pytest.fixture
def run_scripted(heavy_modules: None, pytester: pytest.Pytester) -> Callable[..., GateRun]:
    """Run the gate on scripted models (tests/scripted.py): the plugin's logic without a model's cost.

    ``scripts`` maps a model name to ``Script`` keyword arguments (``*`` for any other model).
    """

    def run(
        *args: str,
        scripts: dict[str, dict] | None = None,
        models: tuple[str, ...] = (DEMO_MODEL,),
        history: bool = False,
        cache: bool = False,
        busy_guard: bool = False,
    ) -> GateRun:
        from scripted import conftest_source

        (pytester.path / "conftest.py").write_text(conftest_source(scripts or {"*": {}}), encoding="utf-8")
        options = [] if cache else ["-p", "no:cacheprovider"]
        # on the CPU wherever the tests run: the budgets the tests write are for the card "cpu"
        options += ["--mathperf-backend=scripted", "--mathperf-device=cpu", *(f"--mathperf-model={model}" for model in models)]
        if not busy_guard:  # scripted timings are set by the test, whatever the host is doing
            options.append("--mathperf-busy-guard=off")
        return _gate(pytester, options, args, history)

    return run
