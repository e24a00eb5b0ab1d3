"""Equality of two values through math-verify, with hard bounds on the work."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from pytest_mathperf.answers.values import PERCENT, _clean_value, _math_text, strip_trailing_junk

if TYPE_CHECKING:
    from collections.abc import Callable

    from sympy import Basic

#: Longer candidate values are not parsed: no real answer is this long.
MAX_VALUE_CHARS = 300
#: Larger exponents, factorials or function arguments make sympy work for minutes; a value
#: holding one is unreadable. Powers of a symbol are bounded lower: they get expanded.
MAX_EXPONENT = 10_000
MAX_SYMBOLIC_EXPONENT = 100
MAX_FACTORIAL = 1000
MAX_FUNCTION_ARGUMENT = 10**6
#: Symbolic comparison (simplify) is only attempted on expressions this small.
MAX_SYMBOLIC_NODES = 80
#: Relative tolerance when either side is a decimal and no rel_tol is given.
DEFAULT_DECIMAL_REL_TOL = 1e-6
#: Numeric "exact" equality: 60-digit evaluation, far below any written difference.
_EXACT_REL_TOL = 1e-40
_EVAL_DIGITS = 60


PercentRule = Literal["value", "fraction", "either"]
PERCENT_RULES: tuple[str, ...] = ("value", "fraction", "either")
#: 25 % against 25 or against 1/4: both readings are common, and 100 times apart.
DEFAULT_PERCENT: PercentRule = "either"


@dataclass(frozen=True)
class Comparison:
    """How two values are compared: tolerance and what a percent sign means."""

    rel_tol: float | None = None
    percent: PercentRule = DEFAULT_PERCENT


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def _equal_text(expected: str, got: str, how: Comparison) -> bool:
    """Whether the answer text `got` equals the expected text; unreadable is never equal.

    A side written with a percent sign reads as its number (``value``: 25 % is 25), as a
    fraction (``fraction``: 25 % is 1/4), or as either (``either``); two percents compare
    as numbers. A clock time (``12:00``) is compared as a time, never as a ratio.
    """
    want_text = _expected_math(expected)
    want_percent, got_percent = want_text.endswith(PERCENT), got.endswith(PERCENT)
    want_text, got = _without_percent(want_text), _without_percent(got)
    want_clock, got_clock = _CLOCK.match(want_text), _CLOCK.match(got)
    if want_clock or got_clock:
        return bool(want_clock and got_clock) and _same_time(_clock(want_clock), _clock(got_clock))  # type: ignore[arg-type]
    if want_percent == got_percent:
        return _equal_values(want_text, got, how.rel_tol)
    readings = {"value": [False], "fraction": [True], "either": [False, True]}[how.percent]
    for as_fraction in readings:
        if want_percent:
            pair = (f"\\frac{{{want_text}}}{{100}}" if as_fraction else want_text, got)
        else:
            pair = (want_text, f"\\frac{{{got}}}{{100}}" if as_fraction else got)
        if _equal_values(*pair, how.rel_tol):
            return True
    return False


def _without_percent(text: str) -> str:
    return text[: -len(PERCENT)].rstrip() if text.endswith(PERCENT) else text


def _clock(match: re.Match[str]) -> tuple[int, int, int]:
    hours, minutes, seconds = match.group(1), match.group(2), match.group(3) or "0"
    return int(hours), int(minutes), int(seconds)


def _same_time(want: tuple[int, int, int], got: tuple[int, int, int]) -> bool:
    """Equal times; an expected hour up to 12 may be a 12-hour clock's ("3:45" is 15:45 too)."""
    if want == got:
        return True
    return want[0] <= 12 and want[0] % 12 == got[0] % 12 and want[1:] == got[1:]


def _equal_values(expected: str, got: str, rel_tol: float | None) -> bool:
    plain_want, plain_got = _plain_number(expected), _plain_number(got)
    if plain_want is not None and plain_got is not None:
        return _equal_plain(plain_want, plain_got, rel_tol)
    want = _parse_value(expected)
    have = _parse_value(got)
    if want is None or have is None:
        return False
    try:
        return _equal(want, have, rel_tol)
    except Exception:  # sympy can raise almost anything on odd input; that is "not equal"
        return False


def _equal(expected: Basic, got: Basic, rel_tol: float | None) -> bool:
    import sympy

    if _undefined(expected) or _undefined(got):
        return False  # 1/0 is not 2/0, and 1:00 is not 12:00: undefined is never equal
    expected, got = _imaginary_unit(expected), _imaginary_unit(got)
    if expected == got:
        return True
    if _is_number(expected) and _is_number(got):
        if rel_tol is not None:
            tolerance = rel_tol
        elif expected.has(sympy.Float) or got.has(sympy.Float):
            tolerance = DEFAULT_DECIMAL_REL_TOL
        else:
            tolerance = _EXACT_REL_TOL
        difference = abs(sympy.N(expected - got, _EVAL_DIGITS))
        scale = max(abs(sympy.N(expected, _EVAL_DIGITS)), abs(sympy.N(got, _EVAL_DIGITS)))
        if not (difference.is_finite and scale.is_finite):
            return False
        return bool(difference <= tolerance * scale)
    if _node_count(expected) > MAX_SYMBOLIC_NODES or _node_count(got) > MAX_SYMBOLIC_NODES:
        return False
    verify = _math_verify()[1]
    # x ≥ 2 and [2, ∞) are one set of answers.
    if verify(expected, got, allow_set_relation_comp=True, timeout_seconds=None, raise_on_error=False):
        return True
    return rel_tol is not None and _close_everywhere(expected, got, rel_tol)


#: Where two expressions in the same variables are compared within a tolerance.
_SAMPLE_POINTS = ((0.37, 1.21, -0.83), (1.9, -0.46, 2.7), (-1.3, 0.58, 0.11))


def _close_everywhere(expected: Basic, got: Basic, rel_tol: float) -> bool:
    """Whether two expressions in the same (at most three) variables agree within `rel_tol` at
    a few fixed points: t + 1.732i is t + \\sqrt{3} i at rel_tol 1e-3."""
    import sympy

    if isinstance(expected, sympy.Equality) and isinstance(got, sympy.Equality):
        return all(_close_everywhere(*sides, rel_tol) for sides in zip(expected.args, got.args))
    if not (isinstance(expected, sympy.Expr) and isinstance(got, sympy.Expr)):
        return False
    # The two sides' symbols may carry different assumptions (one read as real): match them by name.
    names = sorted({str(symbol) for symbol in expected.free_symbols})
    if not names or len(names) > 3 or names != sorted({str(symbol) for symbol in got.free_symbols}):
        return False
    for point in _SAMPLE_POINTS:
        at = dict(zip(names, point))
        want = complex(expected.evalf(subs={symbol: at[str(symbol)] for symbol in expected.free_symbols}))
        have = complex(got.evalf(subs={symbol: at[str(symbol)] for symbol in got.free_symbols}))
        if abs(want - have) > rel_tol * max(abs(want), abs(have)):
            return False
    return True


def _imaginary_unit(expr: Basic) -> Basic:
    """`expr` with a free symbol i read as the imaginary unit: 2i is √-4, not 2 times a variable."""
    import sympy

    try:
        symbols = [symbol for symbol in expr.free_symbols if getattr(symbol, "name", None) == "i"]
        return expr.subs(symbols[0], sympy.I) if symbols else expr
    except Exception:  # sets, matrices and relations without free symbols to replace
        return expr


def _undefined(expr: Basic) -> bool:
    import sympy

    try:
        if expr.has(sympy.zoo) or expr.has(sympy.nan):
            return True
        # Read unevaluated: tan(90π/180) only shows it is undefined once worked out.
        if _is_number(expr) and expr.has(sympy.Function):
            evaluated = expr.doit()
            return bool(evaluated.has(sympy.zoo) or evaluated.has(sympy.nan))
        return False
    except Exception:  # not a sympy value: nothing undefined in it
        return False


def _is_number(expr: Basic) -> bool:
    import sympy

    return isinstance(expr, sympy.Expr) and bool(expr.is_number)


def _node_count(expr: Basic) -> int:
    import sympy

    return sum(1 for _ in sympy.preorder_traversal(expr))


@lru_cache(maxsize=1024)
def _expected_math(text: str) -> str:
    """An expected answer read like an output's ("25π 平方厘米" is 25\\pi), equations kept whole."""
    return _clean_value(_math_text(text), keep_equation=True)


def _value_text(text: str) -> str:
    """A value's text as it is read: math symbols in LaTeX, no percent sign, no trailing unit or stop."""
    text = _math_text(text).replace("\\%", "").replace("%", "").strip()
    return strip_trailing_junk(text).strip()


_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d{1,3})?")
# Scientific notation (YAML reads `answer: 1e-6` as text): 10 to a power, never Euler's e.
_E_NOTATION = re.compile(r"(?<![\w.\\])(\d+(?:\.\d+)?)[eE]([+-]?\d{1,3})(?![\w.])")


@dataclass(frozen=True)
class _Plain:
    value: Fraction
    decimal: bool


@lru_cache(maxsize=4096)
def _plain_number(text: str) -> _Plain | None:
    """`text` as an exact number when it is only a signed integer or decimal, else None.

    Most answers are such numbers. Compared exactly here, with the tolerances `_equal` uses,
    they never need sympy and math-verify, which take a gate half a second to import.
    """
    text = _value_text(text)
    if len(text) > MAX_VALUE_CHARS or not _PLAIN_NUMBER.fullmatch(text):
        return None
    return _Plain(Fraction(text), "." in text or "e" in text.lower())


def _equal_plain(expected: _Plain, got: _Plain, rel_tol: float | None) -> bool:
    """`_equal` on two plain numbers, in exact arithmetic."""
    if expected.value == got.value:
        return True
    if rel_tol is not None:
        tolerance = rel_tol
    elif expected.decimal or got.decimal:
        tolerance = DEFAULT_DECIMAL_REL_TOL
    else:
        tolerance = _EXACT_REL_TOL
    scale = max(abs(expected.value), abs(got.value))
    return abs(expected.value - got.value) <= Fraction(tolerance) * scale


@lru_cache(maxsize=4096)
def _parse_value(text: str) -> Basic | None:
    """`text` as a sympy value via math-verify's LaTeX reader, or None when it can't be read
    or would be too costly to work with (huge powers, factorials, long text)."""
    text = _E_NOTATION.sub(r"\1 \\times 10^{\2}", _value_text(text))  # on either side: math-verify reads e as Euler's
    if not text or len(text) > MAX_VALUE_CHARS or _evaluated_while_read(text):
        return None
    value = _read_latex(text)
    if value is None:
        # math-verify can read a letter after a space as a unit and give up: "n + m", "\sin t".
        # Not where letters stand side by side ("a t"): there the letter would be dropped.
        respaced = _SPACED_OPERATOR.sub(r"\1", _TRIG_OF_LETTER.sub(r"\\\1(\2)", text))
        value = _read_latex(respaced) if respaced != text and not _SIDE_BY_SIDE.search(respaced) else None
    return value if value is not None and _is_tame(value) else None


def _read_latex(text: str) -> Basic | None:
    parse, _, config = _math_verify()
    try:
        parsed = parse(
            f"\\boxed{{{text}}}", extraction_config=config, fallback_mode="no_fallback", parsing_timeout=None
        )
    except Exception:
        return None
    return parsed[0] if parsed else None


_SPACED_OPERATOR = re.compile(r"\s*([-+=*/^])\s*")
_SIDE_BY_SIDE = re.compile(r"[A-Za-z0-9}]\s+[A-Za-z]")
_TRIG_OF_LETTER = re.compile(r"\\(sin|cos|tan|cot|sec|csc|ln|log)\s+([A-Za-z])(?![A-Za-z])")


# latex2sympy computes these while reading, so their size must be checked on the text.
_EAGER_COMMAND = re.compile(r"\\(?:[dt]?binom|choose|gcd|lcm|operatorname|[bp]?mod)(?![A-Za-z])")
_INTEGER = re.compile(r"\d+")


def _evaluated_while_read(text: str) -> bool:
    """True for text whose reading alone could take minutes: \\binom{10^9}{5 \\cdot 10^8}."""
    if not _EAGER_COMMAND.search(text):
        return False
    too_large = any(int(digits) > MAX_FACTORIAL for digits in _INTEGER.findall(text))
    return too_large or "^" in text or "!" in text


def _is_tame(expr: Basic) -> bool:
    """Whether sympy can evaluate and compare `expr` at once: every power, factorial and
    function argument small, and no sum, product, integral or limit still to be worked out.

    Checked bottom-up, so an argument is only evaluated once it is known to be tame itself:
    9^{9^{9^{9}}} stops at 9^{9^9}, whose exponent 387420489 is already over the bound.
    """
    import sympy

    unevaluated = (sympy.Sum, sympy.Product, sympy.Integral, sympy.Limit, sympy.Derivative)
    combinatorial = (
        sympy.factorial,
        sympy.factorial2,
        sympy.subfactorial,
        sympy.binomial,
        sympy.gamma,
        sympy.RisingFactorial,
        sympy.FallingFactorial,
    )
    for node in sympy.postorder_traversal(expr):
        if isinstance(node, unevaluated):
            return False  # an answer is a value; \sum_{i=1}^{10^9} would be summed term by term
        if isinstance(node, sympy.Pow):
            # (x + 1)^{10000} is cheap to write and slow to expand when compared symbolically.
            bound = MAX_EXPONENT if _is_number(node.base) else MAX_SYMBOLIC_EXPONENT
            arguments: tuple[Basic, ...] = (node.exp,)
        elif isinstance(node, combinatorial):
            bound, arguments = MAX_FACTORIAL, node.args
        elif isinstance(node, sympy.Function):
            bound, arguments = MAX_FUNCTION_ARGUMENT, node.args
        else:
            continue
        if not all(_small(argument, bound) for argument in arguments):
            return False
    return True


def _small(argument: Basic, bound: float) -> bool:
    """Whether a numeric `argument` is at most `bound` in size; symbols are never evaluated."""
    if not _is_number(argument):
        return True
    import sympy

    try:
        return abs(complex(sympy.N(argument, 15))) <= bound
    except Exception:  # too large for a float, or not a plain number
        return False


@lru_cache(maxsize=1)
def _math_verify() -> tuple[Callable[..., list[Any]], Callable[..., bool], list[Any]]:
    """math-verify, imported on first use: it pulls in sympy, which a plain pytest run never needs.

    Its SIGALRM timeouts are turned off at each call (they fail outside the main thread);
    the bounds above stand in for them, so its one-time "timeout is disabled" warning is muted.
    """
    from math_verify import LatexExtractionConfig, parse, verify

    for logger_name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(logger_name).addFilter(_TimeoutWarningFilter())
    config = [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]
    return parse, verify, config


class _TimeoutWarningFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")
