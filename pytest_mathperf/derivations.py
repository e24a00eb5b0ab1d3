"""Machine-checkable derivations of expected answers, so a suite's answers are checked, not trusted.

A wrong expected answer silently fails good models, so every shipped case carries a
``derivation:`` that sympy evaluates independently of the answer; ``check_derivation`` renders
the result as a model would write it (``\\boxed{x = \\frac{20}{7}, y = \\frac{25}{7}}``) and
judges it with ``answers.check_answer`` against the case's ``answer``. The gate ignores
derivations at run time; ``mathperf lint`` and the test suite evaluate them.

The format (a mapping; every key optional except that something must be computed)::

    let:   {r: 5, s: "r**2"}        # named values, in order; each may use the earlier ones
    solve: ["x + 2*y = 10", "3*x - y = 5"]   # equations ("a = b", or an expression = 0)
    for:   [x, y]                   # solve's unknowns (real); default: the single letters used
    over:  {a: [1, 6], b: [1, 6]}   # brute force: inclusive integer ranges, or ``{in: [values]}``
    where: "a + b == 7"             # keep only the solutions / tuples for which this holds
    expr:  "pi*r**2"                # what the answer is: an expression, a list or a mapping of them
    reduce: unique                  # how solutions / tuples combine (below)
    recurrence: {start: [1, 1], next: "p + q", n: 10}   # a sequence; binds term, total
    not_derivable: "why"            # instead of all of the above, for a case that can't be

Each solution of ``solve`` (or each tuple of ``over`` that passes ``where``) binds its names;
``expr`` (default: the unknowns — one value, or a mapping when there are several) is evaluated
in each, and ``reduce`` combines them: ``unique`` (default: all must give the same value),
``list`` (sorted values), ``count``, ``sum``, ``min``, ``max``, or ``probability`` (share of the
tuples of ``over`` that pass ``where``). ``recurrence`` computes terms a_1..a_n from ``start``;
``next`` may use ``p`` (previous term), ``q`` (the one before) and ``n`` (the new term's index);
it binds ``term`` (a_n) and ``total`` (a_1 + … + a_n).

Expressions are Python syntax read by a small evaluator over an allow-list (no ``eval``):
numbers (decimals are exact: ``0.05`` is 1/20), ``+ - * / ** % //``, comparisons, ``and/or/not``,
tuples (for ``integrate(f, (x, 0, 1))``), the names bound above, single letters (real symbols),
the constants ``pi E I oo`` and the functions in ``FUNCTIONS``.
"""

from __future__ import annotations

import ast
import functools
import itertools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sympy

#: Keys a derivation may have.
DERIVATION_KEYS = ("let", "solve", "for", "over", "where", "expr", "reduce", "recurrence", "not_derivable")
REDUCTIONS = ("unique", "list", "count", "sum", "min", "max", "probability")
#: Brute force and recurrences stop here: a derivation is a check, not a computation project.
MAX_TUPLES = 200_000
MAX_TERMS = 10_000
MAX_EXPRESSION_CHARS = 1_000
MAX_EXPONENT = 10_000


class DerivationError(ValueError):
    """A derivation is malformed or does not evaluate to one answer."""


def _digit_sum(n: Any) -> sympy.Integer:
    return sympy.Integer(sum(int(d) for d in str(abs(int(n)))))


def _distinct(*values: Any) -> bool:
    return len(set(values)) == len(values)


def _modulo(a: Any, b: Any) -> Any:
    if isinstance(a, sympy.Integer) and isinstance(b, sympy.Integer) and b != 0:
        return sympy.Integer(int(a) % int(b))  # the brute-force fast path; sympy.Mod is 50× slower
    return sympy.Mod(a, b)


def _power(base: Any, exponent: Any) -> Any:
    if getattr(exponent, "is_number", False) and abs(exponent) > MAX_EXPONENT:
        raise DerivationError(f"exponent {exponent} is too large to check")
    return base**exponent


#: The functions a derivation may call, by the name it uses.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": sympy.sqrt, "root": sympy.root, "cbrt": sympy.cbrt, "exp": sympy.exp, "log": sympy.log,
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "asin": sympy.asin, "acos": sympy.acos,
    "atan": sympy.atan, "abs": sympy.Abs, "Abs": sympy.Abs, "floor": sympy.floor, "ceiling": sympy.ceiling,
    "factorial": sympy.factorial, "binomial": sympy.binomial, "gcd": sympy.gcd, "lcm": sympy.lcm,
    "isprime": sympy.isprime, "prime": sympy.prime, "primepi": sympy.primepi, "totient": sympy.totient,
    "divisor_count": sympy.divisor_count, "divisor_sigma": sympy.divisor_sigma, "Mod": _modulo,
    "Rational": sympy.Rational, "Min": sympy.Min, "Max": sympy.Max, "fibonacci": sympy.fibonacci,
    "diff": sympy.diff, "integrate": sympy.integrate, "limit": sympy.limit, "summation": sympy.summation,
    "product": sympy.product, "simplify": sympy.simplify, "expand": sympy.expand, "factor": sympy.factor,
    "subs": lambda expression, name, value: sympy.sympify(expression).subs(name, value),
    "digit_sum": _digit_sum, "distinct": _distinct,
}
CONSTANTS: dict[str, Any] = {"pi": sympy.pi, "E": sympy.E, "I": sympy.I, "oo": sympy.oo}
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Pow: _power, ast.Mod: _modulo, ast.FloorDiv: lambda a, b: sympy.floor(a / b),
}
_COMPARE: dict[type, tuple[Callable[[Any, Any], Any], Callable[[Any, Any], bool]]] = {
    ast.Eq: (sympy.Eq, operator.eq), ast.NotEq: (sympy.Ne, operator.ne), ast.Lt: (sympy.Lt, operator.lt),
    ast.LtE: (sympy.Le, operator.le), ast.Gt: (sympy.Gt, operator.gt), ast.GtE: (sympy.Ge, operator.ge),
}


@dataclass(frozen=True)
class Derived:
    """A derivation's value, and that value as a model would box it."""

    value: Any  # a sympy value, a list of them, or a mapping of name → value
    rendered: str


def derive(derivation: Mapping[str, Any]) -> Derived:
    """Evaluate a derivation; raise DerivationError when it is malformed or ambiguous."""
    if not isinstance(derivation, Mapping):
        raise DerivationError(f"derivation must be a mapping, got {type(derivation).__name__}")
    unknown = [key for key in derivation if key not in DERIVATION_KEYS]
    if unknown:
        raise DerivationError(f"unknown derivation key {unknown[0]!r}; allowed: {', '.join(DERIVATION_KEYS)}")
    if "not_derivable" in derivation:
        raise DerivationError("a not_derivable case has nothing to evaluate")
    if "solve" in derivation and "over" in derivation:
        raise DerivationError("give solve: or over:, not both")
    try:
        value = _Derivation(derivation).value()
    except DerivationError:
        raise
    except Exception as error:  # sympy raises many kinds; for a suite's author each is one line
        raise DerivationError(f"sympy could not evaluate it: {type(error).__name__}: {error}") from None
    return Derived(value, render(value))


def not_derivable_reason(derivation: Any) -> str | None:
    """The stated reason a case has no derivation, or None when it has one (or nothing)."""
    if isinstance(derivation, Mapping) and "not_derivable" in derivation:
        reason = derivation["not_derivable"]
        return reason if isinstance(reason, str) and reason.strip() else ""
    return None


def check_derivation(case: Any) -> str | None:
    """None when the case's derivation agrees with its answer (or it states why it has none), else why not."""
    from pytest_mathperf.answers import check_answer

    derivation = case.derivation
    if derivation is None:
        return "no derivation (add `derivation:`, or `derivation: {not_derivable: why}`)"
    reason = not_derivable_reason(derivation)
    if reason is not None:
        return None if reason else "not_derivable: give the reason as a non-empty string"
    try:
        derived = derive(derivation)
    except DerivationError as error:
        return f"derivation: {error}"
    verdict = check_answer(derived.rendered, case.answer, rel_tol=case.rel_tol, unordered=case.unordered)
    if verdict.correct:
        return None
    return f"derivation gives {derived.rendered} but the answer says {case.answer!r} ({verdict.reason})"


def render(value: Any) -> str:
    """A derived value boxed as a model would write it: ``\\boxed{a, b}`` or ``\\boxed{x = a, y = b}``."""
    if isinstance(value, Mapping):
        return "\\boxed{" + ", ".join(f"{name} = {_latex(item)}" for name, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "\\boxed{" + ", ".join(_latex(item) for item in value) + "}"
    return "\\boxed{" + _latex(value) + "}"


def _latex(value: Any) -> str:
    return sympy.latex(sympy.nsimplify(value) if isinstance(value, sympy.Float) else value)


class _Derivation:
    """One derivation's evaluation: names bound by let, then solutions or tuples, then reduce."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.names: dict[str, Any] = {}
        self.unknowns: list[str] = [str(name) for name in _as_list(spec.get("for", []), "for")]
        self.over: dict[str, list[Any]] = self._ranges(spec.get("over", {}))

    def value(self) -> Any:
        for name, text in _as_mapping(self.spec.get("let", {}), "let").items():
            self.names[str(name)] = self.eval(text, self.names)
        if "recurrence" in self.spec:
            self._recurrence(_as_mapping(self.spec["recurrence"], "recurrence"))
        bindings, tried = self._bindings()
        where = self.spec.get("where")
        kept = [binding for binding in bindings if where is None or self._truth(where, binding)]
        reduction = self.spec.get("reduce", "unique")
        if reduction not in REDUCTIONS:
            raise DerivationError(f"reduce: must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        if reduction == "probability":
            if not self.over:
                raise DerivationError("reduce: probability needs over:")
            return sympy.Rational(len(kept), tried)
        if reduction == "count":
            return sympy.Integer(len(kept))
        if not kept:
            raise DerivationError("no solution (or no tuple) satisfies it")
        values = [self._expression(binding) for binding in kept]
        if reduction == "unique":
            first = values[0]
            for other in values[1:]:
                if not _same(first, other):
                    raise DerivationError(f"ambiguous: it gives both {render(first)} and {render(other)}")
            return first
        if any(isinstance(value, (Mapping, list)) for value in values):
            raise DerivationError(f"reduce: {reduction} needs expr: to be one expression")
        if reduction == "list":
            return sorted({_simplified(value) for value in values}, key=sympy.default_sort_key)
        if reduction == "sum":
            return sympy.simplify(sympy.Add(*values))
        pick = sympy.Min if reduction == "min" else sympy.Max
        return sympy.simplify(pick(*values))

    def _bindings(self) -> tuple[list[dict[str, Any]], int]:
        """Every solution of solve / tuple of over as name → value (one empty binding otherwise)."""
        if "solve" in self.spec:
            return self._solutions(), 0
        if self.over:
            total = 1
            for values in self.over.values():
                total *= len(values)
            if total > MAX_TUPLES:
                raise DerivationError(f"over: {total} tuples is more than {MAX_TUPLES}; narrow the ranges")
            names = list(self.over)
            return [dict(zip(names, combo)) for combo in itertools.product(*self.over.values())], total
        return [{}], 1

    def _solutions(self) -> list[dict[str, Any]]:
        equations = []
        for text in _as_list(self.spec["solve"], "solve"):
            if not isinstance(text, str):
                raise DerivationError(f"solve: equations are strings, got {text!r}")
            if any(sign in text for sign in ("==", "<", ">", "!")):
                raise DerivationError(f"solve: {text!r}: equations use one '=' (conditions go in where:)")
            sides = text.split("=")
            if len(sides) > 2:
                raise DerivationError(f"solve: {text!r} has more than one '='")
            parsed = [self.eval(side, self.names) for side in sides]
            equations.append(sympy.Eq(parsed[0], parsed[1]) if len(parsed) == 2 else sympy.Eq(parsed[0], 0))
        unknowns = self.unknowns or sorted(
            {str(symbol) for equation in equations for symbol in equation.free_symbols}
        )
        symbols = [_symbol(name) for name in unknowns]
        found = sympy.solve(equations, symbols, dict=True)
        solutions = []
        for solution in found:
            if set(solution) != set(symbols):
                raise DerivationError(f"solve: not determined: {solution} leaves some of {unknowns} free")
            solutions.append({str(symbol): sympy.simplify(value) for symbol, value in solution.items()})
        self.unknowns = unknowns
        return solutions

    def _recurrence(self, spec: Mapping[str, Any]) -> None:
        terms = [self.eval(item, self.names) for item in _as_list(spec.get("start"), "recurrence.start")]
        count = spec.get("n")
        if not terms or isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_TERMS:
            raise DerivationError(f"recurrence: needs start: [first terms] and n: (1..{MAX_TERMS})")
        step = _compiled(str(spec.get("next", "")))
        while len(terms) < count:
            scope = {**self.names, "p": terms[-1], "n": sympy.Integer(len(terms) + 1)}
            if len(terms) > 1:
                scope["q"] = terms[-2]
            terms.append(sympy.expand(step(scope)))
        self.names["term"] = terms[count - 1]
        self.names["total"] = sympy.Add(*terms[:count])

    def _expression(self, binding: dict[str, Any]) -> Any:
        if "expr" not in self.spec:
            if not self.unknowns and not self.over:
                if "term" in self.names:
                    return self.names["term"]
                raise DerivationError("nothing to compute: give expr:, solve: or over:")
            names = self.unknowns or list(self.over)
            if len(names) == 1:
                return binding[names[0]]
            return {name: binding[name] for name in names}
        expr = self.spec["expr"]
        if isinstance(expr, Mapping):
            return {str(name): self._scalar(text, binding) for name, text in expr.items()}
        if isinstance(expr, list):
            return [self._scalar(text, binding) for text in expr]
        return self._scalar(expr, binding)

    def _scalar(self, text: Any, binding: dict[str, Any]) -> Any:
        value = self.eval(text, self._scope(binding))
        if isinstance(value, sympy.Basic):
            value = value.subs({_symbol(name): item for name, item in binding.items()})
            value = _simplified(value.doit())
        if isinstance(value, (sympy.logic.boolalg.Boolean, bool)):
            raise DerivationError(f"expr: {text!r} is a truth value, not an answer")
        if isinstance(value, sympy.Basic) and value.has(sympy.nan, sympy.zoo):
            raise DerivationError(f"expr: {text!r} is undefined (sympy gives {value})")
        if isinstance(value, sympy.Basic) and value.has(sympy.Integral, sympy.Limit, sympy.Sum, sympy.Derivative):
            raise DerivationError(f"expr: {text!r}: sympy could not evaluate {value}")
        return value

    def _truth(self, text: Any, binding: dict[str, Any]) -> bool:
        value = self.eval(text, self._scope(binding))  # the scope binds every name: nothing to subs
        if value in (True, sympy.true):
            return True
        if value in (False, sympy.false):
            return False
        raise DerivationError(f"where: {text!r} is not true or false for {binding} (got {value})")

    def _scope(self, binding: dict[str, Any]) -> dict[str, Any]:
        if not binding:
            return self.names
        symbolic = [name for name, value in self.names.items() if isinstance(value, sympy.Basic) and value.free_symbols]
        scope = {**self.names, **binding}
        if symbolic:  # let: names written in terms of the bound ones take their values
            replace = {_symbol(name): value for name, value in binding.items()}
            scope.update({name: self.names[name].subs(replace) for name in symbolic if name not in binding})
        return scope

    def _ranges(self, over: Any) -> dict[str, list[Any]]:
        ranges: dict[str, list[Any]] = {}
        for name, spec in _as_mapping(over, "over").items():
            if isinstance(spec, Mapping) and set(spec) == {"in"}:
                ranges[str(name)] = [self.eval(item, {}) for item in _as_list(spec["in"], f"over.{name}.in")]
            elif (
                isinstance(spec, list)
                and len(spec) == 2
                and all(isinstance(end, int) and not isinstance(end, bool) for end in spec)
            ):
                ranges[str(name)] = [sympy.Integer(value) for value in range(spec[0], spec[1] + 1)]
            else:
                raise DerivationError(f"over.{name}: give [first, last] (whole numbers) or {{in: [values]}}")
        return ranges

    @staticmethod
    def eval(text: Any, scope: Mapping[str, Any]) -> Any:
        if isinstance(text, bool):
            raise DerivationError(f"{text!r} is not an expression")
        if isinstance(text, int):
            return sympy.Integer(text)
        if isinstance(text, float):
            return sympy.Rational(repr(text))
        if not isinstance(text, str):
            raise DerivationError(f"expected an expression, got {text!r}")
        return _compiled(text)(scope)


#: A compiled expression: its value in a scope of names.
Evaluate = Callable[[Mapping[str, Any]], Any]


@functools.lru_cache(maxsize=1024)
def _compiled(text: str) -> Evaluate:
    """``text`` as a function of the names in scope; compiled once, since brute force evaluates it per tuple."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise DerivationError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise DerivationError(f"cannot read {text!r}: {error.msg}") from None
    return _Compiler().visit(tree)


class _Compiler(ast.NodeVisitor):
    """Compiles the allow-listed subset of Python expression syntax into closures over sympy values.

    Anything outside the allow-list is refused when compiling, in every branch, whether or not an
    evaluation would reach it; names are looked up when evaluating, in the scope given then.
    """

    def generic_visit(self, node: ast.AST) -> Evaluate:
        raise DerivationError(f"{type(node).__name__} is not allowed in a derivation ({ast.unparse(node)!r})")

    def visit_Constant(self, node: ast.Constant) -> Evaluate:
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float, str)):
            raise DerivationError(f"constant {node.value!r} is not allowed")
        if isinstance(node.value, str) and node.value not in ("+", "-", "+-"):
            raise DerivationError(f"strings are only limit directions ('+', '-', '+-'), got {node.value!r}")
        value = (
            node.value if isinstance(node.value, str)
            else sympy.Integer(node.value) if isinstance(node.value, int)
            else sympy.Rational(repr(node.value))
        )
        return lambda scope: value

    def visit_Name(self, node: ast.Name) -> Evaluate:
        name = node.id
        fallback = CONSTANTS.get(name)
        if fallback is None and len(name) == 1 and name.isalpha():
            fallback = _symbol(name)

        def load(scope: Mapping[str, Any]) -> Any:
            if name in scope:
                return scope[name]
            if fallback is None:
                raise DerivationError(f"unknown name {name!r}: bind it in let:/for:/over:, or use a single letter")
            return fallback

        return load

    def visit_BinOp(self, node: ast.BinOp) -> Evaluate:
        operation = _BINARY.get(type(node.op))
        if operation is None:
            raise DerivationError(f"operator {type(node.op).__name__} is not allowed (powers are **)")
        left, right = self.visit(node.left), self.visit(node.right)
        return lambda scope: operation(left(scope), right(scope))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Evaluate:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.USub):
            return lambda scope: -operand(scope)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return lambda scope: sympy.Not(operand(scope))
        raise DerivationError(f"operator {type(node.op).__name__} is not allowed")

    def visit_Compare(self, node: ast.Compare) -> Evaluate:
        first = self.visit(node.left)
        links = []
        for op, comparator in zip(node.ops, node.comparators):
            if type(op) not in _COMPARE:
                raise DerivationError(f"comparison {type(op).__name__} is not allowed")
            links.append((*_COMPARE[type(op)], self.visit(comparator)))

        def compare(scope: Mapping[str, Any]) -> Any:
            left = first(scope)
            results = []
            for symbolic, exact, comparator in links:
                right = comparator(scope)
                if isinstance(left, sympy.Rational) and isinstance(right, sympy.Rational):
                    results.append(sympy.true if exact(left, right) else sympy.false)  # exact numbers: fast
                else:
                    results.append(symbolic(left, right))
                left = right
            return sympy.And(*results)

        return compare

    def visit_BoolOp(self, node: ast.BoolOp) -> Evaluate:
        is_and = isinstance(node.op, ast.And)
        decided = sympy.false if is_and else sympy.true
        combine = sympy.And if is_and else sympy.Or
        parts = [self.visit(item) for item in node.values]

        def boolean(scope: Mapping[str, Any]) -> Any:
            values = []
            for part in parts:  # short-circuits like Python once a part is decided
                value = part(scope)
                if value is decided:
                    return value
                values.append(value)
            return combine(*values)

        return boolean

    def visit_Tuple(self, node: ast.Tuple) -> Evaluate:
        items = [self.visit(item) for item in node.elts]
        return lambda scope: tuple(item(scope) for item in items)

    def visit_Call(self, node: ast.Call) -> Evaluate:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise DerivationError(f"call {ast.unparse(node.func)}(…) is not allowed; functions: {', '.join(FUNCTIONS)}")
        function = FUNCTIONS[node.func.id]
        arguments = [self.visit(argument) for argument in node.args]

        def call(scope: Mapping[str, Any]) -> Any:
            result = function(*(argument(scope) for argument in arguments))
            return sympy.true if result is True else sympy.false if result is False else result

        return call


@functools.lru_cache(maxsize=256)
def _symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, real=True)


def _simplified(value: Any) -> Any:
    if isinstance(value, sympy.Basic) and not isinstance(value, (sympy.Integer, sympy.Rational)):
        return sympy.nsimplify(value) if isinstance(value, sympy.Float) else sympy.simplify(value)
    return value


def _same(first: Any, second: Any) -> bool:
    if isinstance(first, Mapping) and isinstance(second, Mapping):
        return first.keys() == second.keys() and all(_same(first[key], second[key]) for key in first)
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(_same(a, b) for a, b in zip(first, second))
    if isinstance(first, sympy.Basic) and isinstance(second, sympy.Basic):
        return sympy.simplify(first - second) == 0
    return bool(first == second)


def _as_list(value: Any, where: str) -> Sequence[Any]:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, list):
        raise DerivationError(f"{where}: must be a list")
    return value


def _as_mapping(value: Any, where: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise DerivationError(f"{where}: must be a mapping")
    return value
