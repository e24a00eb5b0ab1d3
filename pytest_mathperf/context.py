"""Where a run came from: its label, commit, branch and CI run, and the content of each suite.

Recorded with every run, so the trend report can tell a change (a new suite case, other weights,
a busy host) from a regression, and a reader can find the CI run behind a point.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

#: (environment variable, context key) for the CI systems that set them, first match wins.
_CI_VARIABLES: tuple[tuple[str, str], ...] = (
    ("GITHUB_SHA", "git_commit"),
    ("CI_COMMIT_SHA", "git_commit"),
    ("GITHUB_HEAD_REF", "git_branch"),  # set for pull requests only
    ("GITHUB_REF_NAME", "git_branch"),
    ("CI_COMMIT_REF_NAME", "git_branch"),
    ("GITHUB_RUN_ID", "ci_run_id"),
    ("CI_PIPELINE_ID", "ci_run_id"),
)


def run_context(label: str | None, folder: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Label, git commit and branch, CI provider and run id; git is asked only outside CI."""
    environ = os.environ if environ is None else environ
    context: dict[str, str] = {"label": label or ""}
    for variable, key in _CI_VARIABLES:
        if environ.get(variable) and not context.get(key):
            context[key] = environ[variable]
    if environ.get("GITHUB_ACTIONS") == "true":
        context["ci"] = "github"
        if environ.get("GITHUB_RUN_ATTEMPT"):
            context["ci_run_id"] = f"{context.get('ci_run_id', '')}.{environ['GITHUB_RUN_ATTEMPT']}"
    elif environ.get("GITLAB_CI") == "true":
        context["ci"] = "gitlab"
    if "git_commit" not in context:
        context["git_commit"] = _git(folder, "rev-parse", "HEAD")
    if "git_branch" not in context:
        context["git_branch"] = _git(folder, "rev-parse", "--abbrev-ref", "HEAD")
    return context


def _git(folder: Path, *args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def file_fingerprint(paths: list[Path]) -> str:
    """A short content hash of a suite file and the files it imports cases from."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"(unreadable)")
    return digest.hexdigest()[:12]
