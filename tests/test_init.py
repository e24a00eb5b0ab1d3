"""`mathperf init`: a new project gets suites, budgets, pytest options and a gate workflow, never at
the cost of a file it already has; then the demo gate runs there as the README says."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from pytest_mathperf.cli import main
from pytest_mathperf.scaffold import CURATED_SUITES, GATE_WORKFLOW, STARTER_SUITES

ROOT = Path(__file__).resolve().parent.parent
STARTER_FILES = [
    *(f"suites/{name}" for name in STARTER_SUITES),
    "thresholds.yaml",
    str(GATE_WORKFLOW),
    "pyproject.toml",
]


def init(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["init", *args])
    return code, capsys.readouterr().out


def files_in(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_an_empty_folder_gets_the_starter_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = init(capsys, str(tmp_path / "new"))
    assert code == 0, out
    assert files_in(tmp_path / "new") == sorted(STARTER_FILES)
    for name in STARTER_SUITES:
        assert (tmp_path / "new" / "suites" / name).read_text("utf-8") == (CURATED_SUITES / name).read_text("utf-8")
    assert out.splitlines()[-1] == f"next: cd {tmp_path / 'new'} && pytest --mathperf --mathperf-model mathperf-tiny   (the demo gate, on the CPU)"
    assert f"wrote {tmp_path / 'new' / 'thresholds.yaml'}" in out.splitlines()
    thresholds = (tmp_path / "new" / "thresholds.yaml").read_text("utf-8")
    assert "\nno_budget: fail\n" in thresholds
    for policy in ("#   fail ", "#   skip ", "#   record "):
        assert policy in thresholds  # each policy explained
    assert '\n  # "NVIDIA GeForce RTX 3090":\n' in thresholds  # the GPU example, commented out
    options = (tmp_path / "new" / "pyproject.toml").read_text("utf-8")
    assert options.startswith("[tool.pytest.ini_options]\n") and 'mathperf_suites = ["suites"]' in options
    workflow = (tmp_path / "new" / GATE_WORKFLOW).read_text("utf-8")
    assert "@@" not in workflow and 'paths: ["suites/**", "thresholds.yaml", "pyproject.toml", ' in workflow


def test_the_starter_project_passes_lint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert init(capsys, str(tmp_path))[0] == 0
    monkeypatch.chdir(tmp_path)  # lint's defaults are relative: suites, thresholds.yaml
    assert main(["lint"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "mathperf lint: 4 suite files, 102 cases, thresholds.yaml ok"


def test_files_in_the_way_are_each_named_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "algebra.yaml").write_text("mine\n", "utf-8")
    (tmp_path / "thresholds.yaml").write_text("mine\n", "utf-8")
    code, out = init(capsys, str(tmp_path))
    assert code == 1
    assert out.splitlines() == [
        f"mathperf init: nothing written in {tmp_path}:",
        "  suites/algebra.yaml exists",
        "  thresholds.yaml exists (--force overwrites the suites, thresholds.yaml and the workflow)",
    ]
    assert files_in(tmp_path) == ["suites/algebra.yaml", "thresholds.yaml"]
    assert (tmp_path / "thresholds.yaml").read_text("utf-8") == "mine\n"


def test_a_file_is_not_a_project_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine\n", "utf-8")
    assert init(capsys, str(tmp_path / "notes.txt")) == (1, f"mathperf init: {tmp_path / 'notes.txt'} is a file, not a folder\n")


def test_a_file_where_a_folder_must_go_is_named_and_nothing_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".github").write_text("not a folder")
    for extra in ([], ["--force"]):  # --force replaces files, never a file standing where a folder goes
        assert main(["init", str(tmp_path), *extra]) == 1
        assert capsys.readouterr().out.splitlines() == [
            f"mathperf init: nothing written in {tmp_path}:",
            "  .github is a file, where .github/workflows/mathperf-gate.yml needs a folder",
        ]
        assert sorted(path.name for path in tmp_path.iterdir()) == [".github"]


def test_force_overwrites_the_starter_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "thresholds.yaml").write_text("mine\n", "utf-8")
    code, _ = init(capsys, str(tmp_path), "--force")
    assert code == 0
    assert "no_budget: fail" in (tmp_path / "thresholds.yaml").read_text("utf-8")


def test_an_existing_pyproject_is_appended_to(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = '[project]\nname = "my-models"\nversion = "1.0"'  # no final newline
    (tmp_path / "pyproject.toml").write_text(original, "utf-8")
    code, out = init(capsys, str(tmp_path))
    assert code == 0
    assert f"appended to {tmp_path / 'pyproject.toml'}" in out.splitlines()
    text = (tmp_path / "pyproject.toml").read_text("utf-8")
    assert text.startswith(original + "\n\n[tool.pytest.ini_options]\n")
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    parsed = tomllib.loads(text)
    assert parsed["project"]["name"] == "my-models"
    assert parsed["tool"]["pytest"]["ini_options"]["mathperf_thresholds"] == "thresholds.yaml"


@pytest.mark.parametrize(
    ("name", "content", "shown"),
    [
        ("pyproject.toml", '[project]\nname = "x"\n\n[tool.pytest.ini_options]\naddopts = "-q"\n', 'mathperf_suites = ["suites"]'),
        ("pytest.ini", "[pytest]\naddopts = -q\n", "mathperf_suites = suites"),
        ("tox.ini", "[tox]\nenvlist = py311\n\n[pytest]\naddopts = -q\n", "mathperf_history = .mathperf/history.db"),
    ],
)
def test_existing_pytest_settings_are_never_touched_even_with_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, shown: str
) -> None:
    (tmp_path / name).write_text(content, "utf-8")
    code, out = init(capsys, str(tmp_path), "--force")
    assert code == 1
    assert out.splitlines()[1].startswith(f"  {name} ")
    assert f"    {shown}" in out.splitlines()  # the lines to add, in that file's syntax
    assert files_in(tmp_path) == [name]
    assert (tmp_path / name).read_text("utf-8") == content


def test_a_tox_ini_without_pytest_settings_is_no_obstacle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tox.ini").write_text("[tox]\nenvlist = py311\n", "utf-8")
    assert init(capsys, str(tmp_path))[0] == 0
    assert (tmp_path / "pyproject.toml").is_file()


def test_the_demo_gate_runs_in_a_new_project(tmp_path: Path, no_server_starting: None) -> None:
    """The README's path for a pip user: `mathperf init`, then the gate, in a folder of its own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    project = tmp_path / "project"
    done = subprocess.run(
        [sys.executable, "-m", "pytest_mathperf.cli", "init", str(project)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    gate = subprocess.run(
        [sys.executable, "-m", "pytest", "--mathperf", "--mathperf-model", "mathperf-tiny", "--junitxml=junit.xml"],
        cwd=project, env=env, capture_output=True, text=True, timeout=1200, check=False,
    )
    output = gate.stdout + gate.stderr
    cases = list(ElementTree.parse(project / "junit.xml").iter("testcase"))
    outcome = {
        f"{case.get('classname')}.{case.get('name')}": next(
            (child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed"
        )
        for case in cases
    }
    suite_cases = {name: result for name, result in outcome.items() if name.startswith("suites.demo.arithmetic")}
    prefix = "thresholds.yaml.mathperf-tiny."
    budgets = {name.removeprefix(prefix): result for name, result in outcome.items() if name.startswith(prefix)}
    assert len(suite_cases) == 48 and set(suite_cases.values()) == {"passed"}, output[-3000:]
    assert budgets["arithmetic.accuracy"] == "passed"
    assert "skipped" not in budgets.values() and len(budgets) == 6, budgets  # every budget judged
    # Latency budgets leave 10x room over a quiet 2-core machine, but a shared one can be slower
    # still; the outcome of those is the machine's, everything else must pass.
    timing = {"ttft_ms.p50", "ttft_ms.p95", "tokens_per_s.mean"}
    failed = {name for name, result in budgets.items() if result != "passed"}
    assert failed <= timing, output[-3000:]
    assert gate.returncode == (1 if failed else 0), output[-3000:]
    assert (project / ".mathperf" / "history.db").is_file()  # the ini's history path, relative to the project
