"""REDI: offline reinforcement distillation from correct and incorrect traces (`method: redi`).

    selfcorrect redi-data --config recipes/demo/grpo.yaml --redi_samples 4 --redi_temperature 0.7 \\
        --redi_max_new_tokens 64 --max_train_samples 64 --output_dir outputs/demo-redi-data   # traces -> pairs
    selfcorrect train --config recipes/demo/redi_sft.yaml    # stage 1: SFT on the correct traces (`method: sft`)
    selfcorrect train --config recipes/demo/redi.yaml        # stage 2: REDI on (prompt, correct, incorrect) pairs

Xu et al. 2025, "Harnessing Negative Signals: Reinforcement Distillation from Teacher Data for LLM Reasoning".
Stage 2 minimizes, over pairs (x, y_w correct, y_l incorrect),

    L = -log pi(y_w|x) / |y_w| + alpha * log pi(y_l|x) / |y_l|          (alpha = 0.8, `redi_alpha`)

How it differs from GRPO: offline (no generation during training; the traces come from a teacher or from earlier
samples of the policy, labelled by the `accuracy` verifier), one pair per row instead of a group of G samples, no
advantage, no importance ratio or clipping, no KL and no reference model; the negative term is down-weighted
(alpha < 1) instead of being balanced by a baseline. How it differs from DPO / SimPO: no sigmoid of a margin and no
reference log-ratios; each term acts on its own length-normalized log-likelihood, so the gradient on the chosen trace
does not vanish once the margin is large.

Why `DPOTrainer` (TRL 1.16) and not the experimental `CPOTrainer`: DPOTrainer is TRL's maintained preference trainer.
It tokenizes conversational (prompt, chosen, rejected) rows with the chat template (prompt rendered with the generation
prompt, completions as the assistant turn), pads chosen and rejected into one batch, and scores completion tokens with a
fused LM head that never materializes the (B, T, V) logits, which matters for long reasoning traces. CPOTrainer is
reference-free too, but it renders chat templates to text and re-tokenizes with a prefix heuristic, builds the full
logits, and sits in `trl.experimental` (no API promise). DPOTrainer's one obstacle is its reference model: it builds
one unless PEFT is used or `precompute_ref_log_probs` is set. `REDIConfig` sets `precompute_ref_log_probs` and
`REDITrainer` overrides `_precompute_ref_logps` to return the dataset untouched, so no reference model is loaded and no
reference forward pass runs (checked in tests/trainers/test_redi.py); `_compute_loss` is replaced by the REDI loss
(`selfcorrect.algos.redi_loss`). Under FSDP DPOTrainer would still load a reference copy for the precompute, so REDI
refuses FSDP: use DDP or DeepSpeed ZeRO (launch/accelerate/). DPO-only fields (`beta`, `loss_type`, `ld_alpha`,
`use_weighting`, `sync_ref_model`, ...) have no effect. (TRL hashes the model's weights once at start for its
precompute cache key; that is the only cost of the flag.)

Logged (`redi/...`): `chosen_logps` and `rejected_logps` (mean length-normalized log-likelihood of the correct and
incorrect traces), `margin` (their difference), `accuracy` (fraction of pairs whose chosen trace is more likely per
token), plus TRL's `entropy` and `num_tokens`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from trl import DPOConfig, DPOTrainer

from ..algos import length_normalized_logps, redi_loss
from .registry import register_method


@dataclass
class REDIConfig(DPOConfig):
    """REDI stage 2; defaults follow Xu et al. 2025 (alpha 0.8, lr 1e-6, one epoch, warmup ratio 0.1, no KL)."""

    redi_alpha: float = field(
        default=0.8,
        metadata={
            "help": "Weight alpha of the incorrect-trace term, in [0, 1]: 0 is SFT on the correct traces, 1 pushes the "
            "incorrect ones down as hard as the correct ones up (the paper finds 1 unstable and uses 0.8)."
        },
    )
    learning_rate: float = field(default=1e-6, metadata={"help": "Paper stage 2: 1e-6."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Paper stage 2: one epoch."})
    warmup_steps: float = field(
        default=0.1, metadata={"help": "Paper stage 2: warmup ratio 0.1 (a float below 1 is a fraction of the steps)."}
    )
    precompute_ref_log_probs: bool = field(
        default=True,
        metadata={"help": "Kept True: REDI has no reference model (see selfcorrect/trainers/redi.py)."},
    )

    def __post_init__(self):
        if not 0.0 <= self.redi_alpha <= 1.0:
            raise ValueError(
                f"`redi_alpha` (REDI's weight of the incorrect trace) must be in [0, 1]; got {self.redi_alpha}. "
                "The paper uses 0.8."
            )
        if not self.precompute_ref_log_probs:
            raise ValueError(
                "`precompute_ref_log_probs` must stay true for `method: redi`: it is how TRL's DPOTrainer is told to "
                "keep no reference model (REDI computes none)."
            )
        super().__post_init__()


class REDITrainer(DPOTrainer):
    """REDI stage 2 on TRL's DPOTrainer with no reference model: see the module docstring."""

    _tag_names = ["trl", "selfcorrect", "redi"]
    _name = "REDI"

    def __init__(self, *args, **kwargs):
        training_args = kwargs.get("args")
        if training_args is not None and (training_args.fsdp or os.environ.get("ACCELERATE_USE_FSDP") == "true"):
            raise ValueError(
                "`method: redi` does not support FSDP: TRL's DPOTrainer would load a reference model under FSDP. "
                "Use DDP or DeepSpeed ZeRO (launch/accelerate/zero2.yaml, zero3.yaml)."
            )
        super().__init__(*args, **kwargs)

    def _precompute_ref_logps(self, dataset, name, batch_size):
        """No reference: the rows are used as they are (DPOTrainer would run a reference forward pass over them)."""
        return dataset

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        completion_mask = inputs["completion_mask"]  # (2P, L): rows [chosen_1..P, rejected_1..P], 1 on trace tokens
        model_kwargs = {k: v for k, v in inputs.items() if k not in ("completion_mask", "labels")}
        model_kwargs["use_cache"] = False
        if self.aux_loss_enabled:
            model_kwargs["output_router_logits"] = True
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)  # (2P, L)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        shift_mask = completion_mask[:, 1:]  # (2P, L-1): the tokens that are predicted
        per_token_logps = outputs.log_probs[:, -shift_mask.size(1) :]  # (2P, L-1), 0 where masked
        logps = (per_token_logps * shift_mask).sum(dim=1)  # (2P,)
        lengths = shift_mask.sum(dim=1)  # (2P,)
        chosen_logps, rejected_logps = logps.chunk(2)  # (P,), (P,)
        chosen_lengths, rejected_lengths = lengths.chunk(2)  # (P,), (P,)
        loss = redi_loss(chosen_logps, chosen_lengths, rejected_logps, rejected_lengths, self.args.redi_alpha)
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss

        with torch.no_grad():
            chosen = self.accelerator.gather(length_normalized_logps(chosen_logps, chosen_lengths))  # (P_all,)
            rejected = self.accelerator.gather(length_normalized_logps(rejected_logps, rejected_lengths))  # (P_all,)
            metrics = self._metrics[mode]
            metrics["redi/chosen_logps"].append(chosen.mean().item())
            metrics["redi/rejected_logps"].append(rejected.mean().item())
            metrics["redi/margin"].append((chosen - rejected).mean().item())
            metrics["redi/accuracy"].append((chosen > rejected).float().mean().item())
            entropy = (outputs.entropy[:, -shift_mask.size(1) :] * shift_mask).sum()
            tokens = self.accelerator.gather(torch.stack([entropy, shift_mask.sum().to(entropy.dtype)]).view(1, 2))
            tokens = tokens.sum(dim=0)  # (2,): summed entropy, completion tokens over ranks
            metrics["entropy"].append((tokens[0] / tokens[1].clamp(min=1)).item())
            if mode == "train":
                self._total_train_tokens += self.accelerator.gather(inputs["attention_mask"].sum()).sum().item()
            metrics["num_tokens"] = [self._total_train_tokens]
        if return_outputs:
            return loss, outputs
        return loss


register_method("redi", REDITrainer, REDIConfig, offline_columns=("chosen", "rejected"))
