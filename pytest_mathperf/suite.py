"""Suite files: YAML → frozen ``Suite``/``Case`` values, with errors that name file and line.

A bad file never crashes a session: every problem is a ``SchemaError`` that the plugin turns into
one collection error for that file while the other suites still run.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pytest_mathperf.load import LoadProfile
from pytest_mathperf.thresholds import Budget, case_budgets
from pytest_mathperf.yamlfile import (
    LocatedDict,
    SchemaError,
    SchemaErrors,
    check_keys,
    expect_mapping,
    load_yaml,
    raise_all,
    type_name,
    unknown_keys,
)

T = TypeVar("T")

PassRule = Literal["all", "majority", "any"]
PASS_RULES: tuple[str, ...] = ("all", "majority", "any")

#: Case fields that ``defaults:`` may set for every case of a suite.
DEFAULTABLE_FIELDS: dict[str, Any] = {
    "template": "{prompt}",
    "system": None,
    "max_new_tokens": 2048,
    "temperature": 0.0,
    "top_p": 1.0,
    "repetition_penalty": None,
    "repeats": 1,
    "rel_tol": None,
    "unordered": False,
    "percent": "either",
    "pass_rule": "majority",
    "timeout_s": None,
    "tags": (),
    "budgets": None,
}
CASE_FIELDS = ("id", "prompt", "answer", "derivation", "skip", "xfail", *DEFAULTABLE_FIELDS)
SUITE_FIELDS = ("suite", "description", "models", "defaults", "cases", "cases_from", "load", "latency")
CASES_FROM_FIELDS = ("path", "prompt", "answer", "answer_regex", "id", "tags", "limit")
SUITE_SUFFIXES = (".yaml", ".yml")
_ID_PATTERN = re.compile(r"^[\w.\-+]+$")
#: pytest's own markers: a tag of that name would change how the case runs.
RESERVED_TAGS = frozenset({"skip", "skipif", "xfail", "usefixtures", "filterwarnings", "parametrize", "xdist_group"})
_TAG_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Case:
    """One prompt with its known answer and the settings it is generated with."""

    id: str
    prompt: str
    answer: Any
    line: int
    template: str = "{prompt}"
    system: str | None = None
    max_new_tokens: int = 2048
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float | None = None
    repeats: int = 1
    rel_tol: float | None = None
    unordered: bool = False
    percent: str = "either"  # what "25 %" reads as: 25 (value), 1/4 (fraction) or either
    pass_rule: PassRule = "majority"
    timeout_s: float | None = None
    tags: tuple[str, ...] = ()
    budgets: tuple[Budget, ...] = ()  # parsed once, here, with each key's own line
    skip: str | None = None
    xfail: str | None = None
    derivation: Any = None
    source: Path | None = None  # the JSONL file a case was imported from; ``line`` is its line

    def rendered_prompt(self) -> str:
        """The user message: the template with ``{prompt}`` filled (other braces are literal)."""
        return self.template.replace("{prompt}", self.prompt)

    def passes(self, correct: int, total: int) -> bool:
        """Whether ``correct`` of ``total`` repeats satisfy this case's pass rule."""
        if total == 0:
            return False
        if self.pass_rule == "all":
            return correct == total
        if self.pass_rule == "any":
            return correct > 0
        return correct * 2 > total


@dataclass(frozen=True)
class LatencySample:
    """A suite's own batch-1 latency sample (with ``--mathperf-concurrency``): which repeats, how long."""

    repeats: int | None = None  # the first N repeats of each case; None: the run's setting
    max_new_tokens: int | None = None  # the cap; 0: the case's own; None: the run's setting


@dataclass(frozen=True)
class Suite:
    """A named set of cases from one file, optionally restricted to some models."""

    name: str
    path: Path
    description: str = ""
    models: tuple[str, ...] = ("*",)
    cases: tuple[Case, ...] = ()
    load: LoadProfile | None = None
    load_line: int = 0
    latency: LatencySample = LatencySample()

    def applies_to(self, model: str) -> bool:
        """Whether ``models:`` selects ``model``: any glob matches and no ``!glob`` excludes it."""
        included = [pattern for pattern in self.models if not pattern.startswith("!")] or ["*"]
        excluded = [pattern[1:] for pattern in self.models if pattern.startswith("!")]
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in included) and not any(
            fnmatch.fnmatchcase(model, pattern) for pattern in excluded
        )


def name_taken(suite: Suite, other: Path) -> str:
    """The problem of a second file with one suite name: they would share node ids, budgets and results."""
    line = next(
        (number for number, text in enumerate(suite.path.read_text(encoding="utf-8").splitlines(), 1) if text.startswith("suite:")),
        1,  # the name comes from the file's stem
    )
    return f"{suite.path}:{line}: suite name {suite.name!r} is also used by {other}; give one of them another `suite:` name"


def is_suite_file(path: Path) -> bool:
    return path.suffix in SUITE_SUFFIXES


def load_suite(path: Path, root: Path | None = None) -> Suite:
    """Read and validate one suite file (and any JSONL it imports cases from).

    ``root`` confines ``cases_from``: a suite from a pull request must not read files outside the
    project (the gate passes pytest's rootdir, ``lint`` the folder it runs in).

    Every problem in the file is reported at once, each with its line (within one case, the
    first): a user fixes them all in one go instead of one per run.
    """
    document = load_yaml(path)
    top = expect_mapping(path, document, "a suite file", 1)
    problems = unknown_keys(path, top, SUITE_FIELDS, "the suite")

    def attempt(read: Callable[[], T], fallback: T) -> T:
        try:
            return read()
        except SchemaError as error:
            problems.extend(error.errors if isinstance(error, SchemaErrors) else [error])
            return fallback

    name = top.get("suite", path.stem)
    if not isinstance(name, str) or not _ID_PATTERN.match(name):
        problems.append(SchemaError(path, top.line_of("suite"), f"suite: must be a simple name, got {name!r}"))
        name = path.stem
    description = top.get("description", "")
    if not isinstance(description, str):
        problems.append(SchemaError(path, top.line_of("description"), "description: must be a string"))
    models = attempt(lambda: _string_list(path, top, "models", default=("*",)), ("*",))
    defaults = attempt(lambda: _defaults(path, top), dict(DEFAULTABLE_FIELDS))

    cases: list[Case] = []
    raw_cases = top.get("cases", [])
    if not isinstance(raw_cases, list):
        problems.append(SchemaError(path, top.line_of("cases"), f"cases: must be a list, got {type_name(raw_cases)}"))
        raw_cases = []
    for index, raw in enumerate(raw_cases):
        case = attempt(lambda: _case(path, expect_mapping(path, raw, f"cases[{index}]", top.line_of("cases")), defaults, name), None)  # noqa: B023 - called at once
        if case is not None:
            cases.append(case)

    if "cases_from" in top:
        blocks = top["cases_from"]
        for block in blocks if isinstance(blocks, list) else [blocks]:
            cases.extend(attempt(lambda: _cases_from(path, expect_mapping(path, block, "cases_from", top.line_of("cases_from")), defaults, name, root), []))  # noqa: B023

    seen: dict[str, Case] = {}
    for case in cases:
        if case.id in seen:
            first = seen[case.id]  # an imported case's line is its JSONL line: name that file
            first_where = f"line {first.line}" if first.source == case.source else f"{first.source or path}:{first.line}"
            problems.append(SchemaError(case.source or path, case.line, f"duplicate case id {case.id!r} (first on {first_where})"))
        seen[case.id] = case
    if not cases and not problems:
        problems.append(SchemaError(path, top.line, "the suite has no cases (add `cases:` or `cases_from:`)"))

    load = attempt(lambda: _load_profile(path, top["load"], top.line_of("load")), None) if "load" in top else None
    latency = attempt(lambda: _latency(path, top["latency"], top.line_of("latency")), None) if "latency" in top else None
    raise_all(problems)
    return Suite(
        name=name,
        path=path,
        description=description,
        models=models,
        cases=tuple(cases),
        load=load,
        load_line=top.line_of("load"),
        latency=latency or LatencySample(),
    )


def _latency(path: Path, raw: Any, line: int) -> LatencySample:
    """A ``latency:`` block: the suite's batch-1 sample (``repeats``, ``max_new_tokens``)."""
    block = expect_mapping(path, raw, "latency", line)
    check_keys(path, block, ("repeats", "max_new_tokens"), "latency")
    for key, least in (("repeats", 1), ("max_new_tokens", 0)):
        value = block.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise SchemaError(path, block.line_of(key), f"latency.{key}: expected a whole number >= {least}, got {value!r}")
    return LatencySample(repeats=block.get("repeats"), max_new_tokens=block.get("max_new_tokens"))


def _load_profile(path: Path, raw: Any, line: int) -> LoadProfile:
    """A ``load:`` block: concurrent users cycling through the suite's prompts (OpenAI backend)."""
    block = expect_mapping(path, raw, "load", line)
    check_keys(path, block, ("users", "duration_s", "requests", "ramp_s"), "load")
    try:
        return LoadProfile(**{key: block[key] for key in ("users", "duration_s", "requests", "ramp_s") if key in block})
    except (TypeError, ValueError) as error:
        raise SchemaError(path, line, str(error)) from None


def _string_list(path: Path, mapping: LocatedDict, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = mapping.get(key, list(default))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise SchemaError(path, mapping.line_of(key), f"{key}: must be a list of strings")
    return tuple(value)


def _defaults(path: Path, top: LocatedDict) -> dict[str, Any]:
    defaults = dict(DEFAULTABLE_FIELDS)
    if "defaults" in top:
        given = expect_mapping(path, top["defaults"], "defaults", top.line_of("defaults"))
        check_keys(path, given, DEFAULTABLE_FIELDS, "defaults")
        for key, value in given.items():
            defaults[key] = _check_field(path, given, key, value)
    return defaults


_ID_RULE = "must use letters, digits and . _ - + only"


def _valid_id(value: Any) -> str | None:
    """A case id as text (a whole number is one), or None when it cannot name a test item."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and _ID_PATTERN.match(value) else None


def _case(path: Path, raw: LocatedDict, defaults: Mapping[str, Any], suite: str) -> Case:
    check_keys(path, raw, CASE_FIELDS, "a case")
    for required in ("id", "prompt", "answer"):
        if required not in raw:
            raise SchemaError(path, raw.line, f"case is missing required field {required!r}")
    case_id = _valid_id(raw["id"])
    if case_id is None:
        raise SchemaError(path, raw.line_of("id"), f"id: {raw['id']!r} {_ID_RULE}")
    values = dict(defaults)
    for key, value in raw.items():
        if key in DEFAULTABLE_FIELDS:
            values[key] = _check_field(path, raw, key, value)
    if not isinstance(raw["prompt"], str) or not raw["prompt"].strip():
        raise SchemaError(path, raw.line_of("prompt"), "prompt: must be a non-empty string")
    _check_answer_form(path, raw.line_of("answer"), raw["answer"])
    for flag in ("skip", "xfail"):
        if flag in raw and not isinstance(raw[flag], str):
            raise SchemaError(path, raw.line_of(flag), f"{flag}: give the reason as a string")
    tags = tuple(values.pop("tags"))
    budgets = _budgets(path, values.pop("budgets"), suite, case_id)
    return Case(
        id=case_id,
        budgets=budgets,
        prompt=raw["prompt"],
        answer=_plain(raw["answer"]),
        line=raw.line,
        tags=tags,
        skip=raw.get("skip"),
        xfail=raw.get("xfail"),
        derivation=_plain(raw.get("derivation")),
        **values,
    )


def _check_field(path: Path, mapping: LocatedDict, key: str, value: Any) -> Any:
    """Validate one defaultable field's type and range; return its normalised value."""
    line = mapping.line_of(key)

    def fail(expected: str) -> SchemaError:
        return SchemaError(path, line, f"{key}: must be {expected}, got {value!r}")

    if key in ("template", "system"):
        if value is None and key == "system":
            return None
        if not isinstance(value, str):
            raise fail("a string")
        if key == "template" and "{prompt}" not in value:
            raise SchemaError(path, line, "template: must contain {prompt} where the case's prompt goes")
        return value
    if key in ("max_new_tokens", "repeats"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise fail("a whole number ≥ 1")
        return value
    if key in ("temperature", "top_p", "repetition_penalty", "rel_tol", "timeout_s"):
        if value is None and key in ("repetition_penalty", "rel_tol", "timeout_s"):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise fail("a number ≥ 0")
        if key == "top_p" and not 0 < value <= 1:
            raise fail("a number in (0, 1]")
        if key in ("timeout_s", "repetition_penalty") and value == 0:
            raise fail("a number > 0")
        return float(value)
    if key == "unordered":
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if key == "percent":
        from pytest_mathperf.answers.equality import PERCENT_RULES

        if value not in PERCENT_RULES:
            raise fail(" | ".join(PERCENT_RULES))
        return value
    if key == "pass_rule":
        if value not in PASS_RULES:
            raise fail(" | ".join(PASS_RULES))
        return value
    if key == "tags":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(t, str) and _TAG_PATTERN.match(t) for t in value):
            raise fail("a list of tag names (letters, digits, _; they become pytest markers)")
        reserved = sorted(set(value) & RESERVED_TAGS)
        if reserved:
            raise SchemaError(path, line, f"tags: {', '.join(reserved)} is one of pytest's own markers; use skip:/xfail: or another name")
        return tuple(value)
    if key == "budgets":
        return expect_mapping(path, value, "budgets", line)  # parsed per case, keeping each key's line
    raise AssertionError(f"unhandled field {key}")  # DEFAULTABLE_FIELDS and this function disagree


def _check_answer_form(path: Path, line: int, answer: Any) -> None:
    problem = _answer_problem(_plain(answer))
    if problem:
        raise SchemaError(path, line, problem if problem.startswith("answer") else f"answer: {problem}")


def _budgets(path: Path, budgets: LocatedDict | None, suite: str, case: str) -> tuple[Budget, ...]:
    return case_budgets(path, budgets, suite, case) if budgets else ()


def _cases_from(path: Path, block: LocatedDict, defaults: Mapping[str, Any], suite: str, root: Path | None) -> list[Case]:
    """Import cases from a JSONL file (e.g. GSM8K), naming the JSONL line of any bad record."""
    import regex

    from pytest_mathperf.answers.deadline import ANSWER_CHECK_LIMIT_S, compiled

    check_keys(path, block, CASES_FROM_FIELDS, "cases_from")
    for required in ("path", "prompt", "answer"):
        if not isinstance(block.get(required), str):
            raise SchemaError(path, block.line, f"cases_from: needs {required!r} (a string)")
    source = (path.parent / block["path"]).resolve()  # through any symlink, to where the data really is
    if root is not None and root.resolve() not in source.parents:
        raise SchemaError(
            path, block.line_of("path"), f"cases_from: {block['path']} is outside the project ({root.resolve()}); move the file under it"
        )
    if not source.is_file():
        raise SchemaError(path, block.line_of("path"), f"cases_from: file not found: {source}")
    pattern = None
    if "answer_regex" in block:
        try:
            pattern = compiled(block["answer_regex"], regex.MULTILINE)
        except (regex.error, TypeError) as error:
            raise SchemaError(path, block.line_of("answer_regex"), f"answer_regex: invalid: {error}") from None
    limit = block.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SchemaError(path, block.line_of("limit"), "limit: must be a whole number ≥ 1")
    tags = _check_field(path, block, "tags", block["tags"]) if "tags" in block else ()
    id_field = block.get("id")

    cases: list[Case] = []
    with source.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if limit is not None and len(cases) >= limit:
                break
            if not text.strip():
                continue
            try:
                record = json.loads(text, parse_constant=_refuse_non_finite)
            except json.JSONDecodeError as error:
                raise SchemaError(source, number, f"not valid JSON: {error.msg}") from None
            except (ValueError, RecursionError) as error:
                raise SchemaError(source, number, f"not a record a suite can take: {error}") from None
            if not isinstance(record, dict):
                raise SchemaError(source, number, "each line must be a JSON object")
            for key in (block["prompt"], block["answer"], *([id_field] if id_field else [])):
                if key not in record:  # a misspelt field name would otherwise be ignored
                    raise SchemaError(source, number, f"missing field {key!r} (named in {path.name})")
            answer = record[block["answer"]]
            if pattern is not None:
                try:
                    match = pattern.search(str(answer), timeout=ANSWER_CHECK_LIMIT_S)
                except TimeoutError:
                    raise SchemaError(source, number, f"answer_regex {pattern.pattern!r} took over {ANSWER_CHECK_LIMIT_S:g} s on this record; simplify it") from None
                if not match:
                    raise SchemaError(
                        source, number, f"answer_regex {pattern.pattern!r} does not match {str(answer)[-80:]!r}"
                    )
                answer = (match.group(1) if pattern.groups else match.group(0)).strip().replace(",", "")
            case_id = _valid_id(record[id_field]) if id_field else f"{source.stem}-{number}"
            if case_id is None:  # it names a test item
                raise SchemaError(source, number, f"field {id_field!r}: {record[id_field]!r} {_ID_RULE}")
            if not isinstance(record[block["prompt"]], str):
                raise SchemaError(source, number, f"field {block['prompt']!r} must be a string")
            problem = _answer_problem(answer)
            if problem:
                raise SchemaError(source, number, problem)
            values = {**defaults, "tags": tuple(defaults["tags"]) + tuple(tags)}
            values["budgets"] = _budgets(path, values["budgets"], suite, case_id)
            cases.append(
                Case(
                    id=case_id,
                    prompt=record[block["prompt"]],
                    answer=answer,
                    line=number,
                    source=source,
                    derivation=record.get("derivation"),  # a JSONL record may prove its own answer
                    **values,
                )
            )
    return cases


def _refuse_non_finite(constant: str) -> float:
    raise ValueError(f"{constant} is not a finite number")


def _answer_problem(answer: Any) -> str | None:
    """The answer form's problem, if any; answers.py owns what a valid expected answer is."""
    from pytest_mathperf.answers import validate_expected

    return validate_expected(answer)


def _plain(value: Any) -> Any:
    """LocatedDicts back to plain dicts, so values crossing modules compare and pickle simply."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
