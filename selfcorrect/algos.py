"""Pure tensor functions for the methods' math: no trainer state, tested on hand-worked tensors.

Shapes: N episodes in the gathered batch (all ranks), grouped in consecutive blocks of G (TRL's `RepeatSampler` order);
K attempts per episode; B local rows; T completion tokens. Missing values (an attempt an episode never made, a reward a
function could not give) are NaN and never enter a group statistic.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def group_normalize(rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """GRPO's advantage `(r - mean_group(r)) / (std + eps)`, NaN-aware; NaN rewards get advantage 0.

    rewards: (N,) with N divisible by `group_size`. `scale` is TRL's `scale_rewards`: "group" (std within the group),
    "batch" (std over the batch) or "none" (Dr. GRPO: no division).
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}.")
    grouped = rewards.view(-1, group_size)  # (N/G, G)
    valid = ~torch.isnan(grouped)
    count = valid.sum(dim=1, keepdim=True)  # (N/G, 1)
    mean = torch.where(valid, grouped, 0.0).sum(dim=1, keepdim=True) / count.clamp(min=1)  # (N/G, 1)
    centered = grouped - mean  # (N/G, G)
    if scale == "group":
        var = torch.where(valid, centered**2, 0.0).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
        centered = centered / (var.sqrt() + eps)
    elif scale == "batch":
        flat = rewards[~torch.isnan(rewards)]
        std = flat.std() if flat.numel() > 1 else torch.zeros((), dtype=rewards.dtype)
        centered = centered / (std + eps)
    elif scale != "none":
        raise ValueError(f"`scale_rewards` must be 'group', 'batch' or 'none'; got {scale!r}.")
    return torch.nan_to_num(centered, nan=0.0).view(-1)  # (N,)


def per_attempt_advantages(attempt_rewards: torch.Tensor, group_size: int, scale: str = "group") -> torch.Tensor:
    """Normalize each attempt's rewards within its group, attempt by attempt: (N, K) -> (N, K)."""
    columns = [group_normalize(attempt_rewards[:, k], group_size, scale) for k in range(attempt_rewards.size(1))]
    return torch.stack(columns, dim=1)  # (N, K)


# --- SCoRe (Kumar et al. 2024) -----------------------------------------------------------------------------------------


def score_shaped_rewards(attempt_rewards: torch.Tensor, alpha: float) -> torch.Tensor:
    """Stage II reward shaping: attempt k > 1 gets `r_k + alpha * (r_k - r_{k-1})`; attempt 1 keeps `r_1`.

    attempt_rewards: (N, K). The bonus rewards flipping a wrong answer to a right one and penalizes the reverse.
    """
    shaped = attempt_rewards.clone()  # (N, K)
    shaped[:, 1:] = attempt_rewards[:, 1:] + alpha * (attempt_rewards[:, 1:] - attempt_rewards[:, :-1])
    return shaped


def score_advantages(
    attempt_rewards: torch.Tensor,
    group_size: int,
    stage: int,
    alpha: float = 10.0,
    scale: str = "group",
    stage1_credit_earlier_attempts: bool = True,
) -> torch.Tensor:
    """Per-attempt advantages for SCoRe: (N, K) rewards -> (N, K) advantages.

    Stage I: only the last attempt's reward drives the update. Its group-normalized advantage is given to the last
    attempt and, if `stage1_credit_earlier_attempts` (the REINFORCE gradient of E[r(y_K)] over the whole episode), to the
    earlier attempts too, which the strong KL keeps near the base model; otherwise earlier attempts get 0.
    Stage II: instantaneous per-attempt credit (gamma = 0) with the shaped rewards of `score_shaped_rewards`.
    """
    if stage == 1:
        last = group_normalize(attempt_rewards[:, -1], group_size, scale)  # (N,)
        advantages = torch.zeros_like(attempt_rewards)
        advantages[:, -1] = last
        if stage1_credit_earlier_attempts:
            advantages[:, :-1] = last.unsqueeze(1)
        return advantages
    if stage == 2:
        return per_attempt_advantages(score_shaped_rewards(attempt_rewards, alpha), group_size, scale)
    raise ValueError(f"SCoRe stage must be 1 or 2; got {stage}.")


def score_kl_coefficients(num_attempts: int, stage: int, beta_weak: float, beta_turn1: float) -> list[float]:
    """KL coefficient per attempt: stage I pins earlier attempts with the strong `beta_turn1`, stage II uses `beta_weak`."""
    if stage == 1:
        return [beta_turn1] * (num_attempts - 1) + [beta_weak]
    return [beta_weak] * num_attempts


# --- UFO: "A Simple 'Try Again' Can Elicit Multi-Turn LLM Reasoning" --------------------------------------------------


def ufo_returns(
    correct: Sequence[Sequence[bool | None]],
    answers: Sequence[Sequence[str | None]],
    max_turns: int,
    gamma: float = 0.5,
    repetition_penalty: float = 0.5,
    format_penalty: float = 0.1,
) -> torch.Tensor:
    """Trajectory return per episode: (N,).

    `gamma ** t` if the first correct answer is at turn t (0-based), else 0; minus `repetition_penalty * (1 - E / T)`
    with T answers given and E distinct among them; minus `format_penalty` per turn without a (boxed) answer.
    `max_turns` is only used to validate the input.
    """
    returns = []
    for episode_correct, episode_answers in zip(correct, answers, strict=True):
        if len(episode_correct) > max_turns:
            raise ValueError(f"an episode has {len(episode_correct)} turns, more than max_turns={max_turns}.")
        first = next((t for t, c in enumerate(episode_correct) if c), None)
        value = gamma**first if first is not None else 0.0
        given = [a.strip() for a in episode_answers if a]
        if given:
            value -= repetition_penalty * (1.0 - len(set(given)) / len(given))
        value -= format_penalty * sum(1 for a in episode_answers if not a)
        returns.append(value)
    return torch.tensor(returns, dtype=torch.float32)


# --- Credit over tokens ------------------------------------------------------------------------------------------------


def spread_over_attempts(
    values: torch.Tensor, attempt_spans: Sequence[Sequence[tuple[int, int]]], num_tokens: int
) -> torch.Tensor:
    """Give every token of attempt k the value `values[b, k]`; tokens outside attempts (feedback, padding) get 0.

    values: (B, K); attempt_spans: per row, [start, end) of each attempt in the completion; returns (B, num_tokens).
    """
    out = torch.zeros(values.size(0), num_tokens, dtype=values.dtype, device=values.device)  # (B, T)
    for row, spans in enumerate(attempt_spans):
        for k, (start, end) in enumerate(spans):
            out[row, start:end] = values[row, k]
    return out


def aggregate_token_loss(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str,
    *,
    max_completion_length: int | None = None,
    num_items_in_batch: torch.Tensor | float | None = None,
    num_processes: int = 1,
    gradient_accumulation_steps: int = 1,
    steps_per_generation: int = 1,
) -> torch.Tensor:
    """Reduce a (B, T) per-token term to a scalar exactly as TRL 1.16's `_compute_loss` reduces the policy loss.

    Used to add loss terms (e.g. SCoRe's per-attempt KL) that must be normalized like the rest of the loss.
    `gradient_accumulation_steps` is the current accumulation count (1 in eval).
    """
    masked = per_token * mask  # (B, T)
    if loss_type in ("grpo", "sapo"):
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / gradient_accumulation_steps
    if loss_type == "bnpo":
        return masked.sum() / mask.sum().clamp(min=1.0) / gradient_accumulation_steps
    if loss_type == "dr_grpo":
        return masked.sum() / (per_token.size(0) * max_completion_length) / gradient_accumulation_steps
    if loss_type in ("dapo", "cispo", "vespo"):
        normalizer = torch.as_tensor(num_items_in_batch).clamp(min=1.0) / num_processes
        normalizer = normalizer * gradient_accumulation_steps / steps_per_generation
        return masked.sum() / normalizer
    if loss_type == "luspo":
        return masked.sum(-1).mean() / gradient_accumulation_steps
    raise ValueError(f"unknown loss_type {loss_type!r}")


# --- Negative-sample reinforcement (Zhu et al. 2025; OREAL, Lyu et al. 2025) --------------------------------------------

ADVANTAGE_MODES = ("grpo", "psr", "nsr", "w_reinforce", "oreal")


def negative_sample_advantages(
    correct: torch.Tensor,
    group_size: int,
    mode: str,
    positive_weight: float = 0.1,
    negative_weight: float = 0.5,
) -> torch.Tensor:
    """Advantages from correctness alone (rewards mapped to +-1), per sample: (N,) or (N, K) -> same shape.

    `correct` holds 1.0 (correct), 0.0 (wrong) or NaN (no sample, e.g. an attempt never made: advantage 0).
    - "psr": +1 on correct samples, incorrect ones dropped (0).
    - "nsr": -1 on incorrect samples, correct ones dropped (0).
    - "w_reinforce": +`positive_weight` (lambda, paper 0.1) on correct, -1 on incorrect; no baseline, no std scaling.
    - "oreal": +1 on correct samples (behaviour cloning), `negative_weight` (eta, 0.5) * (1 - p) * RLOO advantage on
      incorrect ones, where p is the group's pass rate and RLOO = r_i - mean of the other samples' rewards
      (= -c / (G - 1) for a wrong sample in a group with c correct); groups with p in {0, 1} are dropped.
    Columns of an (N, K) input are treated independently (one group statistic per attempt).
    """
    if mode not in ADVANTAGE_MODES or mode == "grpo":
        raise ValueError(f"negative-sample mode must be one of {ADVANTAGE_MODES[1:]}; got {mode!r}.")
    if correct.dim() == 2:
        columns = [
            negative_sample_advantages(correct[:, k], group_size, mode, positive_weight, negative_weight)
            for k in range(correct.size(1))
        ]
        return torch.stack(columns, dim=1)  # (N, K)
    made = ~torch.isnan(correct)  # (N,)
    right = made & (correct > 0.5)
    wrong = made & (correct <= 0.5)
    advantages = torch.zeros_like(correct)  # (N,)
    if mode == "psr":
        advantages[right] = 1.0
    elif mode == "nsr":
        advantages[wrong] = -1.0
    elif mode == "w_reinforce":
        advantages[right] = positive_weight
        advantages[wrong] = -1.0
    else:  # oreal
        if correct.numel() % group_size:
            raise ValueError(f"{correct.numel()} samples do not split into groups of {group_size}.")
        r = torch.where(made, right.float(), torch.nan).view(-1, group_size)  # (N/G, G) binary rewards
        n = (~torch.isnan(r)).sum(dim=1, keepdim=True).float()  # (N/G, 1) samples made
        c = torch.nansum(r, dim=1, keepdim=True)  # (N/G, 1) correct
        p = c / n.clamp(min=1)  # (N/G, 1) pass rate
        rloo = r - (c - torch.nan_to_num(r)) / (n - 1).clamp(min=1)  # (N/G, G) leave-one-out baseline
        mixed = (p > 0) & (p < 1)  # (N/G, 1) groups with both outcomes
        grouped = torch.where(r > 0.5, 1.0, negative_weight * (1 - p) * rloo)  # (N/G, G)
        grouped = torch.where(mixed & ~torch.isnan(r), grouped, 0.0)
        advantages = grouped.view(-1)
    return advantages
