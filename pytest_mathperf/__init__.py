"""pytest-mathperf: a pytest plugin and CI gate for math-reasoning language models.

Public names are imported on first use, so that having the plugin installed costs a plain
``pytest`` run nothing (math-verify and sympy are heavy).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("pytest-mathperf")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_PUBLIC = {
    "check_answer": "pytest_mathperf.answers",
    "Verdict": "pytest_mathperf.answers",
    "load_suite": "pytest_mathperf.suite",
    "load_thresholds": "pytest_mathperf.thresholds",
    "Generation": "pytest_mathperf.backends",
    "GenerationRequest": "pytest_mathperf.backends",
    "Backend": "pytest_mathperf.backends",
    "OutputSurface": "pytest_mathperf.outputs",
    "RunView": "pytest_mathperf.outputs.view",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'pytest_mathperf' has no attribute {name!r}")
