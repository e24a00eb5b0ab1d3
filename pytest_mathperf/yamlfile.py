"""YAML loading that remembers line numbers, so every schema error can name file and line.

PyYAML forgets where a value came from and silently keeps the last of two equal keys; the gate's
users need "suites/algebra.yaml:14: unknown key 'answr'" instead.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


class SchemaError(Exception):
    """A user's file is wrong; the message names the file and line and says what would fix it."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"


class SchemaErrors(SchemaError):
    """Every problem found in one file, so a user fixes them all in one go, as a linter reports them."""

    def __init__(self, errors: list[SchemaError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.path, first.line, first.message)

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


def raise_all(errors: list[SchemaError]) -> None:
    """Raise the one problem as it is, or all of them together."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SchemaErrors(errors)


class LocatedDict(dict):  # type: ignore[type-arg]
    """A mapping from YAML that knows its own line and the line of each of its keys."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


#: Nesting deeper than this is refused: a suite needs a handful of levels, and PyYAML composes by recursion.
MAX_DEPTH = 64
#: Values a document may hold once its aliases are expanded; a "billion laughs" file holds 10^9.
MAX_EXPANDED_NODES = 100_000


class _Refused(yaml.MarkedYAMLError):
    """Well-formed YAML this loader will not take: too deep, an alias bomb, a number that is no number."""


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings are LocatedDicts, which refuses duplicate keys, nesting too deep
    to compose and aliases that expand beyond what a hand-written file could mean."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        depth = getattr(self, "_depth", 0)
        if depth >= MAX_DEPTH:
            raise _Refused(
                None, None, f"nested more than {MAX_DEPTH} levels deep; flatten the document", self.peek_event().start_mark
            )
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _refuse_alias_bombs(node)
        return node


def _refuse_alias_bombs(root: yaml.Node) -> None:
    """Count the values the document would hold with every alias expanded, each shared node once."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [item for pair in node.value for item in pair]
        total = 1 + sum(size(child) for child in children)
        if total > MAX_EXPANDED_NODES:
            raise _Refused(
                None,
                None,
                f"aliases here expand to more than {MAX_EXPANDED_NODES:,} values (an alias bomb?); "
                "write the values out or use fewer nested aliases",
                node.start_mark,
            )
        sizes[id(node)] = total
        return total

    size(root)


def _construct_finite_float(loader: _LineLoader, node: yaml.ScalarNode) -> float:
    value = loader.construct_yaml_float(node)
    if not math.isfinite(value):
        raise _Refused(
            None, None, f"{node.value!r} is not a finite number; write a number (or quote it to mean text)", node.start_mark
        )
    return value


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    mapping = LocatedDict()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {mapping.key_lines[key]})",
                key_node.start_mark,
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = line
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:float", _construct_finite_float)


def load_yaml(path: Path) -> Any:
    """Parse one YAML document; syntax errors become SchemaError with the line pyyaml reports."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SchemaError(path, None, f"cannot read file: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise SchemaError(path, None, f"not UTF-8 text: {error.reason}") from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as error:
        raise SchemaError(path, error.problem_mark.line + 1 if error.problem_mark else None, str(error.problem)) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        lines = max(len(text.splitlines()), 1)
        if error.context_mark is not None and mark is not None and mark.line >= lines:
            mark = error.context_mark  # an unclosed quote or bracket: point at where it opened
        line = min(mark.line + 1, lines) if mark is not None else None  # never past the file's last line
        problem = error.problem or error.context or "invalid YAML"
        if error.context and error.problem:
            problem = f"{error.problem} ({error.context})"
        raise SchemaError(path, line, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as error:
        raise SchemaError(path, None, f"YAML error: {error}") from None
    except RecursionError:  # a guard above should have refused it first; never a traceback
        raise SchemaError(path, None, "nested too deeply to read; flatten the document") from None


def unknown_keys(path: Path, mapping: LocatedDict, allowed: Iterable[str], where: str) -> list[SchemaError]:
    """One error per unknown key, suggesting the closest allowed one (typos are the usual cause)."""
    allowed = list(allowed)
    errors = []
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"
            errors.append(SchemaError(path, mapping.line_of(key), f"unknown key {key!r} in {where}{hint}"))
    return errors


def check_keys(path: Path, mapping: LocatedDict, allowed: Iterable[str], where: str) -> None:
    """Refuse unknown keys (the first one), suggesting the closest allowed key."""
    errors = unknown_keys(path, mapping, allowed, where)
    if errors:
        raise errors[0]


def expect_mapping(path: Path, value: Any, where: str, line: int | None) -> LocatedDict:
    if not isinstance(value, LocatedDict):
        raise SchemaError(path, line, f"{where} must be a mapping, got {type_name(value)}")
    return value


def type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", LocatedDict: "a mapping", list: "a list", str: "a string",
            bool: "true/false", int: "a number", float: "a number"}.get(type(value), type(value).__name__)
