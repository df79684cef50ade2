"""Self-verification (RISE, Liu et al. 2025): the verification prompt and ratings (shared by training and evaluation)
and the test-time verification-weighted vote, and the check of the training-time pass's settings. The pass itself is
trainer code, `selfcorrect.trainers.self_verification.SelfVerification`, composed into a multi-attempt trainer whose
recipe sets `verification_solutions`.

    python -m selfcorrect.train --config recipes/demo/rise.yaml
    selfcorrect eval --config recipes/demo/rise.yaml --eval_verify_samples 8 --eval_verify_generations 2

The prompt states the outcome verifier's rubric (1 / -0.5 / -1) and asks for the rating in `\\boxed{}`; a
verification earns 1 if its boxed rating equals the solution's score, -0.5 if it differs, -1 without a rating.

Evaluation (`evaluate_self_verification`): k sampled answers per problem, m verifications of each by the model itself;
pass@1, plain majority vote and verification-weighted majority vote (each answer's vote weighted by the share of its
verifications that rate it correct), plus verification accuracy.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

import torch

from .algos import (
    OUTCOME_SCORES,
    majority_vote,
    outcome_score,
    verification_accuracy,
    verification_rewards,
    weighted_vote,
)
from .feedback import check_template, fill_template
from .rewards import completion_text, extract_boxed, question_text, verify_answer

logger = logging.getLogger(__name__)

# The rubric is the outcome verifier's, stated exactly; {question} and {response} are filled in, other braces are
# literal (the convention of every template in selfcorrect, see `selfcorrect.feedback.check_template`).
DEFAULT_VERIFICATION_TEMPLATE = (
    "Below are a math question and a response to it. Rate the response with exactly one of three scores:\n"
    "- 1 if the response gives a final answer inside \\boxed{} and that answer is correct;\n"
    "- -0.5 if the response gives a final answer inside \\boxed{} but that answer is wrong;\n"
    "- -1 if the response gives no final answer inside \\boxed{}.\n\n"
    "### Question\n{question}\n\n"
    "### Response\n{response}\n\n"
    "Check the response step by step, then write your rating (1, -0.5 or -1) inside \\boxed{}."
)
TEMPLATE_FIELDS = ("question", "response")


def verification_template(template: str | None, field_name: str = "verification_template") -> str:
    """The template to use (None: the default); raises ValueError naming `field_name` if a slot is missing or unknown,
    or if the template never asks for a boxed rating."""
    template = DEFAULT_VERIFICATION_TEMPLATE if template is None else template
    slots = frozenset(TEMPLATE_FIELDS)
    check_template(template, slots, field_name, allowed=slots)
    if "\\boxed" not in template:
        raise ValueError(f"`{field_name}` must ask for the rating inside \\boxed{{}} (RISE's rubric).")
    return template


def verification_messages(question: str, response: str, template: str) -> list[dict[str, str]]:
    """The verification prompt as a one-turn conversation."""
    return [{"role": "user", "content": fill_template(template, question=question, response=response)}]


_FRACTION = re.compile(r"^([+-]?)\\[dt]?frac\{([+-]?\d+)\}\{(\d+)\}$")


def parse_rating(text: str) -> float:
    """The rating in a verification's last `\\boxed{}` as a number ("1", "1.0", "-0.5", "-\\frac{1}{2}" ...);
    NaN if there is no boxed rating (or the box is empty), +inf if the box holds something that is not a number."""
    boxed = extract_boxed(text)
    if boxed is None:
        return math.nan
    value = "".join(boxed.split()).replace("\u2212", "-").strip("$")
    if not value:
        return math.nan
    fraction = _FRACTION.match(value)
    if fraction:
        sign = -1.0 if fraction.group(1) == "-" else 1.0
        return sign * int(fraction.group(2)) / int(fraction.group(3)) if int(fraction.group(3)) else math.inf
    try:
        number = float(value)
    except ValueError:
        return math.inf
    return number if math.isfinite(number) else math.inf


def verification_reward(completions: list, verify_target: list[float], **kwargs: Any) -> list[float]:
    """RISE's verification reward (TRL signature): 1 if the boxed rating equals the verified solution's outcome score
    (`verify_target`, compared as numbers), -0.5 if the rating differs, -1 if there is no boxed rating."""
    ratings = torch.tensor([parse_rating(completion_text(c)) for c in completions], dtype=torch.float32)
    return verification_rewards(ratings, torch.tensor(verify_target, dtype=torch.float32)).tolist()


# --- the training-time pass's settings ---------------------------------------------------------------------------------


def check_verification_fields(args) -> None:
    """Validate the `verification_*` fields of a `MultiAttemptConfig` (after GRPOConfig computed its batch sizes); the
    config calls it only when `verification_solutions` is set, so a run without verification does not import this."""
    b_v, n = args.verification_solutions, args.verification_generations
    if b_v < 0:
        raise ValueError(f"`verification_solutions` (B_v) must be >= 0 (0: no verification); got {b_v}.")
    if b_v == 0:
        return
    verification_template(args.verification_template)
    if n < 2:
        raise ValueError(
            f"`verification_generations` (n) must be at least 2: the n verifications of one solution form its group, "
            f"and a group of one has advantage 0, so nothing would be learned; got {n}."
        )
    if args.verification_max_length < 1:
        raise ValueError(f"`verification_max_length` must be positive; got {args.verification_max_length}.")
    if args.max_completion_length is not None and args.verification_max_length > args.max_completion_length:
        raise ValueError(
            f"`verification_max_length` ({args.verification_max_length}) must not exceed `max_completion_length` "
            f"({args.max_completion_length}), which TRL's loss normalization assumes is the longest completion."
        )
    if not 1 <= args.verification_attempt <= args.max_attempts:
        raise ValueError(
            f"`verification_attempt` must be in 1..max_attempts ({args.max_attempts}); got {args.verification_attempt}."
        )
    batch = args.generation_batch_size  # solutions per generation batch, all processes together
    if b_v > batch:
        raise ValueError(
            f"`verification_solutions` (B_v = {b_v}) is larger than the generation batch ({batch} solutions = "
            "per_device_train_batch_size x steps_per_generation x processes); lower it or raise the batch."
        )
    world = args.world_size
    if b_v % world:
        raise ValueError(
            f"`verification_solutions` ({b_v}) must be divisible by the number of processes ({world}): every rank "
            "verifies the same number of solutions, so that generation stays a collective call."
        )
    if (b_v // world * n) % args.steps_per_generation:
        raise ValueError(
            f"`verification_solutions` / processes x `verification_generations` ({b_v // world} x {n}) must be "
            f"divisible by `steps_per_generation` ({args.steps_per_generation}): the rows are split into that many "
            "optimizer steps."
        )


# --- evaluation: verification-weighted majority voting ------------------------------------------------------------------


def evaluate_self_verification(
    model,
    tokenizer,
    dataset,
    num_samples: int,
    num_verifications: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = 128,
    verify_max_new_tokens: int = 256,
    batch_size: int = 16,
    template: str | None = None,
    generate=None,
    chat_template_kwargs: dict | None = None,
) -> dict[str, float]:
    """k = `num_samples` sampled answers per problem, `num_verifications` self-verifications of each; returns pass@1,
    majority-vote accuracy, verification-weighted majority-vote accuracy and verification accuracy (`verify_*`).
    Prompts are rendered as training renders them (`chat_template_kwargs`, the model's EOS ids)."""
    from .episodes import ChatTurns, EpisodeSpec, HFGenerate, run_episodes
    from .feedback import get_feedback_provider

    if num_samples < 1 or num_verifications < 1:
        raise ValueError(
            f"`eval_verify_samples` and `eval_verify_generations` must be >= 1; got {num_samples}, {num_verifications}."
        )
    if temperature <= 0:
        raise ValueError(f"verification voting samples answers: the temperature must be > 0; got {temperature}.")
    template = verification_template(template, "eval_verify_template")
    rows = [dict(row) for row in dataset]
    generate = generate or HFGenerate(model, tokenizer, temperature=temperature, batch_size=batch_size)
    was_training = model is not None and model.training
    if model is not None:
        model.eval()
    turns = ChatTurns.for_model(tokenizer, model, chat_template_kwargs)
    render = turns.prompt_ids
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
    single = dict(feedback=get_feedback_provider("unary"), turns=turns)  # feedback never used with one attempt
    sample_rows = [row for row in rows for _ in range(num_samples)]
    samples = run_episodes(
        [render(row["prompt"]) for row in sample_rows],
        sample_rows,
        generate,
        decode=decode,
        spec=EpisodeSpec(max_attempts=1, max_attempt_tokens=max_new_tokens),
        **single,
    )
    answers = [ep.attempt_answers[0] for ep in samples]
    scores = [outcome_score(bool((a or "").strip()), ep.attempt_correct[0]) for a, ep in zip(answers, samples)]
    contexts = [
        render(verification_messages(question_text(row["prompt"]), ep.attempt_texts[0], template))
        for row, ep in zip(sample_rows, samples)
        for _ in range(num_verifications)
    ]
    verify_ids, _ = generate(contexts, verify_max_new_tokens, 0)
    if was_training:
        model.train()
    ratings = torch.tensor([parse_rating(decode(ids)) for ids in verify_ids], dtype=torch.float32)
    targets = torch.tensor(scores, dtype=torch.float32).repeat_interleave(num_verifications)
    weights = ratings.eq(1.0).float().view(-1, num_verifications).mean(dim=1).tolist()  # share rated correct

    majority_right = weighted_right = 0
    for p, row in enumerate(rows):
        block = slice(p * num_samples, (p + 1) * num_samples)
        for voted, counter in (
            (majority_vote(answers[block]), "m"),
            (weighted_vote(answers[block], weights[block]), "w"),
        ):
            right = voted is not None and bool(verify_answer(row["solution"], voted))
            majority_right += right and counter == "m"
            weighted_right += right and counter == "w"
    stats = verification_accuracy(ratings, targets)
    metrics = {
        "verify_pass@1": sum(bool(ep.attempt_correct[0]) for ep in samples) / len(samples),
        "verify_majority": majority_right / len(rows),
        "verify_weighted_majority": weighted_right / len(rows),
        "verify_acc": stats["acc"],
        "verify_valid_rating_frac": stats["valid_rating_frac"],
        "verify_solution_reward": sum(scores) / len(scores),
        "verify_samples": num_samples,
        "verify_generations": num_verifications,
    }
    for score in OUTCOME_SCORES:
        metrics[f"verify_acc_score_{score:g}"] = stats[f"acc_score_{score:g}"]
    return metrics


def evaluate_vote_with_script_args(model, tokenizer, dataset, script_args) -> dict[str, float]:
    """`evaluate_self_verification` with the recipe's `eval_verify_*` fields."""
    return evaluate_self_verification(
        model,
        tokenizer,
        dataset,
        num_samples=script_args.eval_verify_samples,
        num_verifications=script_args.eval_verify_generations,
        temperature=script_args.eval_sample_temperature,
        max_new_tokens=script_args.eval_max_new_tokens,
        verify_max_new_tokens=script_args.eval_verify_max_new_tokens,
        batch_size=script_args.eval_batch_size,
        template=script_args.eval_verify_template,
        chat_template_kwargs=script_args.eval_chat_template_kwargs,
    )


def markdown_lines(metrics: dict[str, float]) -> list[str]:
    """The voting table for the eval's Markdown output (empty without `verify_*` metrics)."""
    if "verify_weighted_majority" not in metrics:
        return []
    heads = ["pass@1", "majority", "verification-weighted majority", "verification acc", "valid ratings"]
    keys = ["verify_pass@1", "verify_majority", "verify_weighted_majority", "verify_acc", "verify_valid_rating_frac"]
    return [
        "",
        f"| k={metrics['verify_samples']}, m={metrics['verify_generations']} | " + " | ".join(heads) + " |",
        "|" + "---|" * (len(heads) + 1),
        "| | " + " | ".join(f"{100 * metrics[k]:.1f}" for k in keys) + " |",
    ]


def check_eval_verify_fields(script_args) -> None:
    """Validate the `eval_verify_*` fields of `ScriptArgs` before anything is loaded."""
    if script_args.eval_verify_samples < 0 or script_args.eval_verify_generations < 1:
        raise ValueError(
            "`eval_verify_samples` must be >= 0 and `eval_verify_generations` >= 1; got "
            f"{script_args.eval_verify_samples} and {script_args.eval_verify_generations}."
        )
    if script_args.eval_verify_max_new_tokens < 1:
        raise ValueError(
            f"`eval_verify_max_new_tokens` must be positive; got {script_args.eval_verify_max_new_tokens}."
        )
    if script_args.eval_sample_temperature <= 0:
        raise ValueError(
            f"verification voting samples answers: `eval_sample_temperature` must be > 0; got "
            f"{script_args.eval_sample_temperature}."
        )
    verification_template(script_args.eval_verify_template, "eval_verify_template")
