"""RISE's training-time verification pass (Liu et al. 2025), as trainer code composed in only when asked for: a
`MultiAttemptGRPOTrainer` built with `verification_solutions` > 0 is `with_verification(cls)`, which puts
`SelfVerification` in its class chain, so any method (SCoRe, UFO, W-REINFORCE, ...) verifies its own solutions; one
without it neither inherits nor imports this module. `method: rise` (`selfcorrect.trainers.rise`) is the
single-attempt paper setting.

After the solutions of a generation batch are scored, B_v of them (chosen from the batch gathered over ranks, spread
over the groups, the same choice on every rank) are wrapped in the verification prompt (`selfcorrect.verification`),
which states the outcome verifier's rubric (1 / -0.5 / -1) and asks for the rating in `\\boxed{}`. The policy samples
n verifications of each through TRL's own `_generate_and_score_completions` (so old / reference log-probs, vLLM
importance sampling and group-relative advantages are TRL's, with group size n): for that one call the trainer's
rollout, reward functions, group size and log buffers are swapped for the verification ones
(`trl_private.trl_scoring_with`, where every private TRL name this package relies on is listed). The rows are
appended to the solution rows (`concat_batches`): one policy update. Their advantages are TRL's, untouched by the
method's credit, the advantage mode and R3L amplification (docs/methods/composing.md).

The loss of a micro-batch that holds verification rows runs in several forward/backward passes (`compute_loss`,
`verification_loss_passes`): the solution rows in one, the verification rows (prompts of ~250 tokens) in passes of
at most as many padded tokens as the solutions, each pass trimmed to its own padding and weighted by its share of the
loss (`algos.loss_pass_weight`), so the gradient is the joined batch's (tested) while the activations held at once
are a TRL step's. One pass over the joined batch instead where a loss term needs the whole micro-batch (an entropy
bonus, an entropy-quantile mask, an MoE aux loss). Under DeepSpeed the early passes backpropagate as a step inside
a gradient-accumulation window does (no boundary: gradients accumulate locally; the micro-batch's last pass is the
Trainer's own backward, which reduces and steps as before).

The n verification rows of one solution hold the same prompt. With `verification_shared_prefix` (default) a
verification pass holds whole groups of them and computes each prompt once (`shared_prefix_logps`; so do the
verification batch's reference and old log-probs): the decoder runs over the unique prompts, its key/value cache is
indexed out to every row, and the completions run on that cache. Positions are TRL's (prompt columns then completion
columns, left padding included), so the log-probs and the gradient are a full forward's to float rounding (tested); a
pass holds ~2.5x fewer tokens at 250-token prompts, n = 4 and 64-token verifications.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from typing import Any

import torch
from accelerate.utils import gather_object
from transformers.cache_utils import DynamicCache, DynamicLayer
from transformers.modeling_layers import GradientCheckpointingLayer

from .. import verification
from ..algos import (
    OUTCOME_SCORES,
    loss_pass_weight,
    loss_passes,
    outcome_score,
    prompt_groups,
    row_lengths,
    select_spread,
    verification_accuracy,
    verification_pass_rows,
    verification_rewards,
)
from ..rewards import question_text
from .base import MultiAttemptGRPOTrainer
from .trl_private import logps_call_options, swapped, trl_scoring_with

logger = logging.getLogger(__name__)


# --- training-time verification pass ----------------------------------------------------------------------------------

VERIFICATION_ROWS = "verification_rows"  # (B,) bool: which rows of a joined batch are verifications
PAD_VALUES = {
    "completion_ids": None,  # the tokenizer's pad token
    "completion_mask": 0,
    "tool_mask": 0,
    "old_per_token_logps": 0.0,
    "ref_per_token_logps": 0.0,
    "sampling_per_token_logps": 0.0,
    "importance_sampling_ratio": 1.0,
    "advantages": 0.0,
    "kl_weights": 0.0,
}


def _right_pad(tensor: torch.Tensor, width: int, value: float) -> torch.Tensor:
    if tensor.size(1) >= width:
        return tensor
    filler = torch.full((tensor.size(0), width - tensor.size(1)), value, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([tensor, filler], dim=1)


def concat_batches(
    first: dict[str, Any], second: dict[str, Any], pad_token_id: int, kl_weight: float = 0.0
) -> dict[str, Any]:
    """Rows of two batches built by TRL's `_generate_and_score_completions`, as one batch.

    Prompts are left-padded and completions right-padded to the longer of the two; (B,) advantages become (B, T);
    a `tool_mask` or `kl_weights` present in only one batch is filled for the other's rows with ones (all tokens are
    the model's) and `kl_weight` (TRL's uniform beta); `num_items_in_batch` (loss tokens over all ranks) is the sum.
    """
    unknown = (set(first) | set(second)) - set(PAD_VALUES) - {"prompt_ids", "prompt_mask", "num_items_in_batch"}
    unknown -= {VERIFICATION_ROWS}
    if unknown:
        raise NotImplementedError(f"verification rows cannot be joined to a batch with {sorted(unknown)} yet.")
    for key in ("old_per_token_logps", "ref_per_token_logps", "sampling_per_token_logps", "importance_sampling_ratio"):
        if (key in first) != (key in second):
            raise RuntimeError(f"internal: `{key}` is in only one of the batches being joined.")
    out: dict[str, Any] = {}
    width = max(first["prompt_ids"].size(1), second["prompt_ids"].size(1))
    for key, value in (("prompt_ids", pad_token_id), ("prompt_mask", 0)):
        parts = [b[key].flip(1) for b in (first, second)]  # left padding = right padding of the reversed rows
        out[key] = torch.cat([_right_pad(p, width, value) for p in parts]).flip(1)  # (B1 + B2, P)
    num_tokens = max(first["completion_ids"].size(1), second["completion_ids"].size(1))
    fills = {"tool_mask": 1, "kl_weights": kl_weight}
    for key, pad in PAD_VALUES.items():
        if key not in first and key not in second:
            continue
        parts = []
        for batch in (first, second):
            rows = batch["completion_ids"]  # (B, T_batch)
            if key in batch:
                part = batch[key]
                if key == "advantages" and part.dim() == 1:
                    part = part.unsqueeze(1).expand(-1, rows.size(1))  # (B,) -> (B, T_batch)
            else:
                part = torch.full(rows.shape, fills[key], dtype=torch.float32, device=rows.device)
                part = part.to(first[key].dtype if key in first else second[key].dtype)
            parts.append(part)
        if key == "importance_sampling_ratio" and parts[0].size(1) == 1:  # sequence-level: (B, 1)
            out[key] = torch.cat(parts)
            continue
        value = pad_token_id if pad is None else pad
        out[key] = torch.cat([_right_pad(p, num_tokens, value) for p in parts])  # (B1 + B2, T)
    out["num_items_in_batch"] = first["num_items_in_batch"] + second["num_items_in_batch"]
    out[VERIFICATION_ROWS] = torch.cat([_verification_flags(first), _verification_flags(second, default=True)])
    return out


def _verification_flags(batch: dict[str, Any], default: bool = False) -> torch.Tensor:
    rows = batch["completion_ids"]
    return batch.get(VERIFICATION_ROWS, torch.full((rows.size(0),), default, dtype=torch.bool, device=rows.device))


def select_rows(batch: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    """Some rows of a joined batch, trimmed to their own padding: prompt columns no row uses (left) and completion
    columns after the last real token of every row (right) are dropped, as if the rows had been padded alone."""
    index = torch.tensor(rows, device=batch["completion_ids"].device)
    prompt_used = batch["prompt_mask"][index].sum(dim=0) > 0  # (P,)
    left = int(prompt_used.nonzero().min()) if prompt_used.any() else prompt_used.numel() - 1
    completion_used = (batch["completion_mask"][index].sum(dim=0) > 0).nonzero()  # columns with a real token
    width = batch["completion_ids"].size(1)
    keep = int(completion_used.max()) + 1 if completion_used.numel() else 1
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            out[key] = value  # num_items_in_batch: the generation batch's token count, the same for every pass
        elif key in ("prompt_ids", "prompt_mask"):
            out[key] = value[index][:, left:]  # (g, P - left)
        elif value.dim() == 2 and value.size(1) == width:
            out[key] = value[index][:, :keep]  # (g, keep) completion-aligned
        else:
            out[key] = value[index]  # (g, ...) per-row values, sequence-level ratios
    return out


class _PrefixCacheLayer(DynamicLayer):
    """The cache layer of the shared prompts' forward: keeps the key/value states it is given. Under gradient
    checkpointing the backward replays the layer and writes the same states again, which a growing cache would append."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        self.keys, self.values, self.device, self.is_initialized = key_states, value_states, key_states.device, True
        return key_states, value_states


class _ReadOnlyCacheLayer(DynamicLayer):
    """The cache layer the completions read: the prompts' states then the completion's own, never stored, so a replay
    under gradient checkpointing sees what the forward saw."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


def _layer_cache(decoder, layer_cls: type[DynamicLayer]) -> DynamicCache | None:
    cache = DynamicCache(config=decoder.config)
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None  # sliding-window, hybrid or other caches: the full forward instead
    for layer in cache.layers:
        layer.__class__ = layer_cls
    return cache


@contextlib.contextmanager
def _checkpointing_with_cache(decoder):
    """Let checkpointed layers keep the cache (transformers drops it, as a replay would write it twice; ours do not)."""
    layers = [m for m in decoder.modules() if isinstance(m, GradientCheckpointingLayer)]
    for layer in layers:
        layer._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for layer in layers:
            del layer._can_checkpoint_with_cache


def shared_prefix_logps(
    model, decoder, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int, compute_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """TRL's per-token log-probs (and entropies) of the last `logits_to_keep` columns of (B, P + T) rows, computing
    each distinct prompt once. None where no prompt is shared or the model's cache is not a plain dynamic one.

    `model` is what TRL calls (its fused LM head: `labels` in, per-token `log_probs` out), `decoder` the same model's
    backbone (`get_decoder()`). The decoder runs over the unique prompts but their last column, (U, P - 1), into a
    cache; the cache is indexed out to the B rows; the model then runs (B, T) tokens — each prompt's last token and
    the completion but its last token — on it, scored against the completion (`shift_labels`, -100 where masked).
    Positions and attention masks are those of the full (B, P + T) forward TRL makes, so only float rounding differs.
    Works under non-reentrant gradient checkpointing (both caches are replay-safe).
    """
    prompt_width = input_ids.size(1) - logits_to_keep
    if prompt_width < 2:
        return None
    prompt_ids, prompt_mask = input_ids[:, :prompt_width], attention_mask[:, :prompt_width]  # (B, P)
    owner = prompt_groups(prompt_ids, prompt_mask)  # (B,) first row with the same prompt
    unique = sorted(set(owner))
    if len(unique) == len(owner):
        return None  # nothing shared: no caches to build
    prefix_cache, shared_cache = _layer_cache(decoder, _PrefixCacheLayer), _layer_cache(decoder, _ReadOnlyCacheLayer)
    if prefix_cache is None or shared_cache is None:
        return None
    position = {row: k for k, row in enumerate(unique)}
    rows = torch.tensor(unique, device=input_ids.device)  # (U,)
    to_rows = torch.tensor([position[o] for o in owner], device=input_ids.device)  # (B,) unique prompt of each row
    completion_ids = input_ids[:, prompt_width:]  # (B, T)
    completion_mask = attention_mask[:, prompt_width:]  # (B, T)
    suffix = torch.cat([prompt_ids[:, -1:], completion_ids[:, :-1]], dim=1)  # (B, T): token t predicts completion t
    targets = completion_ids.masked_fill(completion_mask == 0, -100)  # (B, T)
    with _checkpointing_with_cache(decoder):
        decoder(input_ids=prompt_ids[rows, :-1], attention_mask=prompt_mask[rows, :-1], cache=prefix_cache)
        for source, layer in zip(prefix_cache.layers, shared_cache.layers):
            layer.keys = source.keys.index_select(0, to_rows)  # (U, heads, P - 1, d) -> (B, heads, P - 1, d)
            layer.values = source.values.index_select(0, to_rows)
            layer.device, layer.is_initialized = source.device, True
        outputs = model(
            input_ids=suffix,
            attention_mask=attention_mask[:, :-1],  # (B, P + T - 1): the cache's columns, then the suffix's
            cache=shared_cache,
            shift_labels=targets,
            fused_lm_head=True,
        )
    return outputs.log_probs, (outputs.entropy if compute_entropy else None)  # (B, T) each


class SelfVerification(MultiAttemptGRPOTrainer):
    """RISE's verification pass over a multi-attempt trainer (see the module docstring); composed in by
    `with_verification`, which a `MultiAttemptGRPOTrainer` built with `verification_solutions` > 0 applies."""

    verifies = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sharing_prompt_prefix = False  # inside a verification forward: each distinct prompt computed once
        joined_reason = self.joined_loss_reason()
        if joined_reason and self.args.verification_loss_passes:
            logger.info("verification rows share the solutions' loss pass: %s.", joined_reason)

    def _generate_and_score_completions(self, inputs):
        """The method's batch (`MultiAttemptGRPOTrainer._generate_and_score_completions`), then RISE's verification rows
        of B_v of its solutions appended (`add_verifications`)."""
        output = super()._generate_and_score_completions(inputs)
        return self.add_verifications(inputs, output)

    def joined_loss_reason(self) -> str | None:
        """Why verification rows must share one loss pass with the solutions (None: they need not)."""
        if not self.args.verification_loss_passes:
            return "`verification_loss_passes: false`"
        if self._entropy_bonus_enabled:
            return "the entropy bonus is a token mean over the whole micro-batch"
        if self.top_entropy_quantile < 1.0:
            return "`top_entropy_quantile` < 1 masks by a quantile of the whole micro-batch"
        if self.aux_loss_enabled:
            return "the MoE router aux loss is a micro-batch mean"
        return None

    def shared_prefix_group(self) -> int:
        """Rows that share one prompt forward in a verification pass: n, or 1 where sharing is off or unsupported."""
        args = self.args
        if not args.verification_shared_prefix:
            return 1
        if args.gradient_checkpointing and (args.gradient_checkpointing_kwargs or {}).get("use_reentrant"):
            return 1  # a reentrant replay runs without autograd: the prompts' states would get no gradient
        if self.accelerator.distributed_type == "DEEPSPEED":  # ZeRO-3 gathers parameters per forward: not tested
            return 1
        return args.verification_generations

    def _logps_forward(self, model, input_ids, attention_mask, logits_to_keep, **extra):
        """TRL's log-probs; for verification rows (a verification loss pass in `compute_loss`, the reference and old
        log-probs of the verification batch) each distinct prompt is computed once, in TRL's chunks of `batch_size`
        rows."""
        _, trl_only = logps_call_options((), extra)
        if not self._sharing_prompt_prefix or trl_only:
            return super()._logps_forward(model, input_ids, attention_mask, logits_to_keep, **extra)
        decoder = self.accelerator.unwrap_model(model).get_decoder()
        compute_entropy = bool(extra.get("compute_entropy"))
        chunk = extra.get("batch_size") or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), chunk):
            ids, mask = input_ids[start : start + chunk], attention_mask[start : start + chunk]
            with self.accelerator.autocast():
                shared = shared_prefix_logps(model, decoder, ids, mask, logits_to_keep, compute_entropy)
            if shared is None:  # nothing shared in this chunk: TRL's forward
                shared = super()._logps_forward(model, ids, mask, logits_to_keep, **(extra | {"batch_size": None}))[:2]
            logps.append(shared[0])  # (chunk, T)
            entropies.append(shared[1])
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """TRL's loss; a micro-batch with verification rows runs as several forward/backward passes (module docstring):
        every pass but the last is backpropagated here, the last is returned with the earlier passes' (detached) loss
        added, so the Trainer's backward completes the gradient and its logged loss is the whole micro-batch's. Pass k
        holds as many rows on every rank: TRL's loss makes collective calls and gathers per-row values."""
        if not (isinstance(inputs, dict) and VERIFICATION_ROWS in inputs) or self.joined_loss_reason() is not None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        flags = inputs[VERIFICATION_ROWS]  # (B,) present on every rank's training batch
        prompt_lengths, completion_lengths = row_lengths(inputs["prompt_mask"], inputs["completion_mask"])  # (B,) each
        share = self.shared_prefix_group()
        groups = prompt_groups(inputs["prompt_ids"], inputs["prompt_mask"]) if share > 1 else None
        solution_rows, rows_per_pass = verification_pass_rows(
            flags.tolist(), prompt_lengths, completion_lengths, share_prefix=share
        )
        num_rows = flags.numel()
        asks = torch.tensor(
            [-solution_rows, -rows_per_pass, -num_rows, num_rows, int(flags.sum())], device=flags.device
        )
        if self.accelerator.num_processes > 1:  # pass k holds as many rows on every rank: the fewest any rank asks
            asks = self.accelerator.reduce(asks, reduction="max")
        solution_rows, rows_per_pass, fewest, most, verifications = (-asks[:3]).tolist() + asks[3:].tolist()
        passes = [list(range(num_rows))]
        if verifications > 0 and fewest == most:  # TRL splits a generation batch into equal micro-batches
            passes = loss_passes(
                flags.tolist(), prompt_lengths, completion_lengths, solution_rows, rows_per_pass, prompt_group=groups
            )
        if len(passes) == 1:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mask = inputs["completion_mask"] * inputs.get("tool_mask", 1)  # (B, T) TRL's loss mask
        total_rows, total_tokens = mask.size(0), float(mask.sum())
        metrics = self._metrics["train" if self.model.training else "eval"]
        logged_before = {key: len(values) for key, values in metrics.items()}
        weights, tokens = [], []
        earlier = torch.zeros((), device=mask.device)
        for k, pass_rows in enumerate(passes):
            tokens.append(float(mask[pass_rows].sum()))
            weights.append(loss_pass_weight(self.loss_type, len(pass_rows), total_rows, tokens[-1], total_tokens))
            part = select_rows(inputs, pass_rows)
            sharing = share > 1 and bool(flags[pass_rows].all())  # a verification pass: shared prompt forwards
            with swapped(self, _sharing_prompt_prefix=sharing):
                if k == len(passes) - 1:
                    weighted = super().compute_loss(model, part, return_outputs, num_items_in_batch) * weights[-1]
                    break
                with self.accelerator.no_sync(model):  # DDP reduces gradients once, on the micro-batch's last backward
                    weighted = super().compute_loss(model, part, return_outputs, num_items_in_batch) * weights[-1]
                    self._backward_without_sync(weighted)
            earlier = earlier + weighted.detach()
        self._merge_pass_metrics(metrics, logged_before, weights, tokens)
        return weighted + earlier

    def _merge_pass_metrics(self, metrics, logged_before: dict[str, int], weights: list[float], tokens: list[float]):
        """One logged value per micro-batch, as one joined pass would have logged it: token means (entropy, clip ratios,
        KL) weighted by each pass's loss tokens over all ranks, `_min` / `_max` metrics their min / max, `policy_loss`
        the passes' weighted sum; a metric logged by only some passes, their plain mean."""
        counts = self.accelerator.reduce(torch.tensor(tokens, device=self.accelerator.device), reduction="sum")
        counts = counts.tolist()  # (passes,) loss tokens of each pass over all ranks
        for key, values in metrics.items():
            start = logged_before.get(key, 0)
            new = values[start:]
            if len(new) < 2:
                continue
            if len(new) != len(weights):
                merged = sum(new) / len(new)
            elif key.endswith("_min"):
                merged = min(new)
            elif key.endswith("_max"):
                merged = max(new)
            elif key == "policy_loss":
                merged = sum(w * v for w, v in zip(weights, new))
            else:
                merged = sum(c * v for c, v in zip(counts, new)) / max(sum(counts), 1.0)
            del values[start:]
            values.append(merged)

    def _backward_without_sync(self, loss: torch.Tensor) -> None:
        """Backpropagate an early loss pass, accumulating gradients locally: under DeepSpeed what `accelerator.backward`
        does inside an accumulation window (no boundary: no reduction, no engine step; the loss is already scaled, as the
        Trainer says with `scale_wrt_gas=False`), elsewhere `accelerator.backward` (inside `no_sync` for DDP)."""
        if self.accelerator.distributed_type == "DEEPSPEED":
            self.accelerator.deepspeed_engine_wrapped.backward(loss, sync_gradients=False, scale_wrt_gas=False)
        else:
            self.accelerator.backward(loss)

    def _verification_records(self, inputs: list[dict[str, Any]]) -> list[tuple[str, str, float]]:
        """(question, response, outcome score) of the verified attempt of each local row."""
        k = self.args.verification_attempt - 1
        records = []
        for row in inputs:
            made = len(row["attempt_texts"])
            index = min(k, made - 1)  # an episode that stopped early: its last attempt
            answer = (row["attempt_answers"][index] or "").strip()
            score = outcome_score(bool(answer), row["attempt_correct"][index])
            records.append((question_text(row["prompt"]), row["attempt_texts"][index], score))
        return records

    def add_verifications(self, inputs: list[dict[str, Any]], output: dict[str, Any]) -> dict[str, Any]:
        """RISE's verification pass: returns `output` with n verifications of each of B_v
        solutions of the batch appended as extra rows (their own groups of n), and logs the verification metrics."""
        args = self.args
        if not self.model.training:
            return output  # evaluation batches (eval_strategy) are left as they are
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        n, b_v = args.verification_generations, args.verification_solutions
        per_rank = b_v // world

        # 1. the gathered batch's solutions; the same B_v picks on every rank (seeded by `seed` and the call count)
        records = gather_object(self._verification_records(inputs))  # N tuples, rank 0's rows first
        self._verification_round = getattr(self, "_verification_round", 0) + 1
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + self._verification_round)
        picks = select_spread(len(records), self.num_generations, b_v, generator)  # (B_v,)
        mine = picks[rank * per_rank : (rank + 1) * per_rank].tolist()
        template = verification.verification_template(args.verification_template)
        rows = [
            {
                "prompt": verification.verification_messages(records[i][0], records[i][1], template),
                "verify_target": records[i][2],
                "verify_solution_index": i,
            }
            for i in mine
            for _ in range(n)
        ]  # per_rank * n rows, each context n times in a row (TRL's group layout)
        self._last_verification_rows = rows  # this rank's verification rows (tests, debugging)

        # 2. TRL's own scoring path, with the verification rollout, reward and group size n
        def rollout(prompts, _trainer=None):
            prompt_ids, _, _ = self._tokenize_prompts(prompts)
            with self._attempt_token_cap(args.verification_max_length):
                ids, logprobs = self._generate_single_turn(prompt_ids, None, {}, num_generations=n)
            return {"prompt_ids": prompt_ids, "completion_ids": ids, "logprobs": logprobs}

        sharing = self.shared_prefix_group() > 1  # the verification rows' reference / old log-probs: a prompt once
        with swapped(self, _sharing_prompt_prefix=sharing):
            verified, scratch_metrics = trl_scoring_with(
                self,
                rows,
                rollout=rollout,
                reward_func=verification.verification_reward,
                reward_name="verification",
                group_size=n,
            )

        # 3. metrics on the gathered verifications
        device = output["completion_ids"].device
        local = torch.tensor(
            [
                [
                    verification.parse_rating(self._tokenizer.decode(ids, skip_special_tokens=True)),
                    row["verify_target"],
                ]
                for ids, row in zip(verified["completion_ids"].tolist(), rows)
            ],
            dtype=torch.float32,
            device=device,
        ).view(-1, 2)  # (per_rank * n, 2): rating, target
        gathered = self.accelerator.gather(local).cpu()  # (B_v * n, 2)
        self._log_verification_metrics(gathered[:, 0], gathered[:, 1], [r[2] for r in records], scratch_metrics)

        beta = self.beta
        return concat_batches(output, verified, self._tokenizer.pad_token_id, kl_weight=beta)

    def _log_verification_metrics(self, ratings, targets, solution_scores, scratch_metrics) -> None:
        """`selfcorrect/verify_*` metrics of one verification pass; warns when no verification gave a rating."""
        metrics = self._metrics["train"]
        stats = verification_accuracy(ratings, targets)
        rewards = verification_rewards(ratings, targets)
        no_rating = int(torch.isnan(ratings).sum())
        self._verifications_without_rating = getattr(self, "_verifications_without_rating", 0) + no_rating
        self._verifications_total = getattr(self, "_verifications_total", 0) + ratings.numel()
        values = {
            "verify_acc": stats["acc"],
            "verify_valid_rating_frac": stats["valid_rating_frac"],
            "verify_no_rating_frac": no_rating / max(ratings.numel(), 1),
            "verify_reward": rewards.mean().item(),
            "solution_reward": sum(solution_scores) / max(len(solution_scores), 1),
            "verify_mean_length": (scratch_metrics["train"].get("completions/mean_length") or [float("nan")])[-1],
        }
        for score in OUTCOME_SCORES:
            values[f"verify_acc_score_{score:g}"] = stats[f"acc_score_{score:g}"]
            values[f"verify_target_frac_{score:g}"] = (targets == score).float().mean().item()
        for name, value in values.items():
            if not math.isnan(value):  # a class absent from this batch is not logged as NaN
                metrics[f"selfcorrect/{name}"].append(value)
        if no_rating == ratings.numel():
            logger.warning(
                "none of the %d verifications this step gave a boxed rating (%d of %d so far): raise "
                "`verification_max_length` or check `verification_template`; they all get reward -1.",
                ratings.numel(),
                self._verifications_without_rating,
                self._verifications_total,
            )


@functools.cache
def with_verification(trainer_cls: type[MultiAttemptGRPOTrainer]) -> type[SelfVerification]:
    """`trainer_cls` with RISE's verification pass composed in: a subclass whose class chain puts `SelfVerification`
    right above `MultiAttemptGRPOTrainer`, below the method's own overrides (so a method's batch and loss see the
    verification rows, as `CritiqueGRPOTrainer`'s refinement mask does). One class per trainer class."""
    if not (isinstance(trainer_cls, type) and issubclass(trainer_cls, MultiAttemptGRPOTrainer)):
        raise TypeError(f"verification composes with a MultiAttemptGRPOTrainer subclass; got {trainer_cls!r}.")
    if trainer_cls.verifies:
        return trainer_cls
    if trainer_cls is MultiAttemptGRPOTrainer:
        return SelfVerification
    namespace = {"__module__": __name__, "__qualname__": f"Verifying{trainer_cls.__qualname__}"}
    namespace["__doc__"] = f"{trainer_cls.__name__} with RISE's verification pass (`with_verification`)."
    return type(f"Verifying{trainer_cls.__name__}", (trainer_cls, SelfVerification), namespace)
