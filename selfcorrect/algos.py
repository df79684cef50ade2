"""Pure tensor functions for the methods' math: no trainer state, tested on hand-worked tensors.

Shapes: N episodes in the gathered batch (all ranks), grouped in consecutive blocks of G (TRL's `RepeatSampler` order);
K attempts per episode; B local rows; T completion tokens. Missing values (an attempt an episode never made, a reward a
function could not give) are NaN and never enter a group statistic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from .registry import Registry


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


def joint_attempt_advantages(attempt_rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """Each attempt's rewards minus their group mean, all attempts of a group divided by ONE std: (N, K) -> (N, K).

    The std is taken over every (episode, attempt) of the group after centering, so the attempts keep their relative
    scale (a shaped last attempt with alpha = 10 still outweighs the first), unlike `per_attempt_advantages` with std
    scaling, which gives every attempt unit spread. NaN (attempts never made) are left out and get 0.
    """
    centered = per_attempt_advantages(attempt_rewards, group_size, scale="none")  # (N, K), NaN -> 0
    valid = ~torch.isnan(attempt_rewards)  # (N, K)
    grouped = torch.where(valid, centered, 0.0).view(-1, group_size * attempt_rewards.size(1))  # (N/G, G*K)
    count = valid.view(-1, group_size * attempt_rewards.size(1)).sum(dim=1, keepdim=True)  # (N/G, 1)
    std = (grouped.pow(2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)).sqrt()  # (N/G, 1)
    scaled = grouped / (std + eps)  # (N/G, G*K)
    return scaled.view_as(attempt_rewards)  # (N, K)


ATTEMPT_SCALINGS = ("mean", "joint", "per_attempt")


def scaled_attempt_advantages(
    attempt_rewards: torch.Tensor, group_size: int, scaling: str, scale_rewards: str = "group"
) -> torch.Tensor:
    """Group-relative advantages of every attempt, (N, K) -> (N, K), with one of three scalings:

    - "mean": reward minus the group mean of the same attempt, no division (keeps shaped rewards' scale);
    - "joint": the same, divided by one std over all attempts of the group (`joint_attempt_advantages`);
    - "per_attempt": each attempt normalized on its own with TRL's `scale_rewards` (group / batch / none).
    """
    if scaling == "mean":
        return per_attempt_advantages(attempt_rewards, group_size, scale="none")
    if scaling == "joint":
        return joint_attempt_advantages(attempt_rewards, group_size)
    if scaling == "per_attempt":
        return per_attempt_advantages(attempt_rewards, group_size, scale_rewards)
    raise ValueError(f"attempt scaling must be one of {ATTEMPT_SCALINGS}; got {scaling!r}.")


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
    scaling: str = "mean",
    stage1_credit_earlier_attempts: bool = True,
    scale_rewards: str = "group",
) -> torch.Tensor:
    """Per-attempt advantages for SCoRe: (N, K) rewards -> (N, K) advantages.

    Stage I: only the last attempt's reward drives the update. Its group-relative advantage is given to the last
    attempt and, if `stage1_credit_earlier_attempts` (the REINFORCE gradient of E[r(y_K)] over the whole episode), to the
    earlier attempts too, which the strong KL keeps near the base model; otherwise earlier attempts get 0.
    Stage II: instantaneous per-attempt credit (gamma = 0) with the shaped rewards of `score_shaped_rewards`.
    `scaling` (see `scaled_attempt_advantages`): "mean" (default) keeps the shaped reward's scale, as the paper's
    objective does, so alpha makes the last attempt's flip credit dominate; "per_attempt" divides each attempt by its
    own std, which normalizes alpha away (G = 4, alpha = 10, (r1, r2) = (0,1), (0,0), (1,1), (1,0): turn-2 advantages
    +-10.5 / +-0.5 with "mean", +-1.22 with "per_attempt").
    """
    if stage == 1:
        last = scaled_attempt_advantages(attempt_rewards[:, -1:], group_size, scaling, scale_rewards)[:, 0]  # (N,)
        advantages = torch.zeros_like(attempt_rewards)
        advantages[:, -1] = last
        if stage1_credit_earlier_attempts:
            advantages[:, :-1] = last.unsqueeze(1)
        return advantages
    if stage == 2:
        shaped = score_shaped_rewards(attempt_rewards, alpha)  # (N, K)
        return scaled_attempt_advantages(shaped, group_size, scaling, scale_rewards)
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


# --- Padding: rows of very different lengths in one batch --------------------------------------------------------------


def row_lengths(prompt_mask: torch.Tensor, completion_mask: torch.Tensor) -> tuple[list[int], list[int]]:
    """Per row of a batch of left-padded prompts (B, P) and right-padded completions (B, T): the prompt's tokens and the
    completion's length up to its last real token (masked tokens inside a completion, e.g. feedback turns, count)."""
    positions = torch.arange(1, completion_mask.size(1) + 1, device=completion_mask.device)  # (T,)
    return prompt_mask.sum(dim=1).tolist(), (completion_mask * positions).amax(dim=1).tolist()


def two_length_groups(
    prompt_lengths: Sequence[int], completion_lengths: Sequence[int], min_saving: float = 0.25
) -> list[list[int]]:
    """Rows split into (at most) two groups so that padding each group to its own widths costs least.

    A batch is padded to its longest prompt and longest completion; RISE's verification rows (prompts of ~250 tokens)
    would pad every solution row to their length. Rows are ordered by total length and cut where
    `sum over groups of rows x (max prompt + max completion)` is smallest; the split is taken only when it saves at
    least `min_saving` of the padded tokens, else one group (all rows, in order). Indices within a group keep order.
    """
    n = len(prompt_lengths)
    everything = [list(range(n))]
    if n < 2:
        return everything
    order = sorted(range(n), key=lambda i: (prompt_lengths[i] + completion_lengths[i], i))
    whole = n * (max(prompt_lengths) + max(completion_lengths))

    def running_widths(rows: list[int]) -> list[int]:  # widths of rows[:1], rows[:2], ...: running max of each part
        widths, prompt, completion = [], 0, 0
        for i in rows:
            prompt, completion = max(prompt, prompt_lengths[i]), max(completion, completion_lengths[i])
            widths.append(prompt + completion)
        return widths

    head = running_widths(order)  # head[k]: width of order[: k + 1]
    tail = running_widths(order[::-1])[::-1]  # tail[k]: width of order[k:]
    best, best_cut = whole, None
    for cut in range(1, n):  # this call is on the loss's path: O(n) after the sort
        cost = cut * head[cut - 1] + (n - cut) * tail[cut]
        if cost < best:
            best, best_cut = cost, cut
    if best_cut is None or best > (1 - min_saving) * whole:
        return everything
    return [sorted(order[:best_cut]), sorted(order[best_cut:])]


def prompt_groups(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> list[int]:
    """For each row of left-padded prompts (B, P), the first row whose prompt is the same (tokens and mask): rows that
    share a prompt, e.g. RISE's n verifications of one solution, get one id."""
    keys = torch.cat([prompt_ids * prompt_mask, prompt_mask], dim=1)  # (B, 2P): pad tokens of any id compare equal
    first: dict[tuple[int, ...], int] = {}
    return [first.setdefault(tuple(row), i) for i, row in enumerate(keys.tolist())]


def verification_pass_rows(
    is_verification: Sequence[bool],
    prompt_lengths: Sequence[int],
    completion_lengths: Sequence[int],
    budget: int | None = None,
    share_prefix: int = 1,
) -> tuple[int, int]:
    """What one rank's micro-batch asks of the loss passes: (solution rows, verification rows per pass).

    `budget` (padded tokens a pass may hold) None: the solution rows' padded tokens (rows x (longest prompt + longest
    completion)), so no pass holds more activations than the solutions alone; verification rows per pass: how many of
    the widest verification row fit it, at least 1; with no solution rows, all verification rows; with no verification
    rows, the whole micro-batch (no constraint).

    `share_prefix` = n > 1: every n verification rows share one prompt, computed once per pass (`shared_prefix_logps`),
    so g whole groups cost g x prompt + g x n x completion tokens. Rows per pass: n x the most groups g for which even a
    pass that straddles g + 1 groups, (g + 1) x prompt + g x n x completion, fits the budget; where not one group fits
    that way, the unshared count above.
    """
    solutions = [i for i, v in enumerate(is_verification) if not v]
    verifications = [i for i, v in enumerate(is_verification) if v]
    if not verifications:
        return len(solutions), len(is_verification)
    if budget is None:
        if not solutions:
            return 0, len(verifications)
        budget = len(solutions) * (
            max(prompt_lengths[i] for i in solutions) + max(completion_lengths[i] for i in solutions)
        )
    prompt = max(prompt_lengths[i] for i in verifications)
    completion = max(completion_lengths[i] for i in verifications)
    if share_prefix > 1:
        groups = (budget - prompt) // (prompt + share_prefix * completion)  # worst case: g + 1 prompts in a pass
        if groups >= 1:
            return len(solutions), groups * share_prefix
    return len(solutions), max(1, budget // (prompt + completion))


def loss_passes(
    is_verification: Sequence[bool],
    prompt_lengths: Sequence[int],
    completion_lengths: Sequence[int],
    solution_rows: int,
    rows_per_pass: int,
    prompt_group: Sequence[int] | None = None,
) -> list[list[int]]:
    """The rows of each forward/backward pass of a micro-batch's loss, in sizes every rank shares (TRL's loss gathers
    per-row values, so pass k must hold as many rows on every rank): `solution_rows` solution rows in the first pass
    (the fewest any rank has), then the other rows — remaining solutions first, then verification rows from shortest
    to longest — in passes of `rows_per_pass` (the fewest any rank's budget allows). Both come from
    `verification_pass_rows`, as minima over ranks. With `prompt_group` (`prompt_groups`: rows that share a prompt
    share its id) verification rows are ordered by prompt length and kept together per prompt, so a pass of whole
    groups computes each prompt once.
    """
    solutions = [i for i, v in enumerate(is_verification) if not v]

    def sort_key(i: int) -> tuple[int, ...]:
        if prompt_group is None:
            return (prompt_lengths[i] + completion_lengths[i], i)
        return (prompt_lengths[i], prompt_group[i], i)

    verifications = sorted((i for i, v in enumerate(is_verification) if v), key=sort_key)
    order = solutions + verifications
    passes = [order[:solution_rows]] if solution_rows else []
    rest = order[solution_rows:]
    return passes + [rest[k : k + rows_per_pass] for k in range(0, len(rest), rows_per_pass)]


def loss_pass_weight(loss_type: str, rows: int, total_rows: int, tokens: float, total_tokens: float) -> float:
    """The factor that makes the loss of one pass (`rows` of the micro-batch's `total_rows`, `tokens` of its
    `total_tokens` loss tokens), computed by TRL's `_compute_loss` as if it were the whole micro-batch, that pass's
    share of the micro-batch's loss: the passes' weighted losses (and gradients) sum to the joined batch's.

    Row means (grpo, sapo, dr_grpo, luspo): rows / total_rows; bnpo's token mean: tokens / total_tokens; dapo, cispo and
    vespo divide by the generation batch's token count (`num_items_in_batch`), the same for every pass: 1.
    """
    if loss_type in ("grpo", "sapo", "dr_grpo", "luspo"):
        return rows / total_rows
    if loss_type == "bnpo":
        return tokens / max(total_tokens, 1.0)
    if loss_type in ("dapo", "cispo", "vespo"):
        return 1.0
    raise ValueError(f"unknown loss_type {loss_type!r}")


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


class AdvantageMode(NamedTuple):
    """What `advantage_mode: name` does to a batch's credit.

    `weigh(credit, positive_weight)`: applied to any method's credit (any shape; None: unchanged);
    `verdict_credit`: with no credit of the method's own, the credit is made from each attempt's verdict (+-1, or
    OREAL's reshaping) instead of the group-normalized rewards, so the reward functions' values are not read;
    `composes`: False for a credit of its own (OREAL) that would replace a method's credit, refused for such methods.
    """

    weigh: Callable[[torch.Tensor, float], torch.Tensor] | None
    verdict_credit: bool = True
    composes: bool = True


def _keep_positive(credit: torch.Tensor, positive_weight: float) -> torch.Tensor:
    return credit.clamp(min=0.0)


def _keep_negative(credit: torch.Tensor, positive_weight: float) -> torch.Tensor:
    return credit.clamp(max=0.0)


def _down_weight_positive(credit: torch.Tensor, positive_weight: float) -> torch.Tensor:
    return torch.where(credit > 0, credit * positive_weight, credit)


ADVANTAGE_MODES: Registry[AdvantageMode] = Registry("advantage mode", "advantage_mode")
ADVANTAGE_MODES.register("grpo", AdvantageMode(weigh=None, verdict_credit=False))
ADVANTAGE_MODES.register("psr", AdvantageMode(weigh=_keep_positive))
ADVANTAGE_MODES.register("nsr", AdvantageMode(weigh=_keep_negative))
ADVANTAGE_MODES.register("w_reinforce", AdvantageMode(weigh=_down_weight_positive))
ADVANTAGE_MODES.register("oreal", AdvantageMode(weigh=None, composes=False))


def sign_weighted_advantages(advantages: torch.Tensor, mode: str, positive_weight: float = 0.1) -> torch.Tensor:
    """Zhu et al.'s decomposition applied to any credit: positive and negative reinforcement weighted apart.

    Any shape. "psr": positive advantages kept, negative ones 0; "nsr": negative advantages kept, positive ones 0;
    "w_reinforce": positive advantages times `positive_weight` (lambda, paper 0.1), negative ones kept; "grpo" and
    "oreal": unchanged (OREAL is a credit of its own, see `negative_sample_advantages`). On the +-1 correctness credit
    this is exactly the paper's PSR / NSR / W-REINFORCE; on a method's own credit (SCoRe's shaped rewards, UFO's
    returns, Critique-GRPO's mixed groups) it keeps or down-weights that method's positive credit.
    """
    weigh = ADVANTAGE_MODES.lookup(mode).weigh
    return advantages if weigh is None else weigh(advantages, positive_weight)


def correctness_advantages(correct: torch.Tensor) -> torch.Tensor:
    """REINFORCE on the verifier's verdict, no baseline: +1 correct, -1 wrong, 0 no sample (NaN). Any shape."""
    made = ~torch.isnan(correct)
    signed = torch.where(correct > 0.5, 1.0, -1.0)
    return torch.where(made, signed, 0.0)


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
      (These three are `sign_weighted_advantages` of `correctness_advantages`.)
    - "oreal": +1 on correct samples (behaviour cloning), `negative_weight` (eta, 0.5) * (1 - p) * RLOO advantage on
      incorrect ones, where p is the group's pass rate and RLOO = r_i - mean of the other samples' rewards
      (= -c / (G - 1) for a wrong sample in a group with c correct); groups with p in {0, 1} are dropped.
    Columns of an (N, K) input are treated independently (one group statistic per attempt).
    """
    if not ADVANTAGE_MODES.lookup(mode).verdict_credit:
        raise ValueError(f"`advantage_mode: {mode}` makes no credit from verdicts; it reads the rewards.")
    if mode != "oreal":
        return sign_weighted_advantages(correctness_advantages(correct), mode, positive_weight)
    if correct.dim() == 2:
        columns = [
            negative_sample_advantages(correct[:, k], group_size, mode, positive_weight, negative_weight)
            for k in range(correct.size(1))
        ]
        return torch.stack(columns, dim=1)  # (N, K)
    if correct.numel() % group_size:
        raise ValueError(f"{correct.numel()} samples do not split into groups of {group_size}.")
    made = ~torch.isnan(correct)  # (N,)
    right = made & (correct > 0.5)
    r = torch.where(made, right.float(), torch.nan).view(-1, group_size)  # (N/G, G) binary rewards
    n = (~torch.isnan(r)).sum(dim=1, keepdim=True).float()  # (N/G, 1) samples made
    c = torch.nansum(r, dim=1, keepdim=True)  # (N/G, 1) correct
    p = c / n.clamp(min=1)  # (N/G, 1) pass rate
    rloo = r - (c - torch.nan_to_num(r)) / (n - 1).clamp(min=1)  # (N/G, G) leave-one-out baseline
    mixed = (p > 0) & (p < 1)  # (N/G, 1) groups with both outcomes
    grouped = torch.where(r > 0.5, 1.0, negative_weight * (1 - p) * rloo)  # (N/G, G)
    grouped = torch.where(mixed & ~torch.isnan(r), grouped, 0.0)
    return grouped.view(-1)  # (N,)


# --- REDI: "Harnessing Negative Signals: Reinforcement Distillation" (Xu et al. 2025) ---------------------------------


def length_normalized_logps(logps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per-sequence mean token log-likelihood `log pi(y|x) / |y|`: (P,) summed logps, (P,) token counts -> (P,).

    A sequence with no tokens (length 0) gets 0, never NaN.
    """
    return logps / lengths.to(logps.dtype).clamp(min=1)  # (P,)


def redi_loss(
    chosen_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_logps: torch.Tensor,
    rejected_lengths: torch.Tensor,
    alpha: float = 0.8,
) -> torch.Tensor:
    """The reference-free REDI objective, averaged over P pairs (x, y_w correct, y_l incorrect):

        L = mean_pairs[ -log pi(y_w|x) / |y_w| + alpha * log pi(y_l|x) / |y_l| ]

    chosen_logps / rejected_logps: (P,) log-likelihoods summed over each completion's tokens; *_lengths: (P,) token
    counts. alpha in [0, 1] down-weights the push-down on the incorrect trace (paper: 0.8; alpha = 0 is SFT on the
    correct traces with a per-sequence length average). No reference model, no KL, no sigmoid: minimizing L raises
    the chosen and lowers the rejected length-normalized log-likelihood. Returns a scalar.
    """
    chosen = length_normalized_logps(chosen_logps, chosen_lengths)  # (P,)
    rejected = length_normalized_logps(rejected_logps, rejected_lengths)  # (P,)
    return (-chosen + alpha * rejected).mean()  # ()


# --- RISE: "Trust, But Verify" (Liu et al. 2025) -----------------------------------------------------------------------

OUTCOME_SCORES = (1.0, -0.5, -1.0)  # boxed and correct / boxed but wrong / no boxed answer


def outcome_score(boxed: bool, correct: bool | None) -> float:
    """RISE's outcome verifier: 1.0 if a boxed answer is correct, -0.5 if it is wrong, -1.0 without a boxed answer.
    A gold that does not parse (`correct` None) counts as wrong."""
    if not boxed:
        return -1.0
    return 1.0 if correct else -0.5


def verification_rewards(ratings: torch.Tensor, targets: torch.Tensor, atol: float = 1e-6) -> torch.Tensor:
    """Reward of each verification: 1 if its rating equals the verified solution's outcome score, -0.5 if it gave a
    rating that differs (a boxed value that is not a number counts as a wrong rating: pass +inf), -1 if it gave none.

    ratings: (M,) the boxed rating as a number, NaN where the verification has no boxed rating; targets: (M,).
    """
    rated = ~torch.isnan(ratings)  # (M,)
    right = rated & (ratings - targets).abs().le(atol)  # (M,)
    rewards = torch.full_like(targets, -1.0)  # (M,)
    rewards[rated] = -0.5
    rewards[right] = 1.0
    return rewards


def select_spread(
    num_rows: int, group_size: int, count: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pick `count` distinct rows of a batch of `num_rows` (groups of `group_size` consecutive rows), spread over the
    groups: every group gives floor or ceil(count / groups) rows, which groups give the extra one and which members
    are picked are random (`generator`; the same seed gives the same rows on every rank). Returns (count,) row indices
    in pick order.
    """
    if num_rows % group_size:
        raise ValueError(f"{num_rows} rows do not split into groups of {group_size}.")
    if not 0 <= count <= num_rows:
        raise ValueError(f"cannot pick {count} of {num_rows} rows.")
    num_groups = num_rows // group_size
    group_order = torch.randperm(num_groups, generator=generator)  # (groups,)
    members = torch.stack([torch.randperm(group_size, generator=generator) for _ in range(num_groups)])  # (groups, G)
    picks = []
    for i in range(count):  # round i // groups takes one more member of each group, groups in random order
        group = int(group_order[i % num_groups])
        picks.append(group * group_size + int(members[group, i // num_groups]))
    return torch.tensor(picks, dtype=torch.long)  # (count,)


def verification_accuracy(ratings: torch.Tensor, targets: torch.Tensor, atol: float = 1e-6) -> dict[str, float]:
    """Verification metrics: overall accuracy, accuracy per true class (`acc_score_1`, `acc_score_-0.5`,
    `acc_score_-1`; NaN for a class absent from the batch) and the fraction with a valid rating (one of the three
    scores). ratings: (M,) with NaN where no rating; targets: (M,)."""
    rated = ~torch.isnan(ratings)
    right = rated & (ratings - targets).abs().le(atol)  # (M,)
    valid = torch.zeros_like(rated)
    for score in OUTCOME_SCORES:
        valid |= rated & (ratings - score).abs().le(atol)
    metrics = {
        "acc": right.float().mean().item() if right.numel() else float("nan"),
        "valid_rating_frac": valid.float().mean().item() if valid.numel() else float("nan"),
    }
    for score in OUTCOME_SCORES:
        in_class = (targets - score).abs().le(atol)
        metrics[f"acc_score_{score:g}"] = right[in_class].float().mean().item() if in_class.any() else float("nan")
    return metrics


def normalize_answer(answer: str | None) -> str | None:
    """The key under which voting counts an answer: whitespace and `$` removed; None or empty: no answer."""
    if answer is None:
        return None
    key = "".join(answer.split()).strip("$")
    return key or None


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """The most frequent answer (after `normalize_answer`), ties to the first seen; None if no sample has one."""
    return weighted_vote(answers, [1.0] * len(answers))


def weighted_vote(answers: Sequence[str | None], weights: Sequence[float]) -> str | None:
    """Verification-weighted majority vote: each sample's answer gets its weight (RISE: the share of the sample's own
    verifications that rate it correct); the answer with the largest total wins, ties go to the more frequent answer,
    then to the first seen. Samples without an answer do not vote. Returns the winning answer as first written, or
    None if no sample has an answer."""
    if len(answers) != len(weights):
        raise ValueError(f"{len(answers)} answers but {len(weights)} weights.")
    totals: dict[str, list[float]] = {}  # key -> [weight sum, count]
    first: dict[str, str] = {}  # key -> the first answer written that way
    for answer, weight in zip(answers, weights):
        key = normalize_answer(answer)
        if key is None:
            continue
        entry = totals.setdefault(key, [0.0, 0.0])
        entry[0] += float(weight)
        entry[1] += 1.0
        first.setdefault(key, answer)
    if not totals:
        return None
    best = max(totals, key=lambda key: (totals[key][0], totals[key][1]))  # max keeps the first of equal keys
    return first[best]


# --- Critique-GRPO (Zhang et al. 2025) and R3L positive amplification --------------------------------------------------

REFINE_GROUPS = ("no_correct", "all")


def scale_positive_advantages(advantages: torch.Tensor, scale: float) -> torch.Tensor:
    """R3L's positive amplification: advantages > 0 multiplied by `scale` (paper alpha = 3), others unchanged.

    Any shape; `scale` 1.0 returns the input unchanged.
    """
    if scale == 1.0:
        return advantages
    return torch.where(advantages > 0, advantages * scale, advantages)


def policy_shaping_weight(logps: torch.Tensor, gamma: float = 0.1) -> torch.Tensor:
    """Critique-GRPO's shaping weight `rho = p / (p + gamma)` with `p = exp(logps)` the token's probability under the
    current policy; the gradient flows through p (d rho / d logp = gamma p / (p + gamma)^2). Any shape, e.g. (B, T).

    It replaces the importance ratio on refinement tokens: a low-probability token (p << gamma) gets a weight ~ p/gamma
    whose gradient is ~ p/gamma, larger relative to p than the plain likelihood's, so unfamiliar but correct
    refinement tokens are learned without being clipped away; a likely token (p >> gamma) saturates at 1.
    """
    p = logps.exp()  # (..., T)
    return p / (p + gamma)


def policy_shaping_loss(logps: torch.Tensor, advantages: torch.Tensor, gamma: float = 0.1) -> torch.Tensor:
    """Per-token loss on refinement tokens, `-A * rho_t`: (B, T) log-probs, (B, T) or (B,) advantages -> (B, T).

    No clipping (the paper's choice: refinements are off-policy by construction). Reduce it like TRL's policy loss
    (`aggregate_token_loss`) so that refinement and sampled tokens share one normalizer.
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)  # (B, 1)
    return -advantages * policy_shaping_weight(logps, gamma)  # (B, T)


def refinement_candidates(
    correct: torch.Tensor, group_size: int, refine_groups: str = "no_correct", max_per_group: int | None = None
) -> torch.Tensor:
    """Which sampled responses get a critique and a refinement: (N,) correctness (1 / 0, NaN counts as wrong) -> (N,)
    bool.

    Candidates are the wrong responses of the refined groups: with "no_correct" (the paper) only groups without a
    correct response are refined, with "all" (the public code) every group with a wrong response is. At most
    `max_per_group` candidates per group (the first ones in group order; samples are i.i.d., so this is unbiased);
    None: all of them.
    """
    if refine_groups not in REFINE_GROUPS:
        raise ValueError(f"`refine_groups` must be one of {REFINE_GROUPS}; got {refine_groups!r}.")
    if correct.numel() % group_size:
        raise ValueError(f"{correct.numel()} responses do not split into groups of {group_size}.")
    wrong = ~(torch.nan_to_num(correct, nan=0.0) > 0.5).view(-1, group_size)  # (N/G, G)
    if refine_groups == "no_correct":
        wrong = wrong & wrong.all(dim=1, keepdim=True)  # (N/G, G) only groups with no correct response
    if max_per_group is not None:
        wrong = wrong & (wrong.long().cumsum(dim=1) <= max_per_group)  # (N/G, G) the first max_per_group
    return wrong.reshape(-1)  # (N,)


def choose_refinements(
    candidates: torch.Tensor, refinement_correct: torch.Tensor, group_size: int, k: int
) -> torch.Tensor:
    """Which refinements enter their group, each replacing the (wrong) response it refines: (N,) -> (N,) bool.

    candidates: (N,) bool, rows that have a refinement; refinement_correct: (N,) 1 / 0 (NaN or any value where there
    is no refinement). Per group at most `k` refinements are placed, correct refinements first (the paper's
    preference), then in group order. The group then holds G - k sampled responses and k refinements.
    """
    if candidates.numel() % group_size:
        raise ValueError(f"{candidates.numel()} rows do not split into groups of {group_size}.")
    cand = candidates.view(-1, group_size)  # (N/G, G)
    good = cand & (torch.nan_to_num(refinement_correct, nan=0.0) > 0.5).view(-1, group_size)  # (N/G, G)
    # rank within the group: correct refinements first, then the other candidates, each in group order
    position = torch.arange(group_size, device=cand.device).expand_as(cand)  # (N/G, G)
    key = torch.where(good, position, position + group_size)  # (N/G, G)
    key = torch.where(cand, key, torch.full_like(key, 3 * group_size))  # non-candidates last
    order = key.argsort(dim=1)  # (N/G, G) columns sorted by preference
    rank = order.argsort(dim=1)  # (N/G, G) preference rank of each column
    return (cand & (rank < k)).reshape(-1)  # (N,)


def mixed_group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "none") -> torch.Tensor:
    """Critique-GRPO's advantage over a mixed group of n sampled responses and k refinements (n + k = G, consecutive
    rows): `A = R - mean(R over the group)`, no std division by default (`scale` as TRL's `scale_rewards`).
    (N,) -> (N,); NaN rewards are left out of the mean and get 0.
    """
    return group_normalize(rewards, group_size, scale)
