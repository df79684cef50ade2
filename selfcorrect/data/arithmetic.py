"""A bundled, deterministic generator of arithmetic word problems, from sums within 20 to two-step stories.

Every number in a question is an operand of its `expression`, and no other digits appear, so a verifier can trust
that the text states the whole problem. Generation uses only string-seeded `random.Random` streams (SHA-512 based),
never the global RNG or salted `hash()`, so the same arguments give the same problems in every process.

Train and test splits are disjoint by arithmetic, not only by wording: `expression_key` maps a problem's expression
to a canonical form (sums and products flattened, their terms sorted: `3 + 5`, `5 + 3` and `(3 + 5)` are one key), and
no key of the test split occurs in the train split (`make_splits`, `split_report`).
"""

from __future__ import annotations

import ast
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

LEVELS = (1, 2, 3, 4, 5)

_LEVEL_DESCRIPTIONS = {
    1: "addition within 20 (a + b with a, b >= 1 and a + b <= 20)",
    2: "addition or subtraction within 20 with a non-negative result",
    3: "two-digit addition or subtraction (10-99) with a non-negative result",
    4: "two-digit plus or minus one-digit with a carry or borrow, or one-digit times a number with a product <= 99",
    5: "two-step problems with small numbers (a + b - c, a - b + c, a + b + c, a * b + c, a * b - c, (a + b) * c)",
}

# Draws tried for an unseen question before the unique space counts as exhausted.
_MAX_TRIES = 200


@dataclass(frozen=True)
class Problem:
    """One word problem; `expression` is a Python-evaluable string equal to `answer`."""

    question: str
    answer: int
    level: int
    expression: str

    @property
    def key(self) -> str:
        """The canonical form of the arithmetic (`expression_key`): equal for the same sum in any order or wording."""
        return expression_key(self.expression)


def expression_key(expression: str) -> str:
    """A canonical form of an arithmetic expression over +, -, * and integers, independent of wording and order.

    A chain of additions and subtractions becomes its signed terms, sorted; a chain of multiplications its factors,
    sorted; nested chains are canonical in turn. So `3 + 5`, `5 + 3` and `(5 + 3)` share the key `(+3 +5)`,
    `9 - 2 + 4` and `4 + 9 - 2` share `(+4 +9 -2)`, `3 * 4 + 2` and `2 + 4 * 3` share `(+(3*4) +2)`; `9 - 2` and
    `2 - 9` stay apart. A subtraction of a sum flips its terms' signs (`9 - (2 + 3)` = `(+9 -2 -3)`).
    """
    tree = ast.parse(expression.strip(), mode="eval").body

    def terms(node: ast.AST, sign: str) -> list[str]:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
            flipped = sign if isinstance(node.op, ast.Add) else ("-" if sign == "+" else "+")
            return terms(node.left, sign) + terms(node.right, flipped)
        return [sign + canonical(node)]

    def factors(node: ast.AST) -> list[str]:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            return factors(node.left) + factors(node.right)
        return [canonical(node)]

    def canonical(node: ast.AST) -> str:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return str(node.value)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
            return "(" + " ".join(sorted(terms(node, "+"), key=_term_order)) + ")"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            return "(" + "*".join(sorted(factors(node), key=_term_order)) + ")"
        raise ValueError(f"not an expression over +, -, * and integers: {expression!r}")

    return canonical(tree)


def _term_order(term: str) -> tuple[int, int, str]:
    """Positive terms first, then numbers in numeric order, then nested chains by text."""
    sign, body = (term[0], term[1:]) if term[:1] in "+-" else ("+", term)
    return (sign == "-", int(body) if body.isdigit() else 10**9, body)


# --- vocabulary -------------------------------------------------------------------------------------------------

Noun = tuple[str, str]  # (singular, plural)
Container = tuple[str, str, tuple[Noun, ...]]  # (singular, plural, nouns it can hold)


def _nouns(*words: str) -> tuple[Noun, ...]:
    """Nouns from `word` (regular plural) or `singular/plural` strings."""
    out = []
    for word in words:
        singular, _, plural = word.partition("/")
        out.append((singular, plural or singular + "s"))
    return tuple(out)


_NAMES = (
    ("Maya", "f"), ("Leo", "m"), ("Sara", "f"), ("Omar", "m"), ("Priya", "f"), ("Ben", "m"), ("Lena", "f"),
    ("Noah", "m"), ("Mia", "f"), ("Ivan", "m"), ("Zoe", "f"), ("Ravi", "m"), ("Emma", "f"), ("Kai", "m"),
    ("Nora", "f"), ("Tom", "m"), ("Aisha", "f"), ("Diego", "m"), ("Hana", "f"), ("Sam", "m"),
)  # fmt: skip
_PRONOUNS = {"f": ("she", "her", "her"), "m": ("he", "his", "him")}  # subject, possessive, object

THINGS = _nouns(
    "apple", "orange", "marble", "sticker", "pencil", "cookie", "card", "coin", "balloon", "crayon", "book",
    "toy car", "cupcake", "candy/candies", "button", "eraser",
)  # fmt: skip
COLLECT = _nouns("shell", "stamp", "coin", "sticker", "card", "rock", "leaf/leaves", "marble", "feather")
SHELF = _nouns("book", "jar", "plant", "toy", "cup", "photo", "vase", "candle")
PICK = _nouns("apple", "flower", "strawberry/strawberries", "cherry/cherries", "lemon", "pear", "plum")
BAKE = _nouns("cookie", "cupcake", "muffin", "brownie", "pie", "pancake", "bread roll")
JAR = _nouns("marble", "cookie", "candy/candies", "coin", "button", "bead", "jelly bean")
CRAFT = _nouns("pencil", "sticker", "crayon", "marker", "bead", "button", "card", "ribbon")
TREE = _nouns("apple", "pear", "lemon", "plum", "orange", "peach/peaches", "leaf/leaves")
BASKET = _nouns("apple", "orange", "egg", "pear", "lemon", "potato/potatoes", "peach/peaches")
LIBRARY = _nouns("book", "magazine", "comic book", "DVD")
VEHICLES = _nouns("car", "truck", "van", "bus/buses", "motorcycle")
PASSENGERS = _nouns("person/people", "passenger")
READ = _nouns("page", "chapter", "story/stories", "poem")
SCORE = _nouns("point", "goal")
SCHOOL = _nouns("pencil", "notebook", "apple", "book", "eraser", "crayon")
DISTANCE = _nouns("mile", "kilometer", "lap")
SEATS = _nouns("seat", "chair")

BOXES: Container = ("box", "boxes", _nouns("pen", "crayon", "pencil", "cookie", "chocolate", "marker"))
BAGS: Container = ("bag", "bags", _nouns("marble", "apple", "orange", "candy/candies", "button", "potato/potatoes"))
BASKETS: Container = ("basket", "baskets", _nouns("apple", "egg", "pear", "lemon", "peach/peaches"))
PLATES: Container = ("plate", "plates", _nouns("cookie", "muffin", "strawberry/strawberries", "sandwich/sandwiches"))
PACKS: Container = ("pack", "packs", _nouns("sticker", "card", "pencil", "battery/batteries"))
JARS: Container = ("jar", "jars", _nouns("coin", "button", "bead", "marble"))
TRAYS: Container = ("tray", "trays", _nouns("muffin", "cookie", "cupcake", "bread roll"))
CLASS_ROWS: Container = ("row", "rows", _nouns("desk", "chair", "seat"))
FLOWER_ROWS: Container = ("row", "rows", _nouns("tulip", "rose", "sunflower", "daisy/daisies", "tomato plant"))
VEG_ROWS: Container = ("row", "rows", _nouns("carrot", "cabbage", "bean plant", "pea plant"))


@dataclass(frozen=True)
class _Template:
    """A question format string and the nouns (or containers with their nouns) it reads naturally with.

    Fields: name/name2/name3, he/He/his/His/him (for name); per operand x in a, b, c: x (number), x_obj (noun agreed
    with x), X ("7 apples"), x_be ("is"/"are"), x_s (verb "s" when x is 1), and with containers x_cont, Xc ("4 boxes");
    obj/objs, cont/conts.
    """

    text: str
    nouns: tuple[Noun, ...] = ()
    containers: tuple[Container, ...] = ()


def _t(text: str, *pool: Any) -> _Template:
    """A template over one noun pool, or over one or more containers."""
    if isinstance(pool[0][0], str):
        return _Template(text, containers=tuple(pool))
    return _Template(text, nouns=pool[0])


_TEMPLATES: dict[str, tuple[_Template, ...]] = {
    "add": (
        _t("{name} has {A}. {He} buys {b} more. How many {objs} does {he} have now?", THINGS),
        _t("{name} had {A}. {name2} gave {him} {b} more. How many {objs} does {name} have now?", THINGS),
        _t("There {a_be} {A} in a basket. {name} puts in {b} more. How many {objs} are in the basket now?", BASKET),
        _t("{name} collected {A} on Monday and {B} on Tuesday. How many {objs} did {he} collect in all?", COLLECT),
        _t("A shelf holds {A}. {name} adds {b} more. How many {objs} are on the shelf now?", SHELF),
        _t("{name} has {A} and {name2} has {B}. How many {objs} do they have altogether?", THINGS),
        _t(
            "In the morning, {name} picked {A}. In the afternoon, {he} picked {b} more. "
            "How many {objs} did {he} pick in total?",
            PICK,
        ),
        _t(
            "A bus has {A} on it. At the next stop, {b} more get{b_s} on. How many {objs} are on the bus now?",
            PASSENGERS,
        ),
    ),
    "sub": (
        _t("{name} has {A}. {He} gives {B} to {name2}. How many {objs} does {name} have left?", THINGS),
        _t("A shelf holds {A}. {b} {b_be} taken away. How many {objs} are left on the shelf?", SHELF),
        _t("{name} baked {A}. {He} ate {b} of them. How many {objs} are left?", BAKE),
        _t("There {a_be} {A} in a jar. {name} takes out {b}. How many {objs} are still in the jar?", JAR),
        _t("{name} had {A}. {He} lost {b} of them on the way home. How many {objs} does {he} have now?", THINGS),
        _t(
            "{name} bought {A} for a school project. {He} used {b} of them. How many {objs} does {he} have left?",
            CRAFT,
        ),
        _t("A tree had {A} on it. Then {b} fell to the ground. How many {objs} are still on the tree?", TREE),
        _t("A bus has {A} on it. At the next stop, {b} get{b_s} off. How many {objs} are on the bus now?", PASSENGERS),
    ),
    "mul": (
        _t("There are {Ac} with {B} in each {cont}. How many {objs} are there in total?", BOXES, BAGS, BASKETS, JARS),
        _t("{name} has {Ac}. Each {cont} holds {B}. How many {objs} does {he} have in all?", BOXES, BAGS, JARS, PACKS),
        _t(
            "{name} bought {Ac} of {objs}. There {b_be} {B} in each {cont}. How many {objs} did {he} buy?",
            BOXES,
            PACKS,
        ),
        _t(
            "A classroom has {Ac} of {objs} with {B} in each {cont}. How many {objs} are in the classroom?", CLASS_ROWS
        ),
        _t("{name} reads {B} every day. How many {objs} does {he} read in {a} days?", READ),
        _t("Each {cont} has {B}. How many {objs} are there in {Ac}?", PACKS, BOXES, BAGS, JARS),
        _t("{name} plants {Ac} of {objs} with {B} in each {cont}. How many {objs} does {he} plant?", FLOWER_ROWS),
        _t("A baker fills {Ac} with {B} each. How many {objs} are on the {conts} altogether?", TRAYS),
    ),
    "add_sub": (
        _t(
            "{name} has {A}. {He} buys {b} more and then gives {c} to {name2}. How many {objs} does {name} have now?",
            THINGS,
        ),
        _t(
            "There {a_be} {A} in a basket. {name} puts in {b} more and then takes out {c}. "
            "How many {objs} are in the basket now?",
            BASKET,
        ),
        _t(
            "{name} collected {A} on Monday and {B} on Tuesday. On Wednesday, {he} gave away {c} of them. "
            "How many {objs} does {he} have left?",
            COLLECT,
        ),
        _t(
            "A bus has {A} on it. At the first stop, {b} more get{b_s} on. At the second stop, {c} get{c_s} off. "
            "How many {objs} are on the bus now?",
            PASSENGERS,
        ),
        _t(
            "A library had {A}. It got {b} more as gifts and then lent out {c}. "
            "How many {objs} are still in the library?",
            LIBRARY,
        ),
        _t(
            "{name} baked {A} in the morning and {B} in the afternoon. {His} friends ate {c} of them. "
            "How many {objs} are left?",
            BAKE,
        ),
    ),
    "sub_add": (
        _t(
            "{name} has {A}. {He} gives {B} to {name2} and then buys {c} more. How many {objs} does {name} have now?",
            THINGS,
        ),
        _t(
            "A shelf holds {A}. {b} {b_be} taken away, and then {name} adds {c} more. "
            "How many {objs} are on the shelf now?",
            SHELF,
        ),
        _t(
            "A parking lot has {A}. {B} leave{b_s}, and then {C} arrive{c_s}. "
            "How many {objs} are in the parking lot now?",
            VEHICLES,
        ),
        _t(
            "{name} had {A}. {He} lost {b} of them, but later found {c} more. How many {objs} does {he} have now?",
            THINGS,
        ),
        _t(
            "There {a_be} {A} in a jar. {name} takes out {b} and later puts in {c} more. "
            "How many {objs} are in the jar now?",
            JAR,
        ),
        _t(
            "A bus has {A} on it. At the first stop, {b} get{b_s} off. At the second stop, {c} more get{c_s} on. "
            "How many {objs} are on the bus now?",
            PASSENGERS,
        ),
    ),
    "add_add": (
        _t("{name} has {A}, {name2} has {B}, and {name3} has {C}. How many {objs} do they have altogether?", THINGS),
        _t(
            "{name} read {A} on Monday, {B} on Tuesday, and {C} on Wednesday. How many {objs} did {he} read in total?",
            READ,
        ),
        _t(
            "There {a_be} {A} in the first box, {B} in the second box, and {C} in the third box. "
            "How many {objs} are there in all three boxes?",
            THINGS,
        ),
        _t(
            "{name} bought {A}. Then {he} bought {b} more, and {name2} gave {him} {c} more. "
            "How many {objs} does {name} have now?",
            THINGS,
        ),
        _t(
            "A baker made {A} in the morning, {B} at noon, and {C} in the evening. "
            "How many {objs} did the baker make that day?",
            BAKE,
        ),
        _t(
            "{name} scored {A} in the first game, {B} in the second game, and {C} in the third game. "
            "How many {objs} did {he} score in all three games?",
            SCORE,
        ),
    ),
    "mul_add": (
        _t(
            "There are {Ac} with {B} in each {cont}. There {c_be} also {C} on the table. "
            "How many {objs} are there in total?",
            BOXES,
            BAGS,
            BASKETS,
            JARS,
        ),
        _t(
            "{name} has {Ac} with {B} in each {cont} and {c} loose {c_obj}. How many {objs} does {he} have in all?",
            BOXES,
            PACKS,
            JARS,
        ),
        _t(
            "{name} bought {Ac} of {objs} with {B} in each {cont}. {name2} gave {him} {c} more. "
            "How many {objs} does {name} have now?",
            BOXES,
            BAGS,
            PACKS,
        ),
        _t(
            "{name} reads {B} every day for {a} days. The next day, {he} reads {c} more. "
            "How many {objs} does {he} read altogether?",
            READ,
        ),
        _t(
            "A classroom has {Ac} of {objs} with {B} in each {cont}. The teacher brings in {c} more. "
            "How many {objs} are in the classroom now?",
            CLASS_ROWS,
        ),
        _t("A baker fills {Ac} with {B} each and has {C} left over. How many {objs} did the baker make?", TRAYS),
    ),
    "mul_sub": (
        _t(
            "There are {Ac} with {B} in each {cont}. {name} takes out {c}. How many {objs} are left?",
            BOXES,
            BAGS,
            JARS,
            BASKETS,
        ),
        _t(
            "{name} bought {Ac} of {objs} with {B} in each {cont}. {He} gave {c} to {name2}. "
            "How many {objs} does {name} have left?",
            BOXES,
            BAGS,
            PACKS,
        ),
        _t("A baker fills {Ac} with {B} each. Customers buy {c} of them. How many {objs} are left?", TRAYS),
        _t(
            "{name} plants {Ac} of {objs} with {B} in each {cont}. Rabbits eat {c} of them. How many {objs} are left?",
            VEG_ROWS,
        ),
        _t(
            "A classroom has {Ac} of {objs} with {B} in each {cont}. {c} of them {c_be} broken. "
            "How many {objs} are not broken?",
            CLASS_ROWS,
        ),
        _t(
            "Each {cont} has {B}. {name} opens {Ac} and uses {c} of the {objs}. How many {objs} are left?",
            PACKS,
            BOXES,
        ),
    ),
    # (a + b) * c: a and b are at least 2, so "boys", "days" and "rows" stay plural.
    "sum_mul": (
        _t(
            "{name} has {a} red {a_cont} and {b} blue {b_cont}. Each {cont} holds {C}. "
            "How many {objs} does {he} have in all?",
            BOXES,
            BAGS,
            BASKETS,
            JARS,
        ),
        _t(
            "There are {a} big {a_cont} and {b} small {b_cont}. Each {cont} has {C}. "
            "How many {objs} are there in total?",
            BOXES,
            BAGS,
            PACKS,
            PLATES,
        ),
        _t(
            "{name} bought {Ac} of {objs} on Monday and {Bc} on Tuesday. Each {cont} contains {C}. "
            "How many {objs} did {he} buy?",
            BOXES,
            PACKS,
            BAGS,
        ),
        _t(
            "A class has {a} boys and {b} girls. Each student brings {C}. "
            "How many {objs} do the students bring altogether?",
            SCHOOL,
        ),
        _t(
            "{name} ran {C} each day for {a} days last week and {b} days this week. "
            "How many {objs} did {he} run in total?",
            DISTANCE,
        ),
        _t(
            "A theater has {a} rows on the left and {b} rows on the right, with {C} in each row. "
            "How many {objs} are there in total?",
            SEATS,
        ),
    ),
}

_EXPRESSIONS = {
    "add": "{a} + {b}",
    "sub": "{a} - {b}",
    "mul": "{a} * {b}",
    "add_sub": "{a} + {b} - {c}",
    "sub_add": "{a} - {b} + {c}",
    "add_add": "{a} + {b} + {c}",
    "mul_add": "{a} * {b} + {c}",
    "mul_sub": "{a} * {b} - {c}",
    "sum_mul": "({a} + {b}) * {c}",
}

_ANSWERS: dict[str, Callable[..., int]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "add_sub": lambda a, b, c: a + b - c,
    "sub_add": lambda a, b, c: a - b + c,
    "add_add": lambda a, b, c: a + b + c,
    "mul_add": lambda a, b, c: a * b + c,
    "mul_sub": lambda a, b, c: a * b - c,
    "sum_mul": lambda a, b, c: (a + b) * c,
}

_TWO_STEP_KINDS = ("add_sub", "sub_add", "add_add", "mul_add", "mul_sub", "sum_mul")


# --- generation -------------------------------------------------------------------------------------------------


def _check_level(level: int) -> None:
    if level not in LEVELS or isinstance(level, bool):
        raise ValueError(f"Unknown arithmetic level {level!r}; valid levels are 1-5.")


def _sum_within(rng: random.Random, total: int) -> tuple[int, int]:
    """(a, b) uniform over the ordered pairs with a, b >= 1 and a + b <= `total` (rejection sampling)."""
    while True:
        a, b = rng.randint(1, total - 1), rng.randint(1, total - 1)
        if a + b <= total:
            return a, b


def _add_or_sub(rng: random.Random, low: int, high: int, sum_cap: int | None = None) -> tuple[str, tuple[int, ...]]:
    """A sum of two numbers in [low, high] (within `sum_cap` when given), or a difference a - b >= 0."""
    kind = rng.choice(("add", "sub"))
    if kind == "add":
        return kind, _sum_within(rng, sum_cap) if sum_cap else (rng.randint(low, high), rng.randint(low, high))
    a = rng.randint(low + 1, high)  # no "1 cookie ... ate 1 of them"
    return kind, (a, rng.randint(low, a))


# Levels 1-2 are sums and differences within 20, level 4's products a * b with a in 2-9 and a * b <= 99: the single-digit
# spaces they replaced held 45 and 89 distinct sums / differences and 36 products, fewer than a leak-free split of the
# recipes' sizes needs (`split_report` counts what a split holds).
_WITHIN = 20
_MAX_PRODUCT = 99

# Test problems reserved per level (see `make_splits`): enough for the recipes' test splits (levels 1-2: up to 64
# problems over two levels; levels 3-5: recipes/reproduce.py's 160 over two levels), a small share of a level's space
# where it is small (level 1 holds 100 expressions, level 2 309, among them all of level 1's sums).
RESERVED_TEST = {1: 32, 2: 32, 3: 80, 4: 80, 5: 80}


def _operands(rng: random.Random, level: int) -> tuple[str, tuple[int, ...]]:
    """The operation kind and operands for one problem of `level`."""
    if level == 1:
        return "add", _sum_within(rng, _WITHIN)
    if level == 2:
        return _add_or_sub(rng, 1, _WITHIN, sum_cap=_WITHIN)
    if level == 3:
        return _add_or_sub(rng, 10, 99)
    if level == 4:
        kind = rng.choice(("add", "sub", "mul"))
        if kind == "add":  # the ones digits carry
            ones = rng.randint(1, 9)
            return kind, (10 * rng.randint(1, 9) + ones, rng.randint(10 - ones, 9))
        if kind == "sub":  # the ones digit borrows
            ones = rng.randint(0, 8)
            return kind, (10 * rng.randint(1, 9) + ones, rng.randint(ones + 1, 9))
        a = rng.randint(2, 9)  # groups of a one-digit count; the product stays two-digit
        return kind, (a, rng.randint(2, _MAX_PRODUCT // a))
    kind = rng.choice(_TWO_STEP_KINDS)
    if kind == "add_sub":
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        return kind, (a, b, rng.randint(2, min(20, a + b)))
    if kind == "sub_add":
        a = rng.randint(2, 20)
        return kind, (a, rng.randint(2, a), rng.randint(2, 20))
    if kind == "add_add":
        return kind, (rng.randint(2, 20), rng.randint(2, 20), rng.randint(2, 20))
    if kind == "mul_add":
        return kind, (rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 20))
    if kind == "mul_sub":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        return kind, (a, b, rng.randint(2, min(20, a * b)))
    return kind, (rng.randint(2, 6), rng.randint(2, 6), rng.randint(2, 9))  # sum_mul


def _fields(rng: random.Random, template: _Template, operands: tuple[int, ...]) -> dict[str, str]:
    """The format fields for `template`: names, pronouns, and nouns agreed with each operand."""
    (name, gender), (name2, _), (name3, _) = rng.sample(_NAMES, 3)
    he, his, him = _PRONOUNS[gender]
    fields = {"name": name, "name2": name2, "name3": name3, "he": he, "He": he.capitalize()}
    fields |= {"his": his, "His": his.capitalize(), "him": him}
    container = rng.choice(template.containers) if template.containers else None
    obj, objs = rng.choice(container[2] if container else template.nouns)
    fields |= {"obj": obj, "objs": objs}
    if container:
        fields |= {"cont": container[0], "conts": container[1]}
    for key, n in zip("abc", operands):
        noun = obj if n == 1 else objs
        fields |= {key: str(n), f"{key}_obj": noun, key.upper(): f"{n} {noun}"}
        fields |= {f"{key}_be": "is" if n == 1 else "are", f"{key}_s": "s" if n == 1 else ""}
        if container:
            cont = container[0] if n == 1 else container[1]
            fields |= {f"{key}_cont": cont, f"{key.upper()}c": f"{n} {cont}"}
    return fields


def generate_problem(rng: random.Random, level: int) -> Problem:
    """One random word problem of `level` (1-5), drawn from `rng`."""
    _check_level(level)
    kind, operands = _operands(rng, level)
    template = rng.choice(_TEMPLATES[kind])
    question = template.text.format_map(_fields(rng, template, operands))
    expression = _EXPRESSIONS[kind].format_map(dict(zip("abc", operands)))
    return Problem(question=question, answer=_ANSWERS[kind](*operands), level=level, expression=expression)


def generate_problems(level: int, n: int, seed: int) -> list[Problem]:
    """`n` problems of `level`, the same for the same (level, n, seed) in every process."""
    _check_level(level)
    if n < 0:
        raise ValueError(f"`n` must be non-negative; got {n}.")
    rng = random.Random(f"selfcorrect-arithmetic-{seed}-{level}")
    return [generate_problem(rng, level) for _ in range(n)]


def _draw_unique(
    rng: random.Random,
    level: int,
    n: int,
    seen_keys: set[str],
    seen_questions: set[str],
    forbidden_keys: frozenset[str] = frozenset(),
) -> list[Problem]:
    """`n` problems of `level` whose arithmetic (`Problem.key`) is never in `forbidden_keys` and is new to
    `seen_keys` while the level has new arithmetic left; `seen_keys` and `seen_questions` are updated.

    Once `_MAX_TRIES` draws in a row found no new key, the level's space counts as exhausted: later problems repeat an
    expression under a question not yet used (a new wording), and a question is repeated only when `_MAX_TRIES` draws
    found no new wording either. A level with no key outside `forbidden_keys` is an error.
    """
    out: list[Problem] = []
    exhausted = False
    for _ in range(n):
        new_wording = any_allowed = None
        for _ in range(_MAX_TRIES):
            problem = generate_problem(rng, level)
            key = problem.key
            if key in forbidden_keys:
                continue
            if not exhausted and key not in seen_keys:
                break
            if problem.question not in seen_questions:
                new_wording = new_wording or problem
                if exhausted:
                    break
            any_allowed = any_allowed or problem
        else:
            exhausted = True
            problem = new_wording or any_allowed
            if problem is None:
                raise ValueError(f"Level {level} has no expression left outside the other split; use fewer problems.")
        seen_keys.add(problem.key)
        seen_questions.add(problem.question)
        out.append(problem)
    return out


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _interleave(groups: Sequence[Sequence[Problem]]) -> list[Problem]:
    longest = max((len(g) for g in groups), default=0)
    return [g[i] for i in range(longest) for g in groups if i < len(g)]


def make_splits(
    levels: Sequence[int] = (1, 2), train_size: int = 512, eval_size: int = 64, seed: int = 0
) -> dict[str, list[Problem]]:
    """Train and test problem lists, disjoint by arithmetic (`expression_key`), spread evenly (round-robin) over
    `levels`.

    The test split comes first from its own seed stream, one expression per problem while the levels have new ones:
    each level draws a pool of `RESERVED_TEST[level]` problems (more when its share of `eval_size` is larger) and the
    test split takes the first of them, so a smaller `eval_size` gives a prefix of a larger one's test problems per
    level. The train split never uses an expression of the pool (in any level, order or wording), so the train split
    is the same for every `eval_size` within the reserve, and rows built from one recipe's train split (revision data,
    say) never hold a test expression of a recipe with another `eval_size` within it. Train repeats an expression,
    under a new wording, only once its level has no new one left. `split_report` counts what each split
    holds; when the train split repeats expressions, a warning says how many distinct ones it has.
    """
    levels = tuple(dict.fromkeys(levels))
    if not levels:
        raise ValueError("`levels` must name at least one arithmetic level; valid levels are 1-5.")
    for level in levels:
        _check_level(level)
    for name, size in (("train_size", train_size), ("eval_size", eval_size)):
        if size <= 0:
            raise ValueError(f"`{name}` must be positive; got {size}.")

    keys: set[str] = set()
    questions: set[str] = set()
    pools = [  # each level's test problems are the first of its reserved pool, which train never touches
        _draw_unique(
            random.Random(f"selfcorrect-arithmetic-{seed}-test-{level}"),
            level,
            max(count, RESERVED_TEST[level]),
            keys,
            questions,
        )
        for level, count in zip(levels, _shares(eval_size, len(levels)))
    ]
    test = [pool[:count] for pool, count in zip(pools, _shares(eval_size, len(levels)))]
    test_keys = frozenset(keys)
    keys, questions = set(), set()
    train = [
        _draw_unique(
            random.Random(f"selfcorrect-arithmetic-{seed}-train-{level}"), level, count, keys, questions, test_keys
        )
        for level, count in zip(levels, _shares(train_size, len(levels)))
    ]
    splits = {"train": _interleave(train), "test": _interleave(test)}
    report = split_report(splits)
    for name in ("train", "test"):
        if report[name]["expressions"] < report[name]["problems"]:
            logger.warning(
                "bundled arithmetic levels %s: the %s split's %d problems hold %d distinct expressions (by level: %s); "
                "none is in the other split",
                ",".join(map(str, levels)),
                name,
                report[name]["problems"],
                report[name]["expressions"],
                ", ".join(f"{lv}: {c['expressions']} of {c['problems']}" for lv, c in report[name]["levels"].items()),
            )
    return splits


def split_report(splits: dict[str, Sequence[Problem]]) -> dict[str, Any]:
    """What `make_splits`'s splits hold: per split the problems, distinct questions and distinct expressions (by
    `expression_key`), overall and per level, and `shared_expressions`: test expressions also in train (0 by
    construction)."""
    report: dict[str, Any] = {}
    for name, problems in splits.items():
        levels = sorted({p.level for p in problems})
        report[name] = {
            "problems": len(problems),
            "questions": len({p.question for p in problems}),
            "expressions": len({p.key for p in problems}),
            "levels": {
                level: {
                    "problems": sum(p.level == level for p in problems),
                    "expressions": len({p.key for p in problems if p.level == level}),
                }
                for level in levels
            },
        }
    if "train" in splits and "test" in splits:
        train_keys = {p.key for p in splits["train"]}
        report["shared_expressions"] = sum(p.key in train_keys for p in splits["test"])
    return report


def to_records(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    """Rows with `problem`, `solution` (the answer as a string), `level` and `expression`."""
    return [
        {"problem": p.question, "solution": str(p.answer), "level": p.level, "expression": p.expression}
        for p in problems
    ]


def describe_levels() -> dict[int, str]:
    """A one-line description of each level."""
    return dict(_LEVEL_DESCRIPTIONS)
