"""Units written after a value: dropped when the answer gives none, converted when both sides
give one of the same kind (500 m is 0.5 km), and a wrong answer when the kinds differ or the
value does not convert (5 m is not 5 km). Only the units below are known; any other word after
a value is dropped as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Unit:
    """A unit's name as read, its kind (length, area, …) and its size in the kind's base unit."""

    name: str
    kind: str
    size: Fraction


_LENGTH = {"mm": Fraction(1, 1000), "cm": Fraction(1, 100), "dm": Fraction(1, 10), "m": Fraction(1), "km": Fraction(1000)}
_MASS = {"mg": Fraction(1, 1000), "g": Fraction(1), "kg": Fraction(1000), "t": Fraction(10**6)}
_TIME = {"s": Fraction(1), "min": Fraction(60), "h": Fraction(3600)}
_VOLUME = {"ml": Fraction(1, 1000), "L": Fraction(1)}
# Every spelling, longest first in the pattern, onto (base name, power).
_SPELLINGS: dict[str, tuple[str, int]] = {
    **{name: (name, 1) for name in ("mm", "cm", "dm", "km", "kg", "mg", "ml", "min")},
    "m": ("m", 1), "g": ("g", 1), "s": ("s", 1), "h": ("h", 1), "mL": ("ml", 1),
    "毫米": ("mm", 1), "厘米": ("cm", 1), "分米": ("dm", 1), "米": ("m", 1), "千米": ("km", 1), "公里": ("km", 1),
    "平方毫米": ("mm", 2), "平方厘米": ("cm", 2), "平方分米": ("dm", 2), "平方米": ("m", 2), "平方千米": ("km", 2),
    "立方厘米": ("cm", 3), "立方分米": ("dm", 3), "立方米": ("m", 3),
    "毫克": ("mg", 1), "克": ("g", 1), "千克": ("kg", 1), "公斤": ("kg", 1), "吨": ("t", 1),
    "秒": ("s", 1), "分钟": ("min", 1), "小时": ("h", 1), "毫升": ("ml", 1), "升": ("L", 1),
    "millimeters": ("mm", 1), "millimetres": ("mm", 1), "centimeters": ("cm", 1), "centimetres": ("cm", 1),
    "meters": ("m", 1), "metres": ("m", 1), "meter": ("m", 1), "metre": ("m", 1),
    "kilometers": ("km", 1), "kilometres": ("km", 1), "kilometer": ("km", 1), "kilometre": ("km", 1),
    "grams": ("g", 1), "gram": ("g", 1), "kilograms": ("kg", 1), "kilogram": ("kg", 1),
    "seconds": ("s", 1), "second": ("s", 1), "minutes": ("min", 1), "minute": ("min", 1),
    "hours": ("h", 1), "hour": ("h", 1), "liters": ("L", 1), "litres": ("L", 1), "milliliters": ("ml", 1),
}
_SQUARE_WORDS = re.compile(r"\bsquare\s+(?=[a-z])|\bsq\.?\s+(?=[a-z])", re.IGNORECASE)
_CUBIC_WORDS = re.compile(r"\bcubic\s+(?=[a-z])", re.IGNORECASE)
_UNIT_AT_END = re.compile(
    r"(?:(?<=[\d}\s)])|(?<=\\pi))\s*(?:\\text\s*\{\s*|\\mathrm\s*\{\s*|\\,|\\ )*"
    r"(?P<unit>" + "|".join(sorted(map(re.escape, _SPELLINGS), key=len, reverse=True)) + r")"
    r"(?![A-Za-z\u3400-\u9fff])\s*\}?\s*(?:\^\s*\{?(?P<power>[23])\}?|(?P<sup>[²³]))?\s*[.,;。]?\s*$"
)


def unit_at_end(text: str) -> Unit | None:
    """The known unit that ends `text` ("12 cm²", "5\\text{ km}", "3 小时"), or None."""
    text = " ".join(text.split())
    power = 1
    if _SQUARE_WORDS.search(text):
        text, power = _SQUARE_WORDS.sub("", text), 2
    elif _CUBIC_WORDS.search(text):
        text, power = _CUBIC_WORDS.sub("", text), 3
    match = _UNIT_AT_END.search(text[-80:])
    if match is None:
        return None
    base, spelled_power = _SPELLINGS[match.group("unit")]
    written = match.group("power") or {"²": "2", "³": "3"}.get(match.group("sup") or "", "")
    power = max(power, spelled_power, int(written) if written else 1)
    for kind, table in (("length", _LENGTH), ("mass", _MASS), ("time", _TIME), ("volume", _VOLUME)):
        if base in table:
            name = base if power == 1 else f"{base}^{power}"
            return Unit(name, kind if power == 1 else f"{kind}^{power}", table[base] ** power)
    return None


def conversion(expected: Unit, got: Unit) -> Fraction | None:
    """What a value in `got` units is multiplied by to be in `expected` units; None across kinds."""
    volume_as_length = {expected.kind, got.kind} == {"volume", "length^3"}
    if expected.kind != got.kind and not volume_as_length:
        return None
    scale = {"volume": Fraction(1, 1000)} if volume_as_length else {}
    return (got.size * scale.get(got.kind, 1)) / (expected.size * scale.get(expected.kind, 1))
