"""``mathperf lint``: check suites and thresholds without loading a model, so CI catches a broken
suite or a wrong expected answer before a GPU runner spends an hour on it.

Errors (exit 1): a suite that does not load (YAML, schema, duplicate ids, a bad JSONL record),
a ``cases_from`` file outside the project (the thresholds file's folder), a derivation that disagrees with its case's answer or does not evaluate, a per-case budget on an
unknown metric (the suite loader reports it at the key's own line), two suite files with the same
suite name, a thresholds file that does not load, a budget for a suite that none of the linted
files nor the project's ``suites`` folder define (it would judge nothing), and a model
entry a small edit away from another under the same card (one of the two judges nothing).
Warnings (exit 0): a missing thresholds file (a project may gate on answers only). Cases without
a derivation are not flagged here: the project's own test requires them for shipped suites, while
a team's suite may rely on answers it trusts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pytest_mathperf.derivations import check_derivation
from pytest_mathperf.suite import Suite, is_suite_file, load_suite, name_taken
from pytest_mathperf.thresholds import Thresholds, load_thresholds, near_miss_entries
from pytest_mathperf.yamlfile import SchemaError, SchemaErrors

_THRESHOLDS_NAMES = ("thresholds.yaml", "thresholds.yml")


def lint(paths: list[Path], thresholds: Path, *, explicit: bool = True, project_suites: Path | None = None) -> int:
    """Print one ``path:line: message`` per problem and a summary line; 0 when there are none.

    A missing thresholds file is a problem when it was named (``explicit``), as the gate refuses
    a ``--mathperf-thresholds`` that is not there, and a warning otherwise. The suites of
    ``project_suites`` (a folder) count as defined when a budget names its suite, so linting one
    file does not call the budgets of the others errors.
    """
    problems: list[str] = []
    warnings: list[str] = []
    files = _suite_files(paths, thresholds, problems)
    project = thresholds.resolve().parent  # the thresholds file sits at the project's root; cases_from stays under it
    suites: list[Suite] = []
    for path in files:
        try:
            suites.append(load_suite(path, root=project))
        except SchemaErrors as errors:
            problems.extend(str(error) for error in errors.errors)
        except SchemaError as error:
            problems.append(str(error))
    for suite in suites:
        problems.extend(_case_problems(suite))
    problems.extend(_duplicate_names(suites))

    defined = {suite.name for suite in suites} | _suite_names(project_suites, thresholds)
    budgets_text = _lint_thresholds(thresholds, defined, problems, warnings, explicit)
    for line in problems:
        print(line)
    for line in warnings:
        print(line)
    cases = sum(len(suite.cases) for suite in suites)
    summary = f"mathperf lint: {len(files)} suite files, {cases} cases, {budgets_text}"
    if problems:
        summary += f", {len(problems)} problem{'s' if len(problems) != 1 else ''}"
    if warnings:
        summary += f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
    print(summary)
    return 1 if problems else 0


def _suite_names(folder: Path | None, thresholds: Path) -> set[str]:
    """Names of the suites in the project's suite folder; one that does not load is not linted here."""
    if folder is None or not folder.is_dir():
        return set()
    names = set()
    for path in _suite_files([folder], thresholds, []):
        try:
            names.add(load_suite(path).name)
        except (SchemaError, SchemaErrors):
            continue
    return names


def _suite_files(paths: Iterable[Path], thresholds: Path, problems: list[str]) -> list[Path]:
    """Suite files under ``paths`` (recursively), never the thresholds file itself."""
    skip = thresholds.resolve() if thresholds.exists() else None
    found: list[Path] = []
    for path in paths:
        if path.is_file() and not is_suite_file(path):  # the gate would not collect it either
            problems.append(f"{path}: not a suite file (*.yaml, *.yml)")
            continue
        if path.is_file():
            candidates = [path]
        elif path.is_dir():
            candidates = sorted(item for item in path.rglob("*") if item.is_file() and is_suite_file(item))
            if not candidates:
                problems.append(f"{path}: no suite files (*.yaml, *.yml) found")
        else:
            problems.append(f"{path}: no such file or folder")
            continue
        for candidate in candidates:
            if candidate.name in _THRESHOLDS_NAMES or candidate.resolve() == skip:
                continue
            if candidate not in found:
                found.append(candidate)
    return found


def _case_problems(suite: Suite) -> list[str]:
    """Derivations that disagree with their answers."""
    problems = []
    for case in suite.cases:
        where = f"{case.source or suite.path}:{case.line}"
        problem = check_derivation(case)
        if problem and not problem.startswith("no derivation"):
            problems.append(f"{where}: case {case.id!r}: {problem}")
    return problems


def _duplicate_names(suites: list[Suite]) -> list[str]:
    first: dict[str, Suite] = {}
    problems = []
    for suite in suites:
        if suite.name in first:
            problems.append(name_taken(suite, first[suite.name].path))
        else:
            first[suite.name] = suite
    return problems


def _lint_thresholds(path: Path, suite_names: set[str], problems: list[str], warnings: list[str], explicit: bool) -> str:
    """Load the thresholds file; budgets for suites no linted file defines and near-miss entries are errors."""
    if not path.exists():
        if explicit:
            problems.append(f"{path}: no such file (--thresholds)")
        else:
            warnings.append(f"{path}: warning: not found, budgets not checked (pass --thresholds PATH)")
        return f"{path} not found"
    try:
        parsed: Thresholds = load_thresholds(path)
    except SchemaError as error:
        problems.append(str(error))
        return f"{path} has problems"
    for models in parsed.cards.values():
        for entry in models.values():
            for budget in entry.budgets:
                if budget.scope == "suite" and budget.suite not in suite_names:
                    problems.append(
                        f"{budget.source}:{budget.line}: budget {budget.name} is for suite {budget.suite!r}, which "
                        "neither the linted suite files nor the suites folder define, so it judges nothing "
                        "(add the suite, or remove the budget)"
                    )
    for card, pattern, entry in near_miss_entries(parsed):
        problems.append(
            f"{path}:{entry.line}: model entry {pattern!r} under card {card!r} is a small edit away from another "
            "entry there; one of the two judges nothing (a typo?)"
        )
    return f"{path} ok" if not problems else f"{path} has problems"
