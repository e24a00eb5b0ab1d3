"""Writing calibrated budgets into thresholds.yaml as a person would edit it.

The file is edited in ruamel.yaml's round-trip mode, so comments, key order, quoting and every
other card's entry come back byte for byte; only the calibrated entry is new, each number with an
end-of-line comment saying where it came from. A comment that followed the replaced entry (the
introduction of the next card, say) stays where it was.
"""

from __future__ import annotations

import difflib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Where the end-of-line comments start (past the longest line an entry usually has).
COMMENT_COLUMN = 44


class CalibrationFileError(Exception):
    """The thresholds file cannot take the entry; the message names the file (and line)."""


@dataclass(frozen=True)
class WrittenBound:
    """One number to write: ``path`` inside the model entry, e.g. ("ttft_ms", "p50", "max")."""

    path: tuple[str, ...]
    value: float
    comment: str


@dataclass(frozen=True)
class Edit:
    """The file before and after, with the unified diff a reviewer reads first."""

    path: Path
    before: str
    after: str

    @property
    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"{self.path} (before)",
                tofile=f"{self.path} (calibrated)",
            )
        )


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip mode
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long comment or string the user wrote
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def edit_entry(path: Path, card: str, model: str, bounds: Sequence[WrittenBound], *, update: bool) -> Edit:
    """The thresholds file with the entry for ``card`` / ``model`` written from ``bounds``.

    An existing entry is replaced only with ``update``; otherwise the error names its line.
    """
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    before = path.read_text(encoding="utf-8") if path.exists() else ""
    yaml = _yaml()
    try:
        document = yaml.load(before) if before.strip() else None
    except YAMLError as error:
        raise CalibrationFileError(f"{path}: not valid YAML: {error}") from None
    if document is None:
        document = CommentedMap([("version", 1), ("no_budget", "skip")])
    if not isinstance(document, CommentedMap):
        raise CalibrationFileError(f"{path}: a thresholds file is a mapping with a `cards:` key")
    cards = _child(document, "cards", path)
    card_entry = _child(cards, card, path)
    models = _child(card_entry, "models", path)
    if model in models:
        if not update:
            line = models.lc.key(model)[0] + 1
            raise CalibrationFileError(
                f"{path}:{line}: card {card!r} already has an entry for {model!r}; "
                "pass --update to replace its calibrated numbers (the diff is printed first)"
            )
        if not isinstance(models[model], CommentedMap):
            raise CalibrationFileError(f"{path}:{models.lc.key(model)[0] + 1}: the entry for {model!r} is not a mapping")
        # the numbers calibration derives are replaced; every other budget of the entry stays
        entry = models[model]
        trailing = _take_trailing_comment(entry)
        _write_bounds(entry, bounds)
    else:
        # what followed the card's last entry (the next card's introduction) follows the new one
        trailing = _take_trailing_comment(models[list(models)[-1]]) if models else ""
        entry = models[model] = _entry_map(bounds)
    if trailing:
        _append_trailing(entry, trailing)
    out = io.StringIO()
    yaml.dump(document, out)
    return Edit(path, before, out.getvalue())


def _child(parent: Any, key: str, path: Path) -> Any:
    from ruamel.yaml.comments import CommentedMap

    if key not in parent or parent[key] is None:
        parent[key] = CommentedMap()
    child = parent[key]
    if not isinstance(child, CommentedMap):
        line = parent.lc.key(key)[0] + 1 if hasattr(parent, "lc") else 0
        raise CalibrationFileError(f"{path}:{line}: {key!r} must be a mapping to hold calibrated budgets")
    return child


def _entry_map(bounds: Sequence[WrittenBound]) -> Any:
    """Nested block mappings down to a flow leaf per bound (``p50: {max: 4.5}  # ...``)."""
    from ruamel.yaml.comments import CommentedMap

    entry = CommentedMap()
    _write_bounds(entry, bounds)
    return entry


def _write_bounds(entry: Any, bounds: Sequence[WrittenBound]) -> None:
    """Set each bound in ``entry``, keeping what else the entry and each leaf hold (``confidence:``, a ``min``)."""
    from ruamel.yaml.comments import CommentedMap

    for bound in bounds:
        *parents, leaf_key, side = bound.path
        node = entry
        for key in parents:
            if not isinstance(node.get(key), CommentedMap):
                node[key] = CommentedMap()
            node = node[key]
            node.fa.set_block_style()  # a comment per number needs a line per number
        if not isinstance(node.get(leaf_key), CommentedMap):
            node[leaf_key] = CommentedMap()
            node[leaf_key].fa.set_flow_style()
        node[leaf_key][side] = _number(bound.value)
        node.yaml_add_eol_comment(f"# {bound.comment}", leaf_key, column=COMMENT_COLUMN)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _last_key_path(node: Any) -> list[tuple[Any, Any]]:
    """(mapping, key) from the entry down to its last written key: where a trailing comment hangs."""
    from ruamel.yaml.comments import CommentedMap

    found = []
    while isinstance(node, CommentedMap) and node:
        key = list(node.keys())[-1]
        found.append((node, key))
        node = node[key]
    return found


def _take_trailing_comment(old_entry: Any) -> str:
    """Detach the comment lines (and blank lines) after an entry's last line: they belong to what follows."""
    for mapping, key in reversed(_last_key_path(old_entry)):
        token = mapping.ca.items.get(key, [None, None, None, None])[2]
        if token is not None and "\n" in token.value:
            own, trailing = token.value.split("\n", 1)
            token.value = own + "\n"
            return trailing
    return ""


def _append_trailing(entry: Any, trailing: str) -> None:
    """Hang ``trailing`` after the new entry's last number (its comment sits on the leaf's parent)."""
    mapping, key = _last_key_path(entry)[-2]
    token = mapping.ca.items[key][2]
    token.value = token.value.rstrip("\n") + "\n" + trailing


def entry_line(path: Path, card: str, model: str) -> int | None:
    """The 1-based line of an existing entry for ``card`` / ``model``, or None."""
    if not path.exists():
        return None
    document = _yaml().load(path.read_text(encoding="utf-8"))
    try:
        models = document["cards"][card]["models"]
    except (KeyError, TypeError):
        return None
    return models.lc.key(model)[0] + 1 if isinstance(models, Mapping) and model in models else None
