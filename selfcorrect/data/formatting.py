"""Turning a question into a chat prompt, and a gold answer column into the final answer string."""

from __future__ import annotations

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


def extract_gold_answer(value: Any) -> str:
    """The final answer from a gold column: GSM8K's `... #### 72`, MATH's `... \\boxed{x}`, or the value itself."""
    from ..rewards import extract_boxed

    if value is None:  # a missing gold answer: "" never parses, so the row is counted and dropped, never "None"
        return ""
    text = str(value).strip()
    if "####" in text:
        return text.rsplit("####", 1)[1].strip().replace(",", "")
    boxed = extract_boxed(text)
    if boxed:
        return boxed.strip()
    return text
