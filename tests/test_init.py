"""`mathperf init`: a new project gets suites, budgets, pytest options and a gate workflow, never at
the cost of a file it already has; then the demo gate runs there as the README says."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

from pytest_mathperf.cli import main
from pytest_mathperf.install_source import source_from
from pytest_mathperf.scaffold import CURATED_SUITES, GATE_WORKFLOW, STARTER_SUITES, init_project

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


def test_files_in_the_way_are_each_kept_and_named_and_the_others_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "algebra.yaml").write_text("mine\n", "utf-8")
    (tmp_path / "thresholds.yaml").write_text("mine\n", "utf-8")
    code, out = init(capsys, str(tmp_path))
    assert code == 0
    assert f"kept {tmp_path / 'suites' / 'algebra.yaml'} (it exists; --force replaces it)" in out.splitlines()
    assert f"kept {tmp_path / 'thresholds.yaml'} (it exists; --force replaces it)" in out.splitlines()
    assert files_in(tmp_path) == sorted(STARTER_FILES)
    assert (tmp_path / "thresholds.yaml").read_text("utf-8") == "mine\n"
    assert (tmp_path / "suites" / "algebra.yaml").read_text("utf-8") == "mine\n"


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
    ("name", "content", "section", "shown"),
    [
        ("pyproject.toml", '[project]\nname = "x"\n\n[tool.pytest.ini_options]\naddopts = "-q"\n', "[tool.pytest.ini_options]", 'mathperf_suites = ["suites"]'),
        ("pytest.ini", "[pytest]\naddopts = -q\n", None, "mathperf_suites = suites"),
        ("tox.ini", "[tox]\nenvlist = py311\n\n[pytest]\naddopts = -q\n", "[pytest]", "mathperf_history = .mathperf/history.db"),
    ],
)
def test_an_existing_pytest_project_gets_the_starter_files_and_the_lines_to_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, section: str | None, shown: str
) -> None:
    (tmp_path / name).write_text(content, "utf-8")
    for extra in ([], ["--force"]):  # --force replaces starter files, never the project's pytest settings
        code, out = init(capsys, str(tmp_path), *extra)
        assert code == 0, out
        where = f"its {section} section" if section else "it"
        assert f"{name} holds this project's pytest settings, which init never changes: add these lines to {where}:" in out.splitlines()
        assert f"    {shown}" in out.splitlines()  # the lines to add, in that file's syntax
        assert files_in(tmp_path) == sorted([name, *STARTER_FILES[:-1]])
        assert (tmp_path / name).read_text("utf-8") == content


def test_options_already_pasted_in_are_recognised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\nmathperf_suites = ["suites"]\n', "utf-8")
    code, out = init(capsys, str(tmp_path))
    assert code == 0
    assert "pyproject.toml already has mathperf options: left as it is" in out.splitlines()
    assert "add these lines" not in out


def test_a_tox_ini_without_pytest_settings_is_no_obstacle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tox.ini").write_text("[tox]\nenvlist = py311\n", "utf-8")
    assert init(capsys, str(tmp_path))[0] == 0
    assert (tmp_path / "pyproject.toml").is_file()


def test_the_demo_gate_runs_in_an_existing_pytest_project(tmp_path: Path, no_server_starting: None) -> None:
    """The README's path for a team with a pytest project: `mathperf init`, paste the lines it
    prints into the project's own pytest settings, then the gate, green on any host: on a busy one
    a timing budget may be inconclusive (skipped, with the reason), never failed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    project = tmp_path / "project"
    project.mkdir()
    own_settings = '[project]\nname = "our-models"\n\n[tool.pytest.ini_options]\naddopts = "-ra"\n'
    (project / "pyproject.toml").write_text(own_settings, "utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest_mathperf.cli", "init", str(project)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (project / "pyproject.toml").read_text("utf-8") == own_settings  # never touched
    to_add = [line[4:] for line in done.stdout.splitlines() if line.startswith("    ")]
    assert to_add and to_add[-1] == 'mathperf_history = ".mathperf/history.db"', done.stdout
    (project / "pyproject.toml").write_text(own_settings + "\n".join(to_add) + "\n", "utf-8")
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
    assert len(budgets) == 6 and budgets["arithmetic.accuracy"] == "passed" and budgets["rss_peak_gb"] == "passed", budgets
    timing = {"ttft_ms.p50", "ttft_ms.p95", "tokens_per_s.mean", "load_s"}
    assert {name for name, result in budgets.items() if result != "passed"} <= timing, output[-3000:]
    for case in cases:  # a timing budget not passed was inconclusive on a busy host, and says so
        skipped = case.find("skipped")
        if skipped is not None:
            assert "the host was busy" in skipped.get("message", ""), output[-3000:]
    assert gate.returncode == 0, output[-3000:]
    assert (project / ".mathperf" / "history.db").is_file()  # the ini's history path, relative to the project


WHEEL_URL = {"url": "file:///nowhere/pytest_mathperf-0.1.0-py3-none-any.whl", "archive_info": {}}


@pytest.mark.parametrize(
    ("direct_url", "version", "requirement"),
    [
        (None, "0.1.0", "pytest-mathperf==0.1.0"),  # from a package index: that release
        (
            {"url": "https://github.com/acme/pytest-mathperf", "vcs_info": {"vcs": "git", "commit_id": "4f2a9c1"}},
            "0.1.0",
            "pytest-mathperf @ git+https://github.com/acme/pytest-mathperf@4f2a9c1",
        ),
        ({"url": "https://files.acme.dev/pytest_mathperf-0.1.0.tar.gz", "archive_info": {}}, "0.1.0", "pytest-mathperf @ https://files.acme.dev/pytest_mathperf-0.1.0.tar.gz"),
        (WHEEL_URL, "0.1.0", ""),  # a wheel file that is gone
        ({"url": "file:///home/me/pytest-mathperf", "dir_info": {"editable": True}}, "0.1.0", ""),  # a checkout here
        (None, None, ""),  # a source tree never installed
    ],
)
def test_the_install_line_is_one_a_runner_can_install_or_none(direct_url: dict | None, version: str | None, requirement: str) -> None:
    source = source_from(direct_url, version)
    assert source.requirement == requirement
    if not requirement:
        assert "set the repository variable MATHPERF_INSTALL" in source.how


def test_a_wheel_install_copies_the_wheel_into_the_project_and_the_workflow_installs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's way from a checkout: a wheel, installed; init brings that wheel along."""
    wheel = tmp_path / "dist" / "pytest_mathperf-0.1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"PK\x03\x04 a wheel's bytes")
    source = source_from({"url": wheel.as_uri(), "archive_info": {"hashes": {}}}, "0.1.0")
    project = tmp_path / "project"
    init_project(project, install=source)
    assert (project / "wheels" / wheel.name).read_bytes() == wheel.read_bytes()
    workflow = yaml.safe_load((project / GATE_WORKFLOW).read_text("utf-8"))
    install = workflow["jobs"]["gate"]["env"]["MATHPERF_INSTALL"]
    assert install == "${{ vars.MATHPERF_INSTALL || './wheels/pytest_mathperf-0.1.0-py3-none-any.whl' }}"
    assert (project / install.split("'")[1]).is_file()  # relative to the checkout, where the step runs


@pytest.mark.parametrize(("value", "code"), [("", 1), ("./wheels/pytest_mathperf-0.1.0-py3-none-any.whl", 0)])
def test_the_workflow_says_what_to_set_when_it_has_nothing_to_install(tmp_path: Path, value: str, code: int) -> None:
    init_project(tmp_path, install=source_from({"url": "file:///home/me/checkout", "dir_info": {}}, "0.1.0"))
    steps = yaml.safe_load((tmp_path / GATE_WORKFLOW).read_text("utf-8"))["jobs"]["gate"]["steps"]
    check = next(step["run"] for step in steps if step.get("name") == "What installs pytest-mathperf")
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", check], env={**os.environ, "MATHPERF_INSTALL": value},
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == code
    if code:
        assert done.stdout.startswith("::error::MATHPERF_INSTALL is empty: set the repository variable MATHPERF_INSTALL ")
