"""Run context: label, commit, branch and CI run come from the CI's variables, else from git."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pytest_mathperf.context import file_fingerprint, run_context


def test_github_variables_name_the_run(tmp_path: Path) -> None:
    environ = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": "abc123", "GITHUB_REF_NAME": "main", "GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "2"}
    context = run_context("candidate", tmp_path, environ)
    assert context == {"label": "candidate", "git_commit": "abc123", "git_branch": "main", "ci_run_id": "42.2", "ci": "github"}


def test_gitlab_variables_name_the_run(tmp_path: Path) -> None:
    environ = {"GITLAB_CI": "true", "CI_COMMIT_SHA": "def456", "CI_COMMIT_REF_NAME": "release", "CI_PIPELINE_ID": "7"}
    assert run_context(None, tmp_path, environ) == {
        "label": "", "git_commit": "def456", "git_branch": "release", "ci_run_id": "7", "ci": "gitlab"
    }


def test_outside_ci_git_is_asked(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", "-b", "trunk", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_text("a")
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    context = run_context(None, tmp_path, {})
    assert context["git_commit"] == head and context["git_branch"] == "trunk"


def test_a_suite_fingerprint_changes_with_its_content(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("cases: []\n")
    before = file_fingerprint([suite])
    assert file_fingerprint([suite]) == before
    suite.write_text("cases: [1]\n")
    assert file_fingerprint([suite]) != before and len(before) == 12
