"""Turning a question into a chat prompt, and a gold answer column into the final answer string."""

from __future__ import annotations

import re
from typing import Any

# SmolLM2-135M-Instruct never writes \boxed{} when merely asked to; one worked example in the system prompt teaches it,
# and asking for one or two sentences cut attempts truncated at 64 tokens from 47 % to 6 % (greedy, levels 1-5).
DEFAULT_SYSTEM_PROMPT = (
    "You are a careful math tutor. Solve the problem in one or two short sentences, then write the final answer as a "
    "number inside \\boxed{}.\n"
    "Example:\n"
    "Problem: Tom has 3 apples. He buys 4 more. How many apples does he have now?\n"
    "Solution: Tom has 3 + 4 = 7 apples. The answer is \\boxed{7}."
)
DEFAULT_ANSWER_FORMAT = "Put your final answer inside \\boxed{}."


def build_prompt(question: Any, system_prompt: str | None, answer_format: str | None) -> list[dict[str, str]]:
    """A conversational prompt: optional system message, then the user question with the answer-format line.

    A question that is already a list of chat messages is kept, with the system prompt added if it has none.
    """
    if isinstance(question, list):
        messages = [dict(m) for m in question]
        if system_prompt and (not messages or messages[0].get("role") != "system"):
            messages.insert(0, {"role": "system", "content": system_prompt})
        return messages
    text = str(question).strip()
    if answer_format:
        text = f"{text}\n\n{answer_format}"
    messages = [{"role": "user", "content": text}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


SOLUTION_FORMATS = ("auto", "final", "gsm8k", "boxed", "last_number")
_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_SENTENCE_BREAK = re.compile(r"[.!?]\s+[A-Z]")  # a sentence end, then a capital ("n! + 1" is math)
WORKED_SOLUTION_WORDS = 25  # a value with more words than this is a worked solution, not a final answer


class SolutionFormatError(ValueError):
    """A gold column value does not hold what `solution_format` says (the loader names the column and the row)."""


def looks_like_worked_solution(text: str) -> bool:
    """A worked solution rather than a final answer: more than one line, more than one sentence, or more than
    `WORKED_SOLUTION_WORDS` words. ("the sum of the first n cubes" is a final answer, if a text one.)"""
    text = text.strip()
    return "\n" in text or bool(_SENTENCE_BREAK.search(text)) or len(text.split()) > WORKED_SOLUTION_WORDS


def read_gold_answer(value: Any, solution_format: str = "auto") -> tuple[str, str]:
    """(the final answer, where it came from: "gsm8k", "boxed", "final" or "last_number") of a gold column value.

    - `final`: the value is the answer (stripped);
    - `gsm8k`: what follows the last `####` (commas dropped: "1,072" -> "1072");
    - `boxed`: the content of the last `\\boxed{}`;
    - `last_number`: the last number of the text (commas dropped);
    - `auto`: `####` if there is one, else the last `\\boxed{}`, else the value itself when it is a final answer;
      a worked solution with neither (`looks_like_worked_solution`) is refused, since its last number is often not
      the answer: ask for `last_number` to take it anyway.

    A missing value (None) gives "", which no gold parses: the loader counts and drops it. Raises
    `SolutionFormatError` when the value does not hold what the format says.
    """
    from ..rewards import extract_boxed

    if solution_format not in SOLUTION_FORMATS:
        raise ValueError(f"`solution_format` must be one of {', '.join(SOLUTION_FORMATS)}; got {solution_format!r}.")
    if value is None:
        return "", solution_format
    text = str(value).strip()
    if solution_format == "final":
        return text, "final"
    if solution_format in ("auto", "gsm8k") and "####" in text:
        return text.rsplit("####", 1)[1].strip().replace(",", ""), "gsm8k"
    if solution_format == "gsm8k":
        raise SolutionFormatError("has no `####` before its final answer")
    if solution_format in ("auto", "boxed"):
        boxed = extract_boxed(text)
        if boxed is not None and boxed.strip():
            return boxed.strip(), "boxed"
        if solution_format == "boxed":
            raise SolutionFormatError("has no non-empty, closed `\\boxed{}` answer")
    if solution_format == "last_number":
        numbers = _LAST_NUMBER.findall(text)
        if not numbers:
            raise SolutionFormatError("has no number")
        return numbers[-1].replace(",", ""), "last_number"
    if looks_like_worked_solution(text):
        raise SolutionFormatError("is a worked solution with neither `####` nor `\\boxed{}`")
    return text, "final"


def extract_gold_answer(value: Any, solution_format: str = "auto") -> str:
    """The final answer of a gold column value (see `read_gold_answer`): GSM8K's `... #### 72`, MATH's
    `... \\boxed{x}`, or the value itself."""
    return read_gold_answer(value, solution_format)[0]
