"""What the environment says between two attempts.

A feedback provider is called after each attempt with what happened (`AttemptOutcome`) and returns the text of the
next user turn, or None to end the episode. Providers:

| name                | paper               | says                                                                 |
|---------------------|---------------------|----------------------------------------------------------------------|
| `score_instruction` | SCoRe (Kumar 2024)  | a fixed instruction to find and fix errors, whatever the outcome     |
| `unary`             | UFO ("try again")   | a unary message after a wrong answer; stops at the first correct one |
| `indicative`        | Critique-GRPO       | "The generated solution is correct/incorrect."                       |
| `indicative_gt`     | Critique-GRPO       | the same, plus the ground truth                                      |

Templates may use the placeholders `{answer}` (the attempt's boxed answer), `{solution}` (gold answer) and
`{attempt}` (1-based number of the attempt just made); other `{name}` placeholders are an error at construction, and
any other brace (`\\boxed{}`) is literal text. `FEEDBACK` (a `selfcorrect.registry.Registry`) maps the names to their
factories; `FEEDBACK.register("mine", MyFeedback)` adds one, and a recipe may name it as `feedback: package.module:mine`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from .registry import Registry

# The paper's turn-2 instruction for MATH (Kumar et al. 2024, appendix), followed by our answer-format line.
SCORE_INSTRUCTION = (
    "There might be an error in the solution above because of lack of understanding of the question. Please correct "
    "the error, if any, and rewrite the solution. Put your final answer inside \\boxed{}."
)
UNARY_MESSAGE = "Incorrect. Please think again."
ALLOWED_PLACEHOLDERS = frozenset({"answer", "solution", "attempt"})


class FeedbackTemplateError(ValueError):
    """A feedback template uses an unknown placeholder or lacks a required one."""


PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")


def check_template(
    template: str,
    required: frozenset[str] = frozenset(),
    name: str = "feedback_template",
    allowed: frozenset[str] = ALLOWED_PLACEHOLDERS,
) -> str:
    """Check a template's `{placeholders}` against `allowed` and `required`; other braces (e.g. `\\boxed{}`) are
    literal text. Feedback, critique and refinement templates share this convention."""
    if not isinstance(template, str) or not template.strip():
        raise FeedbackTemplateError(f"`{name}` must be a non-empty string; got {template!r}.")
    fields = set(PLACEHOLDER.findall(template))
    unknown = fields - allowed
    if unknown:
        raise FeedbackTemplateError(
            f"`{name}` uses unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(allowed)}."
        )
    missing = required - fields
    if missing:
        raise FeedbackTemplateError(f"`{name}` must contain the placeholder(s) {sorted(missing)}: {template!r}")
    return template


def fill_template(template: str, **values: object) -> str:
    """Replace `{answer}`, `{solution}`, `{attempt}`; leave every other brace as written."""
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


@dataclass
class AttemptOutcome:
    """What one attempt produced, as the feedback provider sees it."""

    attempt: int  # 0-based index of the attempt just made
    text: str  # the attempt's decoded text
    answer: str | None  # its last boxed answer, if any
    correct: bool | None  # judged against the gold answer (None: the gold could not be parsed)
    truncated: bool  # cut off by the per-attempt token cap
    row: dict[str, Any]  # the dataset row (gold answer in row["solution"])


class FeedbackProvider:
    """Base class: override `__call__` to write your own feedback (return None to stop the episode)."""

    name = "custom"

    def __call__(self, outcome: AttemptOutcome) -> str | None:
        raise NotImplementedError

    def batch(self, outcomes: list[AttemptOutcome]) -> list[str | None]:
        """The feedback of one round of attempts (one call per round; a critic overrides it to ask once)."""
        return [self(outcome) for outcome in outcomes]

    @staticmethod
    def render(template: str, outcome: AttemptOutcome) -> str:
        return fill_template(
            template,
            answer=outcome.answer or "",
            solution=outcome.row.get("solution", ""),
            attempt=outcome.attempt + 1,
        )


class InstructionFeedback(FeedbackProvider):
    """SCoRe: the same instruction after every attempt; it carries no correctness signal."""

    name = "score_instruction"

    def __init__(self, template: str | None = None):
        self.template = check_template(SCORE_INSTRUCTION if template is None else template)

    def __call__(self, outcome: AttemptOutcome) -> str | None:
        return self.render(self.template, outcome)


class UnaryFeedback(FeedbackProvider):
    """UFO: after a wrong answer only; a correct answer ends the episode, so no confirmation enters the context."""

    name = "unary"

    def __init__(self, template: str | None = None):
        self.template = check_template(UNARY_MESSAGE if template is None else template)

    def __call__(self, outcome: AttemptOutcome) -> str | None:
        return None if outcome.correct else self.render(self.template, outcome)


class IndicativeFeedback(FeedbackProvider):
    """Critique-GRPO's indicative critique: correct/incorrect, optionally with the ground truth, then `template` (the
    request to revise; default `REVISE`), as a critique is followed by the template under `feedback: critic`."""

    name = "indicative"
    CORRECT = "The generated solution is correct."
    INCORRECT = "The generated solution is incorrect."
    GROUND_TRUTH = " The ground truth is {solution}."
    REVISE = " Please review your solution and write the final answer inside \\boxed{}."

    def __init__(self, template: str | None = None, with_ground_truth: bool = False):
        self.revise = self.REVISE if template is None else " " + check_template(template)
        self.with_ground_truth = with_ground_truth
        self.name = "indicative_gt" if with_ground_truth else "indicative"

    def __call__(self, outcome: AttemptOutcome) -> str | None:
        text = self.CORRECT if outcome.correct else self.INCORRECT
        if self.with_ground_truth:
            text += self.GROUND_TRUTH
        return self.render(text + self.revise, outcome)


# `feedback: name` -> a factory taking the recipe's `feedback_template` (None: the provider's default text).
FEEDBACK: Registry[Callable[[str | None], FeedbackProvider]] = Registry("feedback provider", "feedback")
FEEDBACK.register("score_instruction", InstructionFeedback)
FEEDBACK.register("unary", UnaryFeedback)
FEEDBACK.register("indicative", partial(IndicativeFeedback, with_ground_truth=False))
FEEDBACK.register("indicative_gt", partial(IndicativeFeedback, with_ground_truth=True))


def get_feedback_provider(name: str, template: str | None = None) -> FeedbackProvider:
    """A provider by registry name (or `package.module:name`), with an optional template overriding its default."""
    return FEEDBACK.lookup(name)(template)
