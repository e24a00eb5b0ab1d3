"""Output surfaces: peers that each render the run's one view (``view.py``) somewhere.

A surface has a ``name``, an ``order`` (lower publishes first) and ``publish(view)``, which returns
the lines the terminal shows about it (what it wrote, or why it could not). The surfaces of a
session come from the ``pytest_mathperf_output_surfaces`` hook, so a new one (a PR comment, a
dashboard upload) is one module and one hook implementation; a surface returned under the name of
a built-in one replaces it. Surfaces are published only on the controlling process.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pytest_mathperf.outputs.view import RunView


class OutputSurface(Protocol):
    """Where the run's verdicts are shown; renders the view, never recomputes it."""

    name: str
    order: int

    def publish(self, view: RunView) -> Sequence[str]:
        """Render ``view``; return the lines the terminal shows about it ("wrote X", "X NOT written: why")."""
        ...


def chosen_surfaces(found: Iterable[Iterable[OutputSurface]]) -> list[OutputSurface]:
    """The hook's surfaces, first one of each name (a conftest's replaces a built-in), by order."""
    chosen: dict[str, OutputSurface] = {}
    for surfaces in found:
        for surface in surfaces:
            chosen.setdefault(surface.name, surface)
    return sorted(chosen.values(), key=lambda surface: surface.order)


class OutputNotWritten(Exception):
    """A surface could not write what the user asked for; its text is the line the terminal shows."""


def publish_all(surfaces: Sequence[OutputSurface], view: RunView) -> tuple[list[str], bool]:
    """Publish to every surface; one that breaks is reported, the others still publish, and the
    second value says whether any output that was asked for is missing."""
    lines: list[str] = []
    failed = False
    for surface in surfaces:
        try:
            lines.extend(surface.publish(view))
        except OutputNotWritten as error:
            lines.append(str(error))
            failed = True
        except Exception as error:  # one surface's problem must not hide the gate's verdict on the others
            lines.append(f"mathperf: {surface.name} NOT published: {type(error).__name__}: {error}")
            failed = True
    return lines, failed
