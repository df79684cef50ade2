"""The private parts of TRL's `GRPOTrainer` this package relies on, named in one place (TRL 1.16).

TRL has public seams for a custom rollout (`rollout_func`) and reward functions, but not for everything the
multi-attempt trainers change: they override or call the methods in `METHODS` and read, write or swap the instance
attributes in `ATTRIBUTES` (and `WHEN_CONFIGURED`), which TRL may rename or change in any release. `tests/trainers/test_trl_private.py` checks
every name against the installed TRL (each method's leading parameters, each attribute on a built trainer) and that its
version is the pinned `TRL_MINOR`, so that a TRL upgrade fails that one test, naming what moved, rather than training
wrong.

The code that swaps TRL's attributes lives here too: `trl_scoring_with` runs TRL's own `_generate_and_score_completions`
with another rollout, reward function, group size and fresh log buffers (RISE's verification pass).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict, deque
from typing import Any

import torch

TRL_MINOR = "1.16"  # the pinned release line (pyproject.toml: trl>=1.16,<1.17)

# GRPOTrainer methods we override (o) or call (c), each with its leading parameters after `self`, in TRL's order.
METHODS: dict[str, tuple[str, ...]] = {
    "_generate_and_score_completions": ("inputs",),  # o: the step (base); c: the verification pass
    "_calculate_rewards": ("inputs", "prompts", "completions", "completion_ids_list"),  # o: per-attempt scoring
    "_compute_loss": ("model", "inputs"),  # o: per-attempt KL, Critique-GRPO's shaping term
    "_get_per_token_logps_and_entropies": (  # o: length groups, the loss forward's log-probs, shared prompts
        "model",
        "input_ids",
        "attention_mask",
        "logits_to_keep",
        "batch_size",
        "compute_entropy",
        "compute_aux_loss",
    ),
    "_generate_single_turn": ("prompt_ids", "images", "multimodal_fields", "num_generations"),  # c: every attempt
    "_tokenize_prompts": ("prompts",),  # c: prompt ids for the rollout and the verification prompts
    "_log_completion_extra": ("column", "values"),  # o: per-attempt names of what reward functions log
    "_log_metric": ("name", "value"),  # o: the same for metrics
}

# GRPOTrainer instance attributes (set in its `__init__`) that we read, write or swap for one call.
ATTRIBUTES: tuple[str, ...] = (
    "_metrics",  # {"train" | "eval": {name: [values]}}: our metrics; swapped in the verification pass
    "_logs",  # the completions table's buffers (`fresh_logs` builds their layout): swapped
    "_pending_extra_logs",  # columns for the completions table, flushed after `_calculate_rewards`: written, swapped
    "_pending_metrics",  # reward functions' metrics, flushed likewise: swapped
    "_tokenizer",  # the processing class's tokenizer
    "_entropy_bonus_enabled",  # an entropy bonus needs the whole micro-batch in one loss pass
    "top_entropy_quantile",  # likewise for the entropy-quantile mask
    "aux_loss_enabled",  # likewise for an MoE router aux loss
    "beta",  # the uniform KL coefficient; 0.0 for one loss call with per-attempt KL (`_trl_loss_parts`)
    "loss_type",  # how TRL reduces its loss (`algos.aggregate_token_loss` repeats it)
    "rollout_func",  # set to the episode engine; swapped in the verification pass
    "num_generations",  # group size: swapped in the verification pass
    "num_generations_eval",
    "reward_funcs",  # swapped in the verification pass
    "reward_func_names",
    "reward_processing_classes",
    "reward_weights",
    "scale_rewards",  # TRL's std scaling, reused by the methods' group normalizations
    "eos_token_ids",  # every id that ends an attempt
    "chat_template",
    "chat_template_kwargs",
    "generation_config",  # its `max_new_tokens` is the per-attempt cap while an attempt generates
    "use_vllm",
)

# Instance attributes TRL sets only in some configurations (checked against its source).
WHEN_CONFIGURED: tuple[str, ...] = (
    "async_loop",  # async reward functions run on it
    "vllm_generation",  # under vLLM: its `max_completion_length` is the per-attempt cap
)


def fresh_logs(size: int) -> dict[str, Any]:
    """Empty buffers in the layout of TRL's `_logs` (the completions table), each keeping the last `size` rows."""
    return {
        "images": deque(maxlen=size),
        "prompt": deque(maxlen=size),
        "completion": deque(maxlen=size),
        "rewards": defaultdict(lambda: deque(maxlen=size)),
        "advantages": deque(maxlen=size),
        "extra": defaultdict(lambda: deque(maxlen=size)),
    }


@contextlib.contextmanager
def swapped(obj, **values):
    """Set attributes for the duration of the block (instance attributes shadow methods); restore them after."""
    saved = {name: obj.__dict__[name] for name in values if name in obj.__dict__}
    for name, value in values.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name in values:
            if name in saved:
                setattr(obj, name, saved[name])
            else:
                delattr(obj, name)


def trl_scoring_with(trainer, rows: list[dict[str, Any]], *, rollout, reward_func, reward_name: str, group_size: int):
    """TRL's own `_generate_and_score_completions` over `rows`, with `rollout` as its `rollout_func`, one reward
    function, groups of `group_size` and TRL's own `_calculate_rewards` (not the multi-attempt scoring); its metrics
    and completions-table rows go to scratch buffers, not the trainer's. Returns (TRL's output batch, the scratch
    metrics {"train" | "eval": {name: [values]}})."""
    from trl import GRPOTrainer

    metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    world = trainer.accelerator.num_processes
    with swapped(
        trainer,
        rollout_func=rollout,
        num_generations=group_size,
        num_generations_eval=group_size,
        reward_funcs=[reward_func],
        reward_func_names=[reward_name],
        reward_processing_classes=[None],
        reward_weights=torch.ones(1),
        _calculate_rewards=lambda *args: GRPOTrainer._calculate_rewards(trainer, *args),
        _metrics=metrics,
        _logs=fresh_logs(max(len(rows) * world, 1)),
        _pending_extra_logs=defaultdict(list),
        _pending_metrics=defaultdict(list),
    ):
        output = GRPOTrainer._generate_and_score_completions(trainer, rows)
    return output, metrics


def logps_call_options(args: tuple, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The options of a `_get_per_token_logps_and_entropies` call after `logits_to_keep`, as keywords, and whether only
    TRL's own forward can serve it (multimodal inputs, or an MoE aux loss)."""
    plain = ("batch_size", "compute_entropy", "compute_aux_loss")  # TRL's positional order after logits_to_keep
    extra = dict(zip(plain, args)) | kwargs
    trl_only = bool(extra.get("compute_aux_loss")) or any(v is not None for k, v in extra.items() if k not in plain)
    return extra, trl_only
