"""Revision warm-up data: a wrong first answer, the feedback turn, then the correct revision (SFT before multi-attempt RL).

Data preparation only: no model runs here. The command `selfcorrect revision-data` (`selfcorrect.revision_data`)
samples the model's own answers when asked and writes these rows.

Learning-from-mistakes, CoCoS's warm-up and SCoRe's stage-I motivation agree on the recipe: show a small model a wrong
first answer followed by the right revision, mixed with right first answers that are kept, and train it only on the
revision. `build_revision_rows` (no model) writes such rows; `selfcorrect train` with `method: sft` trains on them
(TRL's `SFTTrainer`, loss on the completion only, so the first attempt is context and never a target).

One output row (TRL's conversational prompt-completion format, plus bookkeeping columns):
- `prompt`: the problem's own chat messages (system + user, exactly the dataset's `prompt`), then
  `{"role": "assistant", "content": first attempt}` and `{"role": "user", "content": feedback}`;
- `completion`: `[{"role": "assistant", "content": revision}]`;
- `solution` (gold answer), `kind`, `mistake`, `first_answer` (the first attempt's boxed answer, "" if none).

`kind` is one of
- `gold_wrong`: the first attempt is a plausible mistake derived from the gold answer (`mistake` names it: `carry`,
  `borrow`, `wrong_op`, `swap`, `order`, `skipped_step`, `off_by_one`, `digit_swap`, `times_ten`) and the revision
  a short correct solution;
- `self_wrong`: the first attempt is one of the recipe's model's own sampled wrong answers (not cut off by the token
  cap; `mistake` = `sampled`), the revision one of its own correct samples of the problem, else the gold-derived
  solution;
- `kept_right`: a right first answer, and the revision repeats it (`mistake` = "").

The feedback text comes from `selfcorrect.feedback` (`--feedback`, `--feedback_template`; default: the recipe's
`feedback` / `feedback_template`, else its `eval_feedback`), called with the `AttemptOutcome` the episode engine
would pass after attempt 1, so the warm-up context is the context that training and evaluation build. With `unary`
feedback a right first answer ends the episode: a `kept_right` row is then single-turn (`prompt` = the problem,
`completion` = the right answer), and a provider that returns None after a wrong answer gives no row (counted).

Gold-derived mistakes use the row's `expression` column when it has one (the bundled arithmetic rows do: `17 + 25`,
`(2 + 3) * 4`, ...) and agrees with the gold answer; otherwise only perturbations of the gold number (`off_by_one`,
`digit_swap`, `times_ten`). Every wrong answer is checked with `selfcorrect.rewards.verify_answer` and dropped unless
judged wrong; every revision is checked to be judged right.

Files under `--output_dir`: `sft.jsonl` (the rows), `counts.json`, and with self sampling `traces.jsonl`.
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import DataError
from .redi import prompt_key

SOURCES = ("gold", "self", "both")
KINDS = ("gold_wrong", "self_wrong", "kept_right")
EXPRESSION_COLUMN = "expression"
# counts["traces"] with self sampling: what became of the sampled answers
TRACE_COUNTS = (
    "traces",
    "unmatched_traces",  # their prompt is no problem's
    "empty_traces",
    "duplicate_traces",  # the same text again for one problem
    "truncated_traces",  # cut off by the token cap: neither a first attempt nor a revision
    "unjudged_traces",  # the verifier gave no verdict
    "correct_traces",
    "wrong_traces",
    "wrong_traces_without_answer",  # wrong with no boxed answer (still a first attempt)
    "wrong_traces_without_revision",  # no own correct sample and no gold-derived solution
    "revisions_own",  # self_wrong rows revised with one of the model's own correct samples
    "revisions_gold",  # ... with the gold-derived solution
)

# --- arithmetic expressions and the mistakes made on them ------------------------------------------------------------

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}
Node = int | tuple[str, "Node", "Node"]  # a number, or (operator, left, right)


def parse_expression(expression: Any) -> Node | None:
    """`"(2 + 3) * 4"` -> `("*", ("+", 2, 3), 4)`; None unless it is +, -, * over non-negative integers."""
    if not isinstance(expression, str) or not expression.strip():
        return None
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None

    def convert(node: ast.AST) -> Node | None:
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = convert(node.left), convert(node.right)
            if left is None or right is None:
                return None
            return (_OPS[type(node.op)], left, right)
        return None

    return convert(tree)


def _digits_without_carry(a: int, b: int, combine) -> int | None:
    """Column-wise arithmetic that drops every carry / borrow: each column keeps `combine(da, db)` mod 10 (None for a
    negative operand)."""
    if a < 0 or b < 0:
        return None
    width = max(len(str(a)), len(str(b)))
    da, db = str(a).zfill(width), str(b).zfill(width)
    return int("".join(str(combine(int(x), int(y)) % 10) for x, y in zip(da, db)))


def _apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


# A slip at one operation: (name, function (a, b) -> (shown expression, value) or None when it is no slip here).
_SLIPS: dict[str, tuple[tuple[str, Any], ...]] = {
    "+": (
        ("carry", lambda a, b: (f"{a} + {b}", _digits_without_carry(a, b, lambda x, y: x + y))),
        ("wrong_op", lambda a, b: (f"{max(a, b)} - {min(a, b)}", abs(a - b))),
    ),
    "-": (
        ("borrow", lambda a, b: (f"{a} - {b}", _digits_without_carry(a, b, lambda x, y: abs(x - y)))),
        ("wrong_op", lambda a, b: (f"{a} + {b}", a + b)),
        ("swap", lambda a, b: (f"{b} - {a}", b - a)),
    ),
    "*": (("wrong_op", lambda a, b: (f"{a} + {b}", a + b)),),
}


class _NotApplicable(Exception):
    """The slip cannot happen at this operation (e.g. a dropped carry with a negative operand)."""


def _steps(node: Node, slip: tuple[int, str] | None = None) -> tuple[int, list[str]]:
    """Evaluate `node` left to right, writing one `a op b = v` step per operation; `slip` = (operation index in
    evaluation order, slip name) makes that one operation go wrong, and the later steps carry the wrong value on."""
    steps: list[str] = []

    def walk(n: Node) -> int:
        if isinstance(n, int):
            return n
        op, left, right = n
        a, b = walk(left), walk(right)
        value, shown = _apply(op, a, b), f"{a} {op} {b}"
        if slip is not None and slip[0] == len(steps):
            shown, value = dict(_SLIPS[op])[slip[1]](a, b)
            if value is None:
                raise _NotApplicable
        steps.append(f"{shown} = {value}")
        return value

    return walk(node), steps


def _operations(node: Node) -> list[str]:
    """Operators of `node` in evaluation order."""
    if isinstance(node, int):
        return []
    return _operations(node[1]) + _operations(node[2]) + [node[0]]


def _solution_text(steps: list[str], answer: Any) -> str:
    """The model's house style (the default system prompt's example): the working, then `The answer is \\boxed{}`."""
    working = ", then ".join(steps)
    return f"{working}. The answer is \\boxed{{{answer}}}." if working else f"The answer is \\boxed{{{answer}}}."


@dataclass(frozen=True)
class Mistake:
    """A wrong first attempt derived from the gold answer."""

    kind: str  # carry, borrow, wrong_op, swap, order, skipped_step, off_by_one, digit_swap, times_ten
    answer: str  # the wrong boxed answer
    text: str  # the attempt's text, ending in \boxed{answer}


def _number(gold: str) -> Decimal | None:
    try:
        value = Decimal(gold.strip().replace(",", ""))
    except (InvalidOperation, AttributeError):
        return None
    return value if value.is_finite() else None


def _fmt(value: Decimal | int) -> str:
    if isinstance(value, int):
        return str(value)
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def expression_matches(node: Node | None, gold: str) -> bool:
    number = _number(gold)
    return node is not None and number is not None and Decimal(_steps(node)[0]) == number


def correct_solution(gold: str, expression: Any = None) -> str:
    """A short correct solution: the expression's steps when it evaluates to `gold`, else just the boxed gold."""
    node = parse_expression(expression)
    if expression_matches(node, gold):
        value, steps = _steps(node)
        return _solution_text(steps, value)
    number = _number(gold)
    return _solution_text([], _fmt(number) if number is not None else gold.strip())


def gold_mistakes(gold: str, expression: Any = None) -> list[Mistake]:
    """Every distinct plausible wrong answer for `gold` (not yet checked by the verifier), in a fixed order.

    With an expression that evaluates to `gold`: a slip at one operation (`carry` dropped in an addition, `borrow`
    dropped in a subtraction, `wrong_op`, `swap`ped subtraction), `order` ((a + b) * c computed as a + b * c),
    `skipped_step` (a two-step problem answered with its first step), `off_by_one` in the last step. Without one:
    `off_by_one`, `digit_swap` (last two digits exchanged) and `times_ten` on the gold number. Answers equal to the
    gold, negative answers to a non-negative gold (except a swapped subtraction) and repeats are left out.
    """
    number = _number(gold)
    if number is None:
        return []
    out: dict[str, Mistake] = {}

    def add(kind: str, value: Decimal | int, steps: list[str] | None) -> None:
        value = Decimal(value)
        if value == number or (value < 0 <= number and kind != "swap"):
            return
        answer = _fmt(value)
        if answer not in out:
            out[answer] = Mistake(kind, answer, _solution_text(steps or [], answer))

    node = parse_expression(expression)
    if expression_matches(node, gold):
        for index, op in enumerate(_operations(node)):
            for name, _ in _SLIPS[op]:
                try:
                    add(name, *_steps(node, (index, name)))
                except _NotApplicable:
                    continue
        if not isinstance(node, int):
            op, left, right = node
            if op == "*" and isinstance(left, tuple) and left[0] == "+":  # (a + b) * c read as a + b * c
                add("order", *_steps(("+", left[1], ("*", left[2], right))))
            for child in (left, right):
                if isinstance(child, tuple):  # stopped after the first step
                    add("skipped_step", *_steps(child))
                    break
        value, steps = _steps(node)
        for delta in (1, -1):
            add("off_by_one", value + delta, steps[:-1] + [f"{steps[-1].rsplit(' = ', 1)[0]} = {value + delta}"])
        return list(out.values())
    for delta in (1, -1):
        add("off_by_one", number + delta, None)
    digits = _fmt(number)
    if number == number.to_integral_value() and len(digits.lstrip("-")) >= 2:
        swapped = digits[:-2] + digits[-1] + digits[-2]
        add("digit_swap", Decimal(swapped), None)
    add("times_ten", number * 10, None)
    return list(out.values())


def _kind_balanced(mistakes: list[Mistake], rng: random.Random) -> list[Mistake]:
    """`mistakes` in a random order that gives every kind an equal chance (off by one has two values, the others one)
    and goes through distinct kinds before a second mistake of the same kind."""
    by_kind: dict[str, list[Mistake]] = {}
    for mistake in mistakes:
        by_kind.setdefault(mistake.kind, []).append(mistake)
    kinds = list(by_kind)
    rng.shuffle(kinds)
    for kind in kinds:
        rng.shuffle(by_kind[kind])
    longest = max((len(v) for v in by_kind.values()), default=0)
    return [by_kind[k][i] for i in range(longest) for k in kinds if i < len(by_kind[k])]


# --- rows ------------------------------------------------------------------------------------------------------------


def feedback_provider(feedback: Any, template: str | None = None):
    from ..feedback import FeedbackProvider, FeedbackTemplateError, get_feedback_provider

    if isinstance(feedback, FeedbackProvider):
        return feedback
    try:
        return get_feedback_provider(feedback, template)
    except FeedbackTemplateError as exc:
        raise DataError(f"`--feedback_template`: {exc}") from exc
    except ValueError as exc:
        raise DataError(str(exc)) from exc  # the registry's message names the field (`feedback`) and the choices


def revision_row(
    problem: dict[str, Any],
    first: str,
    first_correct: bool,
    revision: str,
    provider,
    kind: str,
    mistake: str | None,
) -> dict[str, Any] | None:
    """One row for `problem` (a dataset row with `prompt` messages and `solution`), or None when the feedback ends the
    episode after a wrong first attempt. A right first attempt after which the feedback ends the episode (`unary`)
    gives a single-turn row: the problem, then the right answer."""
    from ..feedback import AttemptOutcome
    from ..rewards import extract_boxed

    answer = extract_boxed(first)
    message = provider(AttemptOutcome(0, first, answer, first_correct, False, dict(problem)))
    prompt = problem["prompt"]
    prompt = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
    if message is None:
        if not first_correct:
            return None
        completion = first
    else:
        prompt += [{"role": "assistant", "content": first}, {"role": "user", "content": message}]
        completion = revision
    return {
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": completion}],
        "solution": str(problem["solution"]),
        "kind": kind,
        "mistake": mistake,
        "first_answer": answer or "",
    }


def build_revision_rows(
    problems: Iterable[dict[str, Any]],
    feedback: Any = "score_instruction",
    source: str = "gold",
    traces: Sequence[dict[str, Any]] | None = None,
    keep_right_fraction: float = 0.5,
    max_rows_per_problem: int = 1,
    seed: int = 0,
    feedback_template: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, counts): revision rows for `problems` (rows with chat-message `prompt`, `solution`, optionally
    `expression`); see the module docstring for what a row means.

    `source`: `gold` (mistakes derived from the gold answer), `self` (wrong answers among `traces`: rows with `prompt`,
    `completion`, `solution`, optionally `truncated`, as `selfcorrect.trace_sampling.sample_traces` writes; matched to
    problems by prompt) or `both`. Each problem gives at most `max_rows_per_problem` wrong-first rows per source
    (distinct wrong answers, drawn with `seed`). Then `round(keep_right_fraction * wrong-first rows)` `kept_right` rows
    are drawn with `seed`: one right answer from each problem that has one (in a random order), then a second, ...; a
    problem's right answers are its distinct own correct samples, then the gold-derived solution, at most
    `max_rows_per_problem` per source. The same arguments give the same rows. Problems whose gold answer does not parse
    are skipped.

    In order: check the arguments; per problem, the self-sampled wrong-first rows (`_self_wrong_rows`), then the
    gold-derived ones (`_gold_wrong_rows`), and its right answers; then the kept-right draw over all problems
    (`_kept_right_draw`); last, the rows in problem order and their counts.
    """
    from ..rewards import check_gold_answers

    use_gold, use_self = _check_arguments(source, traces, keep_right_fraction, max_rows_per_problem)
    provider = feedback_provider(feedback, feedback_template)
    problems = [dict(p) for p in problems]
    _check_columns(problems)
    counts = _new_counts(problems, source, provider)
    skipped: Counter[str] = Counter()
    mistake_kinds: Counter[str] = Counter()
    bad_gold = set(check_gold_answers([p["solution"] for p in problems]))
    counts["unparseable_golds"] = len(bad_gold)
    skipped["unparseable_gold"] = len(bad_gold)
    by_prompt = _traces_by_prompt(traces, problems, counts) if use_self else {}

    wrong_rows: dict[int, list[dict[str, Any]]] = {}
    right_texts: dict[int, list[str]] = {}  # problem index -> right first attempts: own samples, then gold-derived
    for index, problem in enumerate(problems):
        if index in bad_gold:
            continue
        gold = str(problem["solution"]).strip()
        rng = random.Random(f"selfcorrect-revision-{seed}-{prompt_key(problem['prompt'])}")
        expression = problem.get(EXPRESSION_COLUMN)
        counts["problems_with_expression"] += expression_matches(parse_expression(expression), gold)
        gold_solution = correct_solution(gold, expression)
        gold_ok = _judge(gold, gold_solution) is True
        rows: list[dict[str, Any]] = []
        own_correct: list[str] = []
        if use_self:
            self_rows, own_correct = _self_wrong_rows(
                problem,
                by_prompt.get(prompt_key(problem["prompt"]), []),
                gold_solution if gold_ok else None,
                provider,
                max_rows_per_problem,
                rng,
                counts["traces"],
                skipped,
            )
            rows += self_rows
        if use_gold:
            rows += _gold_wrong_rows(
                problem,
                expression,
                gold_solution,
                gold_ok,
                provider,
                max_rows_per_problem,
                rng,
                skipped,
                mistake_kinds,
            )
        rng.shuffle(own_correct)
        right = own_correct + ([gold_solution] if use_gold and gold_ok else [])
        if right:
            right_texts[index] = right[: max_rows_per_problem * (use_gold + use_self)]
        if rows:
            wrong_rows[index] = rows

    requested = int(keep_right_fraction * sum(len(r) for r in wrong_rows.values()) + 0.5)
    counts["kept_right_requested"] = requested
    keep, short = _kept_right_draw(right_texts, requested, seed)
    if short:
        skipped["kept_right_short"] = short
    out: list[dict[str, Any]] = []
    for index, problem in enumerate(problems):
        rows = list(wrong_rows.get(index, []))
        for text in keep.get(index, []):
            row = revision_row(problem, text, True, text, provider, "kept_right", "")
            problem_turns = 1 if isinstance(problem["prompt"], str) else len(problem["prompt"])
            counts["single_turn_kept_right"] += len(row["prompt"]) == problem_turns  # the feedback ended the episode
            rows.append(row)
        counts["problems_with_rows"] += bool(rows)
        out += rows
    _finish_counts(counts, out, mistake_kinds, skipped, use_self)
    return out, counts


def _check_arguments(
    source: str, traces: Sequence[dict[str, Any]] | None, keep_right_fraction: float, max_rows_per_problem: int
) -> tuple[bool, bool]:
    """(use gold-derived mistakes, use sampled answers), after checking the arguments."""
    if source not in SOURCES:
        raise DataError(f"`--source` must be one of {', '.join(SOURCES)}; got {source!r}.")
    if max_rows_per_problem < 1:
        raise DataError(f"`--max_rows_per_problem` must be at least 1; got {max_rows_per_problem}.")
    if not keep_right_fraction >= 0:
        raise DataError(f"`--keep_right_fraction` must be >= 0; got {keep_right_fraction}.")
    use_gold, use_self = source in ("gold", "both"), source in ("self", "both")
    if use_self and traces is None:
        raise DataError(f"`--source {source}` needs sampled traces (the recipe's model samples them).")
    return use_gold, use_self


def _check_columns(problems: list[dict[str, Any]]) -> None:
    for column in ("prompt", "solution"):
        if problems and column not in problems[0]:
            raise DataError(
                f"revision data needs problems with the columns prompt and solution; missing {column} (columns: "
                f"{', '.join(problems[0])}). Map the gold answer with `solution_column`."
            )


def _new_counts(problems: list[dict[str, Any]], source: str, provider) -> dict[str, Any]:
    return {
        "problems": len(problems),
        "source": source,
        "feedback": getattr(provider, "name", type(provider).__name__),
        "rows": 0,
        "rows_by_kind": dict.fromkeys(KINDS, 0),
        "wrong_answer_kinds": {},
        "single_turn_kept_right": 0,
        "kept_right_requested": 0,
        "problems_with_rows": 0,
        "problems_with_expression": 0,
        "unparseable_golds": 0,
        "skipped": {},
    }


def _judge(gold: str, text: str) -> bool | None:
    """The verifier's verdict on `text`'s boxed answer (None: it could not judge)."""
    from ..rewards import extract_boxed, verify_answer

    return verify_answer(gold, extract_boxed(text) or "")


def _traces_by_prompt(
    traces: Sequence[dict[str, Any]], problems: list[dict[str, Any]], counts: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """The traces grouped by problem prompt; starts `counts["traces"]` (traces, and those matching no problem)."""
    trace_counts = Counter(dict.fromkeys(TRACE_COUNTS, 0))
    by_prompt: dict[str, list[dict[str, Any]]] = {}
    for trace in traces:
        by_prompt.setdefault(prompt_key(trace["prompt"]), []).append(trace)
    known = {prompt_key(p["prompt"]) for p in problems}
    trace_counts["traces"] = len(traces)
    trace_counts["unmatched_traces"] = sum(len(v) for k, v in by_prompt.items() if k not in known)
    counts["traces"] = trace_counts
    return by_prompt


def _self_wrong_rows(
    problem: dict[str, Any],
    traces: list[dict[str, Any]],
    gold_solution: str | None,
    provider,
    max_rows: int,
    rng: random.Random,
    trace_counts: Counter[str],
    skipped: Counter[str],
) -> tuple[list[dict[str, Any]], list[str]]:
    """(`self_wrong` rows, the problem's distinct own correct answers) from its sampled `traces`: up to `max_rows` of
    its distinct wrong answers (drawn with `rng`), each revised by one of its own correct answers, else by
    `gold_solution` (None: the gold-derived solution is not judged right)."""
    from ..rewards import completion_text, extract_boxed

    gold = str(problem["solution"]).strip()
    own_correct: list[str] = []
    own_wrong: list[str] = []
    seen: set[str] = set()
    for trace in traces:
        text = completion_text(trace["completion"])
        if not text.strip():
            trace_counts["empty_traces"] += 1
            continue
        if text in seen:
            trace_counts["duplicate_traces"] += 1
            continue
        seen.add(text)
        if trace.get("truncated"):
            trace_counts["truncated_traces"] += 1  # cut off by the cap: neither a first attempt nor a revision
            continue
        verdict = _judge(gold, text)
        if verdict is None:
            trace_counts["unjudged_traces"] += 1
            continue
        (own_correct if verdict else own_wrong).append(text)
        trace_counts["correct_traces" if verdict else "wrong_traces"] += 1
    trace_counts["wrong_traces_without_answer"] += sum(extract_boxed(t) is None for t in own_wrong)
    rng.shuffle(own_wrong)
    rows: list[dict[str, Any]] = []
    for n, text in enumerate(own_wrong[:max_rows]):
        if own_correct:
            revision, origin = own_correct[n % len(own_correct)], "own"
        elif gold_solution is not None:
            revision, origin = gold_solution, "gold"
        else:
            trace_counts["wrong_traces_without_revision"] += 1
            continue
        row = revision_row(problem, text, False, revision, provider, "self_wrong", "sampled")
        if row is None:
            skipped["feedback_ended_episode"] += 1
            continue
        trace_counts[f"revisions_{origin}"] += 1
        rows.append(row)
    if not own_wrong:
        skipped["self_no_wrong_sample"] += 1
    return rows, own_correct


def _gold_wrong_rows(
    problem: dict[str, Any],
    expression: Any,
    gold_solution: str,
    gold_ok: bool,
    provider,
    max_rows: int,
    rng: random.Random,
    skipped: Counter[str],
    mistake_kinds: Counter[str],
) -> list[dict[str, Any]]:
    """Up to `max_rows` `gold_wrong` rows: mistakes derived from the gold answer (kinds balanced, drawn with `rng`),
    each judged wrong, revised by `gold_solution` (none unless `gold_ok`: the solution is judged right)."""
    gold = str(problem["solution"]).strip()
    rows: list[dict[str, Any]] = []
    for mistake in _kind_balanced(gold_mistakes(gold, expression) if gold_ok else [], rng):
        if len(rows) == max_rows:
            break
        if _judge(gold, mistake.text) is not False:  # never pass off a right (or unjudged) answer as wrong
            skipped["mistakes_not_judged_wrong"] += 1
            continue
        row = revision_row(problem, mistake.text, False, gold_solution, provider, "gold_wrong", mistake.kind)
        if row is None:
            skipped["feedback_ended_episode"] += 1
            continue
        mistake_kinds[mistake.kind] += 1
        rows.append(row)
    if _number(gold) is None:
        skipped["gold_not_a_number"] += 1  # no mistake can be derived from e.g. \frac{1}{2} or x + 1
    elif not gold_ok:
        skipped["gold_solution_not_judged_right"] += 1
    elif not rows:
        skipped["gold_no_wrong_answer"] += 1
    return rows


def _kept_right_draw(right_texts: dict[int, list[str]], requested: int, seed: int) -> tuple[dict[int, list[str]], int]:
    """(problem index -> its kept right answers, how many of `requested` there were not enough answers for): one right
    answer from each problem in a random order (drawn with `seed`), then a second one from each, ..."""
    order = sorted(right_texts)
    random.Random(f"selfcorrect-revision-keep-{seed}").shuffle(order)
    longest = max((len(texts) for texts in right_texts.values()), default=0)
    picks = [(i, right_texts[i][r]) for r in range(longest) for i in order if r < len(right_texts[i])]
    keep: dict[int, list[str]] = {}
    for index, text in picks[:requested]:
        keep.setdefault(index, []).append(text)
    return keep, max(requested - len(picks), 0)


def _finish_counts(
    counts: dict[str, Any],
    rows: list[dict[str, Any]],
    mistake_kinds: Counter[str],
    skipped: Counter[str],
    use_self: bool,
) -> None:
    """The counts of the final `rows`, by kind and by wrong answer; the skipped reasons that occurred."""
    for row in rows:
        counts["rows_by_kind"][row["kind"]] += 1
    counts["rows"] = len(rows)
    counts["wrong_answer_kinds"] = dict(sorted(mistake_kinds.items()))
    if use_self:
        counts["wrong_answer_kinds"]["sampled"] = counts["rows_by_kind"]["self_wrong"]
        counts["traces"] = {k: counts["traces"][k] for k in TRACE_COUNTS}
    counts["skipped"] = {k: v for k, v in sorted(skipped.items()) if v}


def no_rows_reason(counts: dict[str, Any]) -> str:
    """Why `build_revision_rows` gave no row, from its counts."""
    if not counts["problems"]:
        return "there are no problems"
    reasons = ", ".join(f"{k}: {v}" for k, v in counts["skipped"].items()) or "none recorded"
    return f"no problem of {counts['problems']} gave a wrong first attempt (problems skipped, by reason: {reasons})"
