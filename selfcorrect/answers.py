"""Gold answers: what kind each one is, and how an answer is compared with it.

One path for every judge: the `accuracy` / `outcome` rewards, the multi-attempt judge and the evaluation all call
`selfcorrect.rewards.verify_answer`, which runs `answers_match` (in its math-verify worker process) and the text rules
here. The loader classifies every gold with the same `classify` and reports the counts.

Kinds of gold answers
---------------------
- `number`: a scalar with no free symbol ("42", "-1/2", "0.5", "\\sqrt{2}", "\\pi"); a number followed by at most two
  unit words ("12 feet", "10\\text{ inches}") is that number;
- `expression`: any other mathematics that math-verify reads faithfully: formulas, equations, sets, intervals, tuples,
  matrices;
- `text`: prose, yes/no, multiple-choice letters, answers with words around a formula. Never compared as math;
- None: unusable (empty, or no words and no parse, e.g. "??").

A gold is text when (in this order)
1. it is a multiple-choice letter: one capital letter, or a letter in parentheses or followed by ")" (`A`, `(c)`,
   `\\text{(B)}`);
2. it has a word: a run of three or more letters that is not a function name (sin, log, floor, sqrt, gcd, ...), or a
   two-letter English word (no, or, is, of, ...). LaTeX commands (`\\frac`) are not words; what `\\text{}` holds is;
3. its math-verify parse is a product of single letters drawn from a run of two or more letters of the gold: math-verify
   reads words as products of symbols ("No" -> n*o, "xy" -> x*y), which says nothing about the answer;
4. its parse is unfaithful, i.e. its symbols are not the gold's letters (math-verify dropped or invented some:
   "2^floor(n/2)*floor(n/2)!" -> 2, "log(2)" -> l*o*g*2) and a plain-text sympy reading (for golds written with `^`,
   `*`, `!` and function names) does not fix it.

Comparison
----------
- number / expression golds: math-verify equivalence; the answer is read by the same rules, and an answer that is text
  (or does not parse) is wrong;
- text golds: normalized string match. Both sides: Unicode NFKC, `\\text{}`-like wrappers, `$` and LaTeX spaces
  removed, case folded, whitespace collapsed, surrounding quotes and a final period dropped; a choice letter keeps only
  the letter ("(C)", "C)", "\\textbf{C}" -> "c"). "Yes." matches "yes"; "n*o", "on", "0" and "1" do not match "No".

math-verify is imported lazily: the text rules need only `re`.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GOLD_KINDS",
    "Classified",
    "answers_match",
    "classify",
    "extract_boxed",
    "normalize_text",
    "parse_gold",
    "surface_kind",
]

GOLD_KINDS = ("number", "expression", "text")

# Runs of letters that name functions or constants, not words ("floor(n/2)", "\\operatorname{lcm}", "log_2 8").
FUNCTION_NAMES = frozenset(
    "sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln lg exp sqrt floor ceil ceiling max min gcd lcm "
    "mod det abs deg pi inf sup lim infty oo binom binomial factorial".split()
)
# Two-letter runs that are English words (other two-letter runs, such as "xy", may be products of variables).
TWO_LETTER_WORDS = frozenset("no or is of to in on at an as be by do go he if it me my ok so up us we am yes".split())
# Words after a number that make it more than a number with a unit ("1 or more", "2 and 3").
NOT_UNITS = (
    TWO_LETTER_WORDS
    | FUNCTION_NAMES
    | frozenset("and not more less than only each per all none both either neither any some".split())
)
_CONSTANT_LETTERS = frozenset("ei")  # e and i may parse to the constants E and I (no free symbol)
_TEXT_COMMANDS = (
    "text textbf textit textrm textsf texttt textnormal textup mathrm mathit mathbf mathsf mbox hbox operatorname"
)
_DROPPED_COMMANDS = "mathbb mathcal mathfrak mathscr begin end"  # their argument is a font letter or an environment
_GREEK = (
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi omicron rho sigma tau "
    "upsilon phi varphi chi psi omega"
)
_COMMAND = re.compile(r"\\([A-Za-z]+)")
_LETTER_RUN = re.compile(r"[A-Za-z]+")
_NUMBER = r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:/\d+)?"
_NUMBER_WITH_UNIT = re.compile(
    rf"\s*(?P<number>{_NUMBER})\s+(?P<unit>[A-Za-z]{{2,}}\.?(?:\s+[A-Za-z]{{2,}}\.?)?)"
    r"(?:\s*\^\s*\{?\s*[23]\s*\}?)?\s*"
)
_CHOICE = re.compile(r"[A-Z]|[(\[]\s*[A-Za-z]\s*[)\]]|[A-Za-z]\)")
_NORMALIZED_CHOICE = re.compile(r"[(\[]?\s*([a-z])\s*[)\]]?[.:]?")
_LATEX_SPACES = re.compile(r"\\[,;:! ]|~|\\quad|\\qquad")
_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")


def extract_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}` with nested braces; None if there is none or it is unbalanced.

    Escaped braces (`\\{`, `\\}`) do not count towards the nesting. An empty box gives "".
    """
    matches = list(_BOX_OPEN.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    end = _closing_brace(text, last.end())
    return None if end is None else text[last.end() : end]


def _closing_brace(text: str, start: int) -> int | None:
    """Index of the `}` closing the group opened just before `start`; None if it is not closed."""
    depth, i = 1, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # skip the escaped character (`\{`, `\}`, `\\`)
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _rewrite_commands(text: str, names: str, keep: bool) -> str:
    """Replace `\\name{arg}` (name in `names`) by ` arg ` (keep) or by a space; unbalanced groups are left alone."""
    pattern = re.compile(r"\\(?:" + "|".join(names.split()) + r")\s*\{")
    out, i = [], 0
    for match in pattern.finditer(text):
        if match.start() < i:
            continue  # inside an argument already rewritten
        end = _closing_brace(text, match.end())
        if end is None:
            break
        out.append(text[i : match.start()])
        out.append(f" {_rewrite_commands(text[match.end() : end], names, keep)} " if keep else " ")
        i = end + 1
    out.append(text[i:])
    return "".join(out)


def _unwrapped(text: str) -> str:
    """The text with `\\text{}`-like wrappers, `$` and LaTeX spaces replaced by their content or a space."""
    text = _rewrite_commands(text, _TEXT_COMMANDS, keep=True)
    text = text.replace("\\$", "$").replace("$", " ").replace("\\(", " ").replace("\\)", " ")
    return _LATEX_SPACES.sub(" ", text)


def _math_view(text: str) -> str:
    """What remains to read as words and letters: wrappers unwrapped, fonts / environments and commands removed."""
    text = _rewrite_commands(_unwrapped(text), _DROPPED_COMMANDS, keep=False)
    return _COMMAND.sub(" ", text)


def _words(text: str) -> list[str]:
    """The words of `text` (rule 2 of the module docstring)."""
    words = []
    for run in _LETTER_RUN.findall(_math_view(text)):
        low = run.lower()
        if low in FUNCTION_NAMES:
            continue
        if len(run) >= 3 or low in TWO_LETTER_WORDS:
            words.append(run)
    return words


def normalize_text(text: Any) -> str:
    """The normalized form text golds and answers are compared in (see the module docstring)."""
    s = unicodedata.normalize("NFKC", "" if text is None else str(text))
    boxed = extract_boxed(s)
    s = boxed if boxed is not None else s
    s = " ".join(_unwrapped(s).casefold().split())
    s = s.strip(" \"'`").rstrip(".").strip(" \"'`")
    choice = _NORMALIZED_CHOICE.fullmatch(s)
    return choice.group(1) if choice else s


def _strip_gold(text: Any) -> str:
    s = "" if text is None else str(text).strip()
    boxed = extract_boxed(s)
    return boxed.strip() if boxed else s  # "\\boxed{7}" -> "7"


def surface_kind(text: Any) -> tuple[str | None, str] | None:
    """What the text rules alone decide: ("text", normalized) for a choice letter or words, ("number", the number) for
    a number with a unit, (None, "") for an empty gold; None when math-verify must read it."""
    s = _strip_gold(text)
    if not s:
        return None, ""
    unwrapped = " ".join(_unwrapped(s).split())
    if _CHOICE.fullmatch(unwrapped):
        return "text", normalize_text(s)
    with_unit = _NUMBER_WITH_UNIT.fullmatch(unwrapped)
    if with_unit and not any(w.lower().rstrip(".") in NOT_UNITS for w in with_unit.group("unit").split()):
        return "number", with_unit.group("number")
    if _words(s):
        return "text", normalize_text(s)
    return None


# --- math (runs in math-verify's worker process, see selfcorrect/rewards.py) ------------------------------------------

_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_PLAIN_MATH = re.compile(r"[0-9A-Za-z+\-*/^().,!\s]+")
_DOT_NOT_DECIMAL = re.compile(r"\.(?!\d)")


def _extraction_config() -> list:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(), ExprExtractionConfig()]


def parse_gold(solution: Any) -> list | None:
    """math-verify's parse of a gold answer ("42", "1/2", "\\frac12", "$\\frac12$", "\\boxed{7}", ...); None if it does
    not parse. No text rules and no time bound: `classify` applies the rules, `verify_answer` bounds the time."""
    from math_verify import parse

    text = _strip_gold(solution)
    if not text:
        return None
    # Bare LaTeX needs math delimiters ("\\frac12" and "2\\sqrt{2}" misparse without them); keep explicit ones.
    for candidate in [text] if _UNESCAPED_DOLLAR.search(text) else [f"${text}$", text]:
        # no_fallback: text that is no math gives [] instead of the raw string back.
        parsed = parse(candidate, _extraction_config(), fallback_mode="no_fallback", parsing_timeout=None)
        if parsed:
            return parsed
    return None


@functools.cache
def _sympy_names() -> tuple[dict, dict]:
    import sympy

    functions = {
        "floor": sympy.floor, "ceil": sympy.ceiling, "ceiling": sympy.ceiling, "sqrt": sympy.sqrt, "log": sympy.log,
        "ln": sympy.log, "exp": sympy.exp, "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "abs": sympy.Abs,
        "max": sympy.Max, "min": sympy.Min, "gcd": sympy.gcd, "lcm": sympy.lcm, "binom": sympy.binomial,
        "binomial": sympy.binomial, "factorial": sympy.factorial, "pi": sympy.pi,
    }  # fmt: skip
    global_names: dict = {}
    exec("from sympy import *", global_names)  # what parse_expr's own default namespace holds
    return functions, global_names


def _plain_text_parse(text: str) -> list | None:
    """A gold written as plain text (`2^floor(n/2)*floor(n/2)!`) read by sympy, then as LaTeX by math-verify.

    Only `[0-9A-Za-z+-*/^().,! ]` with single letters and known function names is read (no other name reaches sympy's
    `eval`); None otherwise or when sympy cannot read it.
    """
    if not _PLAIN_MATH.fullmatch(text) or _DOT_NOT_DECIMAL.search(text):
        return None
    functions, global_names = _sympy_names()
    names = set(_LETTER_RUN.findall(text))
    if any(len(name) > 1 and name.lower() not in functions for name in names):
        return None
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        factorial_notation,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    local = {name: functions.get(name.lower()) or sympy.Symbol(name) for name in names}
    transformations = (*standard_transformations, convert_xor, implicit_multiplication_application, factorial_notation)
    try:
        expr = parse_expr(text, local_dict=local, global_dict=global_names, transformations=transformations)
        return parse_gold(f"${sympy.latex(expr)}$")
    except Exception:  # noqa: BLE001 - sympy raises many types on text it cannot read
        return None


def _letters(names: set[str]) -> set[str]:
    return {char.lower() for name in names for char in name if char.isalpha()}


def _parse_letters(parsed: list) -> set[str]:
    """The letters of the free symbols and undefined functions of a parse (`a_1` -> a; `f(x)` -> f, x)."""
    head = parsed[0]
    names = {str(symbol) for symbol in getattr(head, "free_symbols", ())}
    try:
        from sympy.core.function import AppliedUndef

        names |= {type(f).__name__ for f in head.atoms(AppliedUndef)}
    except Exception:  # noqa: BLE001 - a parse that is not a sympy object
        pass
    return _letters(names)


def _gold_letters(text: str) -> tuple[set[str], set[str]]:
    """(variable letters of the gold, letters of its Greek commands)."""
    runs = [run for run in _LETTER_RUN.findall(_math_view(text)) if run.lower() not in FUNCTION_NAMES]
    greek = {name for name in _COMMAND.findall(text) if name in _GREEK.split()}
    return _letters(set(runs)), _letters(greek)


def _faithful(text: str, parsed: list) -> bool:
    """Does the parse hold exactly the gold's letters (rule 4)? e and i may have become constants."""
    letters, greek = _gold_letters(text)
    found = _parse_letters(parsed)
    return letters - _CONSTANT_LETTERS <= found and found <= letters | greek


def _letter_product(text: str, parsed: list) -> bool:
    """Rule 3: the parse is a product of single letters drawn from a run of two or more letters of the gold."""
    import sympy

    head = parsed[0]
    if not isinstance(head, sympy.Mul | sympy.Symbol):
        return False
    factors = head.args if isinstance(head, sympy.Mul) else (head,)
    if not all((isinstance(f, sympy.Symbol) and len(f.name) == 1) or f in (sympy.E, sympy.I) for f in factors):
        return False
    runs = [run.lower() for run in _LETTER_RUN.findall(_math_view(text)) if len(run) >= 2]
    letters = {str(f).lower() for f in factors if isinstance(f, sympy.Symbol)}
    return any(letters <= set(run) for run in runs)


@dataclass(frozen=True)
class Classified:
    """A gold (or an answer) read once: its kind, its normalized text (text kind) and its parse (math kinds)."""

    kind: str | None
    text: str = ""
    parsed: tuple | None = None


@functools.lru_cache(maxsize=65536)
def classify(text: str) -> Classified:
    """The kind of a gold answer (see the module docstring) with what the comparison needs. Runs math-verify and sympy
    without a time bound: call it in the worker (`selfcorrect.rewards`), or on trusted short strings."""
    surface = surface_kind(text)
    if surface is not None:
        kind, value = surface
        if kind != "number":
            return Classified(kind, value)
        text = value  # a number with a unit: the number
    s = _strip_gold(text)
    plain_with_functions = "\\" not in s and any(run.lower() in FUNCTION_NAMES for run in _LETTER_RUN.findall(s))
    parsed = (_plain_text_parse(s) if plain_with_functions else None) or parse_gold(s)
    if parsed is None:
        return Classified(None)
    if _letter_product(s, parsed):
        return Classified("text", normalize_text(s))
    if not _faithful(s, parsed):
        parsed = _plain_text_parse(s)
        if parsed is None or not _faithful(s, parsed):
            return Classified("text", normalize_text(s))
    head = parsed[0]
    is_number = bool(getattr(head, "is_number", False)) and not getattr(head, "free_symbols", True)
    return Classified("number" if is_number else "expression", s, tuple(parsed))


def answers_match(gold: str, answer: str) -> bool | None:
    """Is `answer` right for `gold`? None if the gold is unusable. Text golds: normalized string match; math golds:
    math-verify equivalence, and an answer that is text or does not parse is wrong. No time bound (see `classify`)."""
    from math_verify import verify

    gold_read = classify(gold)
    if gold_read.kind is None:
        return None
    if not str(answer).strip():
        return False
    if gold_read.kind == "text":
        return normalize_text(answer) == gold_read.text
    answer_read = classify(answer)
    if answer_read.kind in (None, "text"):
        return False
    return bool(verify(list(gold_read.parsed), list(answer_read.parsed), timeout_seconds=None))
