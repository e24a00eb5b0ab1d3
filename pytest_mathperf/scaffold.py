"""``mathperf init``: a new project's suites, budgets, pytest options and gate workflow.

Everything written comes from package data (the curated suites and ``init_templates/``), so a
project made from a pip install is the same as one made from a checkout. Existing files are never
overwritten without ``--force``, and an existing ``pyproject.toml`` is appended to, never replaced.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pytest_mathperf import __version__

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES = PACKAGE_DIR / "init_templates"
#: The curated suites, shipped as package data (in a checkout, a link to the repository's suites/).
CURATED_SUITES = PACKAGE_DIR / "suites"
#: What a new project starts with: the demo model's suite, so the gate runs at once on a CPU, and
#: the three suites the commented GPU example in thresholds.yaml budgets.
STARTER_SUITES = ("demo/arithmetic.yaml", "algebra.yaml", "geometry.yaml", "word-problems.yaml")
GATE_WORKFLOW = Path(".github/workflows/mathperf-gate.yml")
#: Other places pytest reads options from, with the section that makes it use them. pytest takes
#: the first it finds, so options appended to pyproject.toml would either be ignored (files read
#: before it) or silently replace the project's own settings (files read after it).
OTHER_PYTEST_CONFIGS = {
    "pytest.toml": None,
    ".pytest.toml": None,
    "pytest.ini": None,
    ".pytest.ini": None,
    "tox.ini": re.compile(r"^\[pytest\]", re.MULTILINE),
    "setup.cfg": re.compile(r"^\[tool:pytest\]", re.MULTILINE),
}
PYTEST_TABLE = re.compile(r"^\s*\[\s*tool\s*\.\s*pytest\s*(\.\s*ini_options\s*)?\]", re.MULTILINE)


class InitError(Exception):
    """Nothing was written: the message says which files are in the way and what to do."""


@dataclass(frozen=True)
class PlannedFile:
    path: Path  # relative to the project folder
    text: str
    append: bool = False  # appended to an existing file instead of written


def gate_workflow(install: str, suites: str, trigger_paths: tuple[str, ...]) -> str:
    """The gate workflow with its three project-specific values filled in (one template for all)."""
    text = (TEMPLATES / "mathperf-gate.yml").read_text("utf-8")
    values = {"@@INSTALL@@": install, "@@SUITES@@": suites, "@@PATHS@@": json.dumps(list(trigger_paths))}
    for token, value in values.items():
        text = text.replace(token, value)
    return text


def _new_project_workflow(shards: int | None = None) -> str:
    released = "+" not in __version__  # a source tree never installed says 0+unknown
    trigger_paths = ("suites/**", "thresholds.yaml", "pyproject.toml", str(GATE_WORKFLOW))
    if shards is not None:
        from pytest_mathperf.sharding import sharded_workflow

        # the fleet history is PostgreSQL: the shards and the judge need psycopg
        install = f"pytest-mathperf[postgres]=={__version__}" if released else "pytest-mathperf[postgres]"
        return sharded_workflow((TEMPLATES / "mathperf-gate-sharded.yml").read_text("utf-8"), install, "suites", trigger_paths, shards)
    return gate_workflow(
        install=f"pytest-mathperf=={__version__}" if released else "pytest-mathperf", suites="suites", trigger_paths=trigger_paths
    )


def plan(project: Path, force: bool = False, shards: int | None = None) -> list[PlannedFile]:
    """What ``init`` would write into ``project``; raises InitError naming every file in the way."""
    if project.exists() and not project.is_dir():
        raise InitError(f"mathperf init: {project} is a file, not a folder")
    planned = [PlannedFile(Path("suites") / name, (CURATED_SUITES / name).read_text("utf-8")) for name in STARTER_SUITES]
    planned.append(PlannedFile(Path("thresholds.yaml"), (TEMPLATES / "thresholds.yaml").read_text("utf-8")))
    planned.append(PlannedFile(GATE_WORKFLOW, _new_project_workflow(shards)))
    conflicts = [f"{entry.path} exists" for entry in planned if (project / entry.path).exists()]
    if conflicts and force:
        conflicts = []
    # a file where a folder must go (a `.github` file, say): found now, before anything is written
    conflicts += sorted({
        f"{folder.relative_to(project)} is a file, where {entry.path} needs a folder"
        for entry in planned
        for folder in (project / entry.path).parents
        if project in folder.parents and folder.exists() and not folder.is_dir()
    })
    pyproject_entry, pyproject_problem = _pyproject(project)
    if pyproject_problem:
        conflicts.append(pyproject_problem)  # --force never replaces a project's pyproject.toml
    if conflicts:
        replaceable = any(conflict.endswith(" exists") for conflict in conflicts)
        hint = " (--force overwrites the suites, thresholds.yaml and the workflow)" if replaceable and not force else ""
        raise InitError(f"mathperf init: nothing written in {project}:\n  " + "\n  ".join(conflicts) + hint)
    return [*planned, pyproject_entry]


def _pyproject(project: Path) -> tuple[PlannedFile, str | None]:
    """The options block, as a new pyproject.toml or appended to the project's; else why not."""
    block = (TEMPLATES / "pytest-options.toml").read_text("utf-8")
    options = block.split("\n", 1)[1]
    for name, section in OTHER_PYTEST_CONFIGS.items():
        path = project / name
        if path.is_file() and (section is None or section.search(path.read_text("utf-8", errors="replace"))):
            lines = options if name.endswith(".toml") else _as_ini(options)
            return PlannedFile(Path("pyproject.toml"), ""), (
                f"{name} holds this project's pytest settings: add these options to it yourself:\n" + _indented(lines)
            )
    path = project / "pyproject.toml"
    if not path.exists():
        return PlannedFile(Path("pyproject.toml"), block), None
    text = path.read_text("utf-8")
    if PYTEST_TABLE.search(text):
        return PlannedFile(Path("pyproject.toml"), ""), (
            "pyproject.toml already has pytest settings ([tool.pytest...]): add these options to them yourself:\n"
            + _indented(options)
        )
    separator = "" if not text else "\n" if text.endswith("\n") else "\n\n"
    return PlannedFile(Path("pyproject.toml"), separator + block, append=True), None


def _as_ini(options: str) -> str:
    """The TOML options in ini syntax: ``["suites"]`` and ``"thresholds.yaml"`` lose their quotes."""
    return re.sub(r'\[?"([^"]*)"\]?', r"\1", options)


def _indented(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip("\n").splitlines())


def init_project(project: Path, force: bool = False, shards: int | None = None) -> list[PlannedFile]:
    """Write the starter files into ``project`` (made if missing); returns what was written."""
    written = plan(project, force, shards)
    for entry in written:
        target = project / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.append:
            with target.open("a", encoding="utf-8") as handle:
                handle.write(entry.text)
        else:
            target.write_text(entry.text, "utf-8")
    return written


def run_init(project: Path, force: bool, shards: int | None = None) -> int:
    """The ``mathperf init`` command: writes, then says what was written and what to run next."""
    try:
        written = init_project(project, force, shards)
    except InitError as error:
        print(error)
        return 1
    except OSError as error:  # a folder that cannot be made or written, after the checks above
        print(f"mathperf init: {error.filename or project}: {error.strerror or error}")
        return 1
    for entry in written:
        print(f"{'appended to' if entry.append else 'wrote'} {project / entry.path}")
    where = "" if project.resolve() == Path.cwd().resolve() else f"cd {project} && "
    print(f"next: {where}pytest --mathperf --mathperf-model mathperf-tiny   (the demo gate, on the CPU)")
    return 0
