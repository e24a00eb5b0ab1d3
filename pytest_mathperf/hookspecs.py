"""Hooks that other plugins and conftest files may implement to extend the gate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest


@pytest.hookspec
def pytest_mathperf_backends() -> Mapping[str, type[Any]]:
    """Return backends to add for this session, as ``{name: class}``.

    Each class follows ``pytest_mathperf.backends.Backend``: constructed with ``BackendOptions``,
    then ``load()``, ``generate(request)`` and ``close()``; set ``in_process = True`` when the model
    runs in this process, so its card and memory are measured here. A model spec ``NAME:model``
    or ``--mathperf-backend NAME`` selects it. The test suite registers a scripted backend this
    way; a third-party engine can too, without an entry point.
    """
    return {}


@pytest.hookspec
def pytest_mathperf_output_surfaces(config: pytest.Config) -> list[Any]:
    """Return output surfaces to publish the run's view to, at the end of the session.

    Each follows ``pytest_mathperf.outputs.OutputSurface``: ``name``, ``order`` and
    ``publish(view)``, where ``view`` is the run's ``RunView`` (verdicts per model, budget,
    comparison and case, their counts and the exit status). The built-in surfaces (terminal,
    Markdown, HTML report) come from the plugin's own implementation, which runs last: a surface
    returned here under one of their names replaces it. Called on the controller only.
    """
    return []
