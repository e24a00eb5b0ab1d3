"""Answer extraction and equivalence: one `Verdict` per generation.

math-verify (and latex2sympy/sympy under it) decides whether two single values are equal.
This package does what it does not: Chinese text, full-width characters, units, several parts,
named parts, text and choice answers, tolerance, and hard bounds on the work, so that a
pathological output can't hang a run and a call from any thread works (math-verify's SIGALRM
timeouts are turned off). Modules: ``expected`` (what a suite may write), ``extract`` (where the
answer is), ``values`` (answer text to values), ``prose`` (the words around a value, other
languages), ``hedge`` (answers the output doubts), ``units``, ``text`` (choices, yes/no, words),
``equality`` (bounded comparison) and ``check`` (the verdict).

Where the answer is read from
    The text after the last ``</think>``; a ``<think>`` that never closes has no answer
    (``truncated`` when the generation hit max_new_tokens, ``no_answer`` otherwise). Only the
    last 4,000 characters are read, up to a ``<think>`` reopened after the answer. In that
    text, in order of preference:

    1. ``\\boxed{…}`` / ``\\fbox{…}`` (nested braces). A single answer takes the last box, with
       the boxes joined to it as one answer ("or", "and", "或", "和", a comma: ``x=\\boxed{1}``
       或 ``x=\\boxed{6}`` gives two values, so an extraneous root is wrong). Several
       parts take the last box when it holds enough parts (``\\boxed{17, 19}``,
       ``\\boxed{17 和 19}``, ``\\boxed{x = 20/7, y = 25/7}``), otherwise the last parts over all
       boxes (``\\boxed{17}`` … ``\\boxed{19}``). A box still open when max_new_tokens hit
       (``\\boxed{12``) is no answer: it may have gone on. ``\\boxed 9`` (no braces) boxes one
       token, as in TeX. A box holding one letter that the text goes on to work out ("Let the
       number be ``\\boxed{n}``. Then n = 12") is notation, not the answer.
    2. The last "final answer:", "the answer is", "answers are", "最终答案", "答案是/为/：",
       "答：" (and "la réponse est", "Réponse :", "la respuesta es", "die Antwort ist/lautet",
       "Ответ:", "答えは", "الإجابة", "उत्तर:") that is followed by a value, up to the end of its
       sentence. One inside a conditional ("若…，则答案为 32", "If …, the answer would be 18")
       gives another reading and is skipped; a sentence after it that opens with "因此",
       "so", "therefore" and gives a value is a later conclusion, and replaces it.
    3. The last line that holds a value (closing words such as "Hope this helps!" are
       skipped), read from its last "so", "thus", "therefore", "hence", "we get", "所以",
       "因此", "故", "综上", "解得", "可得", "得到", "即", "i.e." (and "donc", "por lo tanto",
       "daher", "итак", "したがって", "إذن", "इसलिए") on, up to the end of that sentence; where
       nothing with a value follows the last one, from the one before. A colon after a number
       introduces detail ("17 buses: 8 large and 9 small"). Parts each on a labelled line
       ("Domain: [0, 5)" then "Range: (1, 7]") are read together. A line ending in ":" ("Question 3:") introduces, it does not answer; a check
       line ("检验：…", "Check: …") is skipped unless it concludes ("…，所以 x=3").

    Nothing found is ``no_answer``; where an expression of letters only is expected
    (``a + b``), "The answer is $b + a$" and "ab" are values too. A final answer that says
    there is no value ("undefined", "无解") is ``wrong`` where a value is expected. Text
    answers are read in ``text``; a choice letter also after "I'd go with", "the correct
    option is", "la bonne réponse est", and letters ruled out ("A, not B or D", "选 D，不是 C",
    "B et non A") are not the choice.

Hedged answers
    A correct value that the output doubts, leaves open or withdraws is ``wrong`` ("17 辆。不过我
    不确定这是否正确", "暂定答案为 \\boxed{17}，还需检验", "（可能还不够）", "目前还没有结论",
    "but this is probably wrong", "I'm not sure", "Tentatively", "my best guess", "or maybe 8",
    "也可能是 13"). Only the answer's sentence and what follows it are read: doubt in the
    restated problem or settled before the answer does not count, nor does another value called
    wrong ("16 是错的"), and a check in a later clause that confirms ("检验：…，正确", "this
    checks out") settles a doubt.

Reading a value
    Full-width digits and punctuation (``，。：＝－／（）``) and U+2212 minus are folded to
    ASCII; ``π``, ``√``, ``×``, ``²`` to LaTeX; ``$``, ``\\(``, ``**``, ``\\text{}`` wrappers are
    dropped. An equation's left side is not an answer: ``x = 60/21 = 20/7`` reads ``20/7``, and
    ``20/7 ≈ 2.857`` reads ``20/7``; nor is what comes before the last verb of equality ("is",
    "equals", "是", "等于", "为", "的值为") that a value follows: "The largest n is 34" reads
    34, "3 + 4 等于 7" reads 7. Chinese words, leading English words ("the numbers are") and
    trailing units (cm, cm², km/h, °, 平方厘米, 元, 本, 个, 米, any trailing English word such
    as "books") are dropped; a percent sign is kept for equality (see ``percent``). 1.25 万 is
    12500, 3 亿 is 300000000 (万, 百万, 千万, 亿, 万亿). sin 30° is sin(π/6). ``2 1/2`` and
    ``2又1/2`` are mixed numbers; ``1e-6`` is a power of ten on either side. A unit in brackets
    (``30（元）``, ``(cm²)``), a Chinese compound unit (``千米/时``), ``￥`` and ``℃`` are dropped;
    Chinese words between two numbers keep them apart (``1小时加工200个`` is never 1200). A
    Latin word written against Chinese is a word ("T恤", "Maria一共"), a bracketed Chinese aside
    ("（每辆 30 座）") is dropped, and clauses that open with Chinese after the answer ("，共可坐
    510 人") tell more about it; one value repeated ("x = 24，共 24 人") is one value. Words
    of Cyrillic, Arabic, Devanagari and kana are dropped like Chinese ones. In text with a
    decimal-comma language's words (réponse, donc, Antwort, respuesta, Cyrillic) or ``€``,
    ``2500,75`` and ``0,15`` are decimals (three digits after the comma stay thousands; a
    comma right inside brackets still separates). "7:15 PM" and "下午 7:15" are 19:15 (an
    expected ``7:15`` matches either half of the day); ``0.8\\overline{3}``, ``0.\\dot{3}``,
    "0.8333 repeating" and "0.333…" are exact fractions; "[30 degrees]" and "6days" are 30 and
    6; ``\\cos(90^\\circ - t)`` takes its degrees as radians; ``x != 2`` is ``x \\neq 2``. A part
    that restates the value before it rounded ("约等于 78.5", "or approximately 2.857",
    "(about 2.86)") is no part of its own. A system in a left brace
    (``\\left\\{\\begin{array}…\\right.``) is its rows.
    A comma followed by exactly three digits and no space is a thousands separator
    (``1,234``), except directly inside ( or [ where it separates (``(2,100) \\cup (100,500)``,
    ``(1,234)`` is a pair); ``10\\,000``, ``12,\\! 345``, ``1{,}000`` and ``1 000`` are
    thousands too; the Chinese comma ``，`` never is. Any other comma, ``;``, ``、``, "and",
    "or", "和", "与", "或", ``\\quad`` and the row break ``\\\\`` of ``cases``/``aligned``
    separate parts (``17, 19``). Commas inside brackets do not separate (``(1, 2]``). Matrices
    (``pmatrix``, ``bmatrix``, ``array`` in brackets) are one value, a column vector too,
    except where several parts are expected: then its entries are the parts. A set in plain
    braces (``{1, 4, 9}``) holds its elements, and a system's rows against an expected point
    are that point.
    ``a \\pm b`` (or ``∓``) gives both values for a list, compared in any order.

Expected forms (as written in suite YAML)
    scalar        one value; ``\\boxed{17, 19}`` is not ``17``. A scalar holding ``=`` is compared
                  as an equation. ``\\pm 3`` means both roots (a list, any order); a set
                  ``\\{(1, 2), (3, 4)\\}`` or a bare ``a, b`` also matches its elements given
                  apart (``\\boxed{(1, 2)}`` and ``\\boxed{(3, 4)}``). A choice letter
                  (``C``, ``(C)``), yes/no (``Yes``, ``是``, ``否``) or words (``odd``, ``奇函数``)
                  are text answers (see ``text``). ``12:00`` is a time of day, compared as one.
                  With a unit (``5 km``, ``36 平方厘米``) an answer in another unit of the same
                  kind is converted (5000 m is right), one of another kind is wrong (see
                  ``units``); an answer with no unit is read in the unit asked.
    list          every part, in order (or in any order with ``unordered=True``); the count
                  must match. A lone tuple or set gives its elements as the parts
                  (``(x, y) = (20/7, 25/7)``, ``\\{17, 19\\}``), unless the parts are pairs
                  themselves (``["(1, 2)", "(3, 4)"]``).
    mapping       named parts, matched by name in any order: ``name = v``, ``name: v``,
                  ``name ≈ v``, ``name is v``, ``(x, y) = (a, b)`` (a Latin-script name must be
                  followed directly by one of these); a name in Chinese also as ``name 是/为 v``
                  or ``name v`` with up to four Chinese characters between (``科技书2本``,
                  ``面积为 25π cm²``, ``科技书买了2本``). Names are looked up in the final answer
                  first, then anywhere after ``</think>``; the last occurrence wins. A name is
                  not found inside an equation (``3x - y = 5`` gives no ``y``). Names are never
                  translated or guessed: key the YAML in the language the model answers in
                  (``{面积: "25\\pi", 周长: "10\\pi"}``).
    {any_of: […]} any one alternative, each any of these forms.
    {regex: "…"}  a search (``re`` syntax, on the ``regex`` engine) on the final answer text (box
                  or answer phrase, full-width folded); if neither exists, on the whole text
                  after ``</think>``. A check that takes over 10 s (a pattern that backtracks
                  without end) is an ``error`` verdict, never a hang.

Equality
    Numbers without free symbols are compared numerically at 60 digits. With ``rel_tol`` they
    are equal when ``|a - b| <= rel_tol * max(|a|, |b|)`` (relative only: nothing but 0 is
    within tolerance of 0). Without it, exact forms must be exactly equal (``20/7`` =
    ``\\frac{20}{7}``, ``25π`` = ``25\\pi``, ``1000001`` ≠ ``1000000``), and when either side is
    a decimal the relative tolerance is 1e-6: ``2.857143`` equals ``20/7``, ``2.857`` does
    not (it needs ``rel_tol: 1e-3``). Everything else (expressions in variables, sets, intervals,
    equations, relations against their sets) goes to math-verify's ``verify``, which rounds
    decimals inside them to six places and ignores ``rel_tol``. Any exception there is "not
    equal". An undefined value (``\\frac{1}{0}``, ``\\tan 90^\\circ``, 0/0) is never equal to
    anything, itself included. ``percent`` says what a percent sign on one side means:
    ``value`` (25 % is 25), ``fraction`` (25 % is 1/4) or ``either`` (the default); with a sign
    on both sides the numbers are compared. With ``rel_tol``, expressions in the same (at most
    three) variables that math-verify does not find equal are compared at three fixed points
    (``t + 1.732i`` against ``t + \\sqrt{3} i`` at 1e-3), equations side by side. An equation
    defining a function matches the same rule under another name (``y = 3x - 1`` for
    ``h(x) = 3x - 1``; ``x = 3`` is never ``y = 3``).

Not handled, on purpose
    Hedges beyond the phrases above (a careful grader reads more); a Chinese answer followed by
    clauses that each open with Chinese is read from its first clause, so "甲 17 人，乙 19 人"
    against a single 17 passes; the decimal comma outside the languages named;
    Synonyms or translations of part names (``area`` does not find 面积); values given only
    positionally for a mapping (``\\boxed{20/7, 25/7}`` for ``{x, y}``); "分别是 2 本和 3 本"
    against named parts (a list answer ``[2, 3]`` does read it); numbers written in words
    (seventeen, 十七); more than one ``±`` in a value; units outside a scalar answer (lists
    and named parts drop them), converting compound units (km/h) and currencies (they are
    dropped from a value, not converted); function names
    written without a backslash (``sin x`` reads ``x``: write ``\\sin x``). Values that would
    take sympy minutes read as unreadable (a wrong answer, never a hang): powers with an
    exponent over 10,000 (over 100 for a power of a symbol), factorials over 1,000, sums,
    products, integrals and limits left unevaluated, and ``\\binom``/``\\gcd`` holding powers
    or numbers over 1,000.
"""

from pytest_mathperf.answers.check import Verdict, VerdictStatus, check_answer
from pytest_mathperf.answers.expected import format_expected, validate_expected

__all__ = ["Verdict", "VerdictStatus", "check_answer", "format_expected", "validate_expected"]
