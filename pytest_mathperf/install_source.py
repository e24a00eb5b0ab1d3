"""Where the running pytest-mathperf came from, as a pip requirement a CI runner can install.

``mathperf init`` writes the gate workflow's install line from it, so the line works as written:
a release from an index is pinned, a wheel file is copied into the project beside the workflow,
a Git URL is pinned to its commit. A copy the runner cannot reach (an editable checkout on this
machine) gives no line: the workflow then asks for the repository variable ``MATHPERF_INSTALL``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

#: Where init puts the wheel this copy was installed from, inside the project.
WHEEL_FOLDER = PurePosixPath("wheels")


@dataclass(frozen=True)
class InstallSource:
    """The workflow's install requirement ("" when the runner cannot reach this copy), and why."""

    requirement: str
    how: str  # one line for the person running init
    wheel: Path | None = None  # a wheel (or sdist) to copy into the project at ``requirement``


def running_copy_source() -> InstallSource:
    """How the installed pytest-mathperf distribution was installed (PEP 610's direct_url.json)."""
    try:
        installed = distribution("pytest-mathperf")
    except PackageNotFoundError:
        return source_from(None, None)
    recorded = installed.read_text("direct_url.json")
    return source_from(json.loads(recorded) if recorded else None, installed.version)


def source_from(direct_url: dict[str, Any] | None, version: str | None) -> InstallSource:
    """The requirement for a distribution of ``version`` installed as ``direct_url`` records (None: from an index)."""
    unreachable = "set the repository variable MATHPERF_INSTALL to what pip installs pytest-mathperf from (README, 'In CI')"
    if version is None:
        return InstallSource("", f"pytest-mathperf runs from a source tree that was never installed: {unreachable}")
    if direct_url is None:
        return InstallSource(f"pytest-mathperf=={version}", f"pytest-mathperf {version} was installed from a package index")
    url = direct_url.get("url", "")
    if "vcs_info" in direct_url:
        info = direct_url["vcs_info"]
        commit = info.get("commit_id", "")
        return InstallSource(f"pytest-mathperf @ {info.get('vcs', 'git')}+{url}@{commit}", f"installed from {url} at {commit}")
    if "archive_info" in direct_url:
        parsed = urlparse(url)
        if parsed.scheme != "file":
            return InstallSource(f"pytest-mathperf @ {url}", f"installed from {url}")
        archive = Path(unquote(parsed.path))
        if archive.is_file():
            relative = f"./{WHEEL_FOLDER / archive.name}"
            return InstallSource(relative, f"installed from {archive}: copied to {relative[2:]}, commit it", wheel=archive)
        return InstallSource("", f"installed from {archive}, which is gone: {unreachable}")
    return InstallSource("", f"installed from the folder {unquote(urlparse(url).path)}, on this machine only: {unreachable}")
