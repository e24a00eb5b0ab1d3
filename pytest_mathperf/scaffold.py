"""``mathperf init``: a new project's suites, budgets, pytest options and gate workflow.

Everything written comes from package data (the curated suites and ``init_templates/``), so a
project made from a pip install is the same as one made from a checkout. Existing files are kept
without ``--force``; a project's own pytest settings are never changed: init prints the lines to add.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from pytest_mathperf.install_source import InstallSource, running_copy_source

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
MATHPERF_OPTION = re.compile(r"^\s*mathperf_\w+\s*[=:]", re.MULTILINE)


class InitError(Exception):
    """Nothing was written: the message says what is in the way and what to do."""


@dataclass(frozen=True)
class PlannedFile:
    path: Path  # relative to the project folder
    text: str
    append: bool = False  # appended to an existing file instead of written
    copied_from: Path | None = None  # a file copied as it is (the wheel the workflow installs)


@dataclass(frozen=True)
class InitPlan:
    """What init writes, what it leaves alone, and what the person must do by hand."""

    files: tuple[PlannedFile, ...]
    kept: tuple[str, ...] = ()  # starter files already there, left as they are
    options_to_add: str | None = None  # the pytest options, for a settings file init never touches
    install: InstallSource = InstallSource("", "")


def gate_workflow(install: str, suites: str, trigger_paths: tuple[str, ...]) -> str:
    """The gate workflow with its three project-specific values filled in (one template for all)."""
    text = (TEMPLATES / "mathperf-gate.yml").read_text("utf-8")
    values = {"@@INSTALL@@": install, "@@SUITES@@": suites, "@@PATHS@@": json.dumps(list(trigger_paths))}
    for token, value in values.items():
        text = text.replace(token, value)
    return text


def _new_project_workflow(install: InstallSource, shards: int | None = None) -> str:
    trigger_paths = ("suites/**", "thresholds.yaml", "pyproject.toml", str(GATE_WORKFLOW))
    if shards is not None:
        from pytest_mathperf.sharding import sharded_workflow

        # the fleet history is PostgreSQL: the shards and the judge need psycopg
        template = (TEMPLATES / "mathperf-gate-sharded.yml").read_text("utf-8")
        return sharded_workflow(template, _with_postgres(install.requirement), "suites", trigger_paths, shards)
    return gate_workflow(install=install.requirement, suites="suites", trigger_paths=trigger_paths)


def _with_postgres(requirement: str) -> str:
    """The install line with the ``postgres`` extra: ``pytest-mathperf[postgres]==X``, ``… @ git+…``, ``wheel.whl[postgres]``."""
    if not requirement:
        return "pytest-mathperf[postgres]"
    if " @ " in requirement:
        name, source = requirement.split(" @ ", 1)
        return f"{name}[postgres] @ {source}"
    name, equals, version = requirement.partition("==")
    return f"{name}[postgres]{equals}{version}"


def plan(project: Path, force: bool = False, install: InstallSource | None = None, shards: int | None = None) -> InitPlan:
    """What ``init`` would do in ``project``; raises InitError only where nothing can be written."""
    if project.exists() and not project.is_dir():
        raise InitError(f"mathperf init: {project} is a file, not a folder")
    install = install if install is not None else running_copy_source()
    planned = [PlannedFile(Path("suites") / name, (CURATED_SUITES / name).read_text("utf-8")) for name in STARTER_SUITES]
    planned.append(PlannedFile(Path("thresholds.yaml"), (TEMPLATES / "thresholds.yaml").read_text("utf-8")))
    planned.append(PlannedFile(GATE_WORKFLOW, _new_project_workflow(install, shards)))
    if install.wheel is not None:
        planned.append(PlannedFile(Path(install.requirement), "", copied_from=install.wheel))
    # a file where a folder must go (a `.github` file, say): found now, before anything is written
    conflicts = sorted({
        f"{folder.relative_to(project)} is a file, where {entry.path} needs a folder"
        for entry in planned
        for folder in (project / entry.path).parents
        if project in folder.parents and folder.exists() and not folder.is_dir()
    })
    if conflicts:
        raise InitError(f"mathperf init: nothing written in {project}:\n  " + "\n  ".join(conflicts))
    kept = tuple(str(entry.path) for entry in planned if (project / entry.path).exists() and not force)
    files = [entry for entry in planned if str(entry.path) not in kept]
    pyproject, options_to_add = _pyproject(project)
    return InitPlan((*files, *([pyproject] if pyproject else [])), kept, options_to_add, install)


def _pyproject(project: Path) -> tuple[PlannedFile | None, str | None]:
    """The options block as a new or appended pyproject.toml; else the lines to add to the project's own settings."""
    block = (TEMPLATES / "pytest-options.toml").read_text("utf-8")
    options = block.split("\n", 1)[1]
    for name, section in OTHER_PYTEST_CONFIGS.items():
        path = project / name
        if path.is_file() and (section is None or section.search(path.read_text("utf-8", errors="replace"))):
            return None, _options_note(path.read_text("utf-8", errors="replace"), name, options)
    path = project / "pyproject.toml"
    if not path.exists():
        return PlannedFile(Path("pyproject.toml"), block), None
    text = path.read_text("utf-8")
    if PYTEST_TABLE.search(text):
        return None, _options_note(text, "pyproject.toml", options)
    separator = "" if not text else "\n" if text.endswith("\n") else "\n\n"
    return PlannedFile(Path("pyproject.toml"), separator + block, append=True), None


def _options_note(settings: str, name: str, options: str) -> str:
    """The lines to add to a project's own pytest settings (in that file's syntax), or that they are there."""
    if MATHPERF_OPTION.search(settings):
        return f"{name} already has mathperf options: left as it is"
    section = {"pyproject.toml": "[tool.pytest.ini_options]", "tox.ini": "[pytest]", "setup.cfg": "[tool:pytest]"}.get(name)
    where = f"its {section} section" if section else "it"
    lines = options if name.endswith(".toml") else _as_ini(options)
    return f"{name} holds this project's pytest settings, which init never changes: add these lines to {where}:\n" + _indented(lines)


def _as_ini(options: str) -> str:
    """The TOML options in ini syntax: ``["suites"]`` and ``"thresholds.yaml"`` lose their quotes."""
    return re.sub(r'\[?"([^"]*)"\]?', r"\1", options)


def _indented(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip("\n").splitlines())


def init_project(project: Path, force: bool = False, install: InstallSource | None = None, shards: int | None = None
) -> InitPlan:
    """Write the starter files into ``project`` (made if missing); returns the plan it carried out."""
    planned = plan(project, force, install, shards)
    for entry in planned.files:
        target = project / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.copied_from is not None:
            shutil.copyfile(entry.copied_from, target)
        elif entry.append:
            with target.open("a", encoding="utf-8") as handle:
                handle.write(entry.text)
        else:
            target.write_text(entry.text, "utf-8")
    return planned


def run_init(project: Path, force: bool, shards: int | None = None) -> int:
    """The ``mathperf init`` command: writes, then says what was written, what to add and what to run next."""
    try:
        done = init_project(project, force, shards=shards)
    except InitError as error:
        print(error)
        return 1
    except OSError as error:  # a folder that cannot be made or written, after the checks above
        print(f"mathperf init: {error.filename or project}: {error.strerror or error}")
        return 1
    for entry in done.files:
        print(f"{'appended to' if entry.append else 'wrote'} {project / entry.path}")
    for path in done.kept:
        print(f"kept {project / path} (it exists; --force replaces it)")
    if done.options_to_add:
        print(done.options_to_add)
    if any(entry.path == GATE_WORKFLOW for entry in done.files):
        print(f"workflow install: {done.install.how}")
    where = "" if project.resolve() == Path.cwd().resolve() else f"cd {project} && "
    print(f"next: {where}pytest --mathperf --mathperf-model mathperf-tiny   (the demo gate, on the CPU)")
    return 0
