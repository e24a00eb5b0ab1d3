"""Shared fixtures: a gate run inside ``pytester`` on the bundled demo model, parsed JUnit."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

DEMO_MODEL = "mathperf-tiny"
MODEL_DIR = Path(__file__).resolve().parent.parent / "pytest_mathperf" / "models" / DEMO_MODEL

#: Three problems the demo model answers correctly (none is in its training data).
ARITHMETIC_SUITE = """
suite: arithmetic
defaults:
  max_new_tokens: 64
cases:
  - id: add
    prompt: "What is 427 + 385?"
    answer: 812
    tags: [en]
  - id: sub
    prompt: "计算 105 - 768。"
    answer: -663
    tags: [zh]
  - id: sub-en
    prompt: "What is 640 - 59?"
    answer: 581
    tags: [en]
"""


@dataclass
class GateRun:
    result: pytest.RunResult
    junit: ElementTree.Element

    def testcase(self, name_part: str) -> ElementTree.Element:
        matches = [case for case in self.junit.iter("testcase") if name_part in case.get("name", "")]
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


@pytest.fixture
def run_gate(pytester: pytest.Pytester) -> Callable[..., GateRun]:
    """Run ``pytest --mathperf`` on the demo model in the pytester folder and parse its JUnit XML."""

    def run(*args: str, model: str = DEMO_MODEL, history: bool = False) -> GateRun:
        junit_path = pytester.path / "junit.xml"
        options = ["--mathperf", "-p", "no:cacheprovider", f"--junitxml={junit_path}", "-o", "junit_family=xunit1"]
        if model:
            options += ["--mathperf-model", model]
        if not history:
            options.append("--mathperf-no-history")
        result = pytester.runpytest(*options, *args)
        junit = ElementTree.parse(junit_path).getroot() if junit_path.exists() else ElementTree.Element("none")
        return GateRun(result, junit)

    return run
