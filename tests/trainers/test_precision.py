"""bf16 mixed precision (`precision` / `bf16: true`) on CPU: one step under bf16 agrees with fp32, master weights and
optimizer state stay fp32, and a recipe asking for bf16 where the CPU lacks it fails at start, naming the field.

The agreement test gives both precisions the same sampled completions (a scripted `_generate_single_turn`: the tokens
depend only on the call and the row, never on the model), so sampling noise cannot enter; everything after sampling
runs in each precision: the reference log-probs (beta > 0), the rewards and advantages, the loss forward and backward.

Tolerance: bf16 keeps 8 significant bits, a relative rounding error of at most 2^-8 = 3.9e-3 per rounded value. Under
autocast every matmul rounds its inputs (activations and a bf16 copy of the weights) and accumulates in fp32; a
gradient passes through ~10 such matmuls in the tiny 2-layer model (forward and backward); independent roundings add
in quadrature, sqrt(10) x 2^-8 = 1.2e-2 at worst, and round-to-nearest errors average well below their bound
(measured: 2.4e-3 for GRPO, 2.8e-3 for SCoRe). We allow 2e-2 relative in norm (5 units of 2^-8) and, for direction, a
cosine similarity of at least 0.999. The loss value of a first step says little (importance ratio 1, advantages of
zero mean per group, KL 0 to a reference equal to the policy: ~1e-8 in both), so the per-token log-probs the loss
reads are compared instead: |error| < 2e-2 for log-probs near -11 (a half unit of 2^-8 at that scale; measured
2.8e-3 at most).
"""

from __future__ import annotations

import random

import pytest
import torch

from selfcorrect.precision import AutocastGeneration, cpu_bf16_missing
from tests.helpers import build_trainer, write_recipe

needs_bf16 = pytest.mark.skipif(cpu_bf16_missing() is not None, reason="this CPU has no native bf16")

GRAD_REL_TOL = 2e-2  # ||g_bf16 - g_fp32|| / ||g_fp32||: 5 units of bf16 rounding (2^-8), see the module docstring
GRAD_MIN_COSINE = 0.999
LOSS_ABS_TOL = 1e-5
LOGP_ABS_TOL = 2e-2  # |logp_bf16 - logp_fp32| per token, logps ~ -11 (random model over 49k tokens): 2^-8 x 5


def scripted_generation(trainer, length: int = 6):
    """Replace the trainer's sampling by tokens that depend only on (call, row): both precisions see the same ones.
    Tokens avoid the special ids, so no attempt stops early."""
    calls = {"n": 0}
    vocab = [i for i in range(200, 4000) if i not in trainer.eos_token_ids]

    def generate(prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        calls["n"] += 1
        rows = [
            [random.Random(calls["n"] * 1000 + i).choice(vocab) for _ in range(length)] for i in range(len(prompt_ids))
        ]
        return rows, None

    trainer._generate_single_turn = generate


def one_step_loss_and_grads(write_recipe_in, bf16: bool):
    """Build the recipe's trainer in `bf16` or fp32, score one scripted batch, and return (loss, {name: grad})."""
    trainer = build_trainer(write_recipe_in(bf16))
    scripted_generation(trainer)
    rows = [trainer.train_dataset[i % 2] for i in range(trainer.args.per_device_train_batch_size)]  # 2 prompts x G
    model = trainer.model
    model.train()
    inputs = trainer._generate_and_score_completions(rows)
    trainer.current_gradient_accumulation_steps = 1  # set by `train()`, which this test does not run
    loss = trainer.compute_loss(model, inputs)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    with torch.no_grad():  # the log-probs the loss reads, as the loss computes them (TRL's autocast region)
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, inputs["completion_ids"].size(1)
        )
    return loss.detach().item(), grads, logps[inputs["completion_mask"].bool()], trainer


@pytest.fixture
def recipes(tmp_path, tiny_model_dir):
    def factory(method: str, **fields):
        def write(bf16: bool):
            return write_recipe(
                tmp_path / f"{method}-{'bf16' if bf16 else 'fp32'}",
                tiny_model_dir,
                method=method,
                bf16=bf16,
                beta=0.04,  # a reference model: its log-probs are computed in the run's precision too
                **fields,
            )

        return write  # bf16 -> the recipe

    return factory


@needs_bf16
@pytest.mark.parametrize(
    "method, fields",
    [
        ("grpo", {}),
        ("score", dict(max_attempts=2, max_attempt_length=6, max_completion_length=96, score_stage=2)),
    ],
    ids=["grpo", "score"],
)
def test_one_step_under_bf16_agrees_with_fp32(recipes, method, fields):
    recipe = recipes(method, **fields)
    loss32, grads32, logps32, trainer32 = one_step_loss_and_grads(recipe, bf16=False)
    loss16, grads16, logps16, trainer16 = one_step_loss_and_grads(recipe, bf16=True)
    assert not trainer32.accelerator.native_amp and trainer16.accelerator.native_amp  # autocast only under bf16
    assert loss16 == pytest.approx(loss32, abs=LOSS_ABS_TOL)  # ~0 at a first step, see the module docstring
    logp_error = (logps16 - logps32).abs()
    assert logps16.dtype == torch.float32 and logp_error.max() < LOGP_ABS_TOL, f"log-prob error {logp_error.max():.2e}"
    assert grads16.keys() == grads32.keys() and grads32
    flat32 = torch.cat([g.flatten() for g in grads32.values()])
    flat16 = torch.cat([grads16[name].flatten() for name in grads32])
    assert flat16.dtype == torch.float32  # gradients of fp32 master weights
    assert flat32.norm() > 0
    relative = ((flat16 - flat32).norm() / flat32.norm()).item()
    cosine = torch.nn.functional.cosine_similarity(flat16, flat32, dim=0).item()
    print(
        f"{method}: log-prob error max {logp_error.max():.2e} mean {logp_error.mean():.2e}, gradient relative error "
        f"{relative:.2e}, cosine {cosine:.6f}"
    )
    assert relative < GRAD_REL_TOL, f"relative gradient error {relative:.2e}"
    assert cosine > GRAD_MIN_COSINE, f"cosine {cosine:.5f}"
    assert relative > 0  # bf16 did run: fp32 would agree to the last bit


@needs_bf16
def test_bf16_step_keeps_fp32_master_weights_and_optimizer_state(tmp_path, tiny_model_dir):
    trainer = build_trainer(write_recipe(tmp_path, tiny_model_dir, method="grpo", bf16=True, max_steps=1))
    scripted_generation(trainer)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    params = dict(trainer.model.named_parameters())
    assert all(p.dtype == torch.float32 for p in params.values())
    changed = [name for name, p in params.items() if not torch.equal(p.detach(), before[name])]
    assert len(changed) == len(params)  # every parameter trained
    states = [s for s in trainer.optimizer.state.values() if s]
    assert states and all(
        v.dtype == torch.float32 for s in states for k, v in s.items() if k in ("exp_avg", "exp_avg_sq")
    )


def test_recipe_asking_for_bf16_on_a_cpu_without_it_fails_naming_the_field(tmp_path, tiny_model_dir, monkeypatch):
    from selfcorrect import precision
    from selfcorrect.configs import RecipeError, parse_recipe

    monkeypatch.setattr(precision, "cpu_bf16_missing", lambda: "this CPU (test) has none of the bf16 instructions")
    recipe = write_recipe(tmp_path, tiny_model_dir, method="grpo")
    with pytest.raises(RecipeError, match=r"`precision: bf16` asks for bf16.*this CPU \(test\)"):
        parse_recipe(["--config", str(write_recipe(tmp_path / "p", tiny_model_dir, precision="bf16", bf16=None))])
    with pytest.raises(RecipeError, match=r"`bf16: true` \(TRL's default when not set\).*precision: auto"):
        parse_recipe(["--config", str(recipe), "--bf16", "true"])
    _, _, script_args, training_args = parse_recipe(
        ["--config", str(write_recipe(tmp_path / "a", tiny_model_dir, precision="auto", bf16=None))]
    )
    assert script_args.precision == "fp32" and training_args.bf16 is False


def test_precision_auto_picks_bf16_where_supported_and_conflicts_are_named(tmp_path, tiny_model_dir, monkeypatch):
    from selfcorrect import precision
    from selfcorrect.configs import RecipeError, parse_recipe

    monkeypatch.setattr(precision, "cpu_bf16_missing", lambda: None)
    recipe = write_recipe(tmp_path, tiny_model_dir, precision="auto", bf16=None)
    _, _, script_args, training_args = parse_recipe(["--config", str(recipe)])
    assert script_args.precision == "bf16" and training_args.bf16 is True and not training_args.fp16
    _, _, script_args, training_args = parse_recipe(["--config", str(recipe), "--precision", "fp32"])
    assert script_args.precision == "fp32" and training_args.bf16 is False
    both = write_recipe(tmp_path / "both", tiny_model_dir, precision="auto", bf16=False)
    with pytest.raises(RecipeError, match="`precision: auto` sets `bf16: true`.*also says `bf16: false`"):
        parse_recipe(["--config", str(both)])
    # the command line overrides the file field by field: `--bf16 false` over a recipe's `precision: auto`, and
    # `--precision` over a recipe's `bf16`
    _, _, script_args, training_args = parse_recipe(["--config", str(recipe), "--bf16", "false"])
    assert script_args.precision == "fp32" and training_args.bf16 is False
    _, _, script_args, training_args = parse_recipe(["--config", str(both), "--precision", "bf16"])
    assert script_args.precision == "bf16" and training_args.bf16 is True
    with pytest.raises(RecipeError, match="fp32 master weights.*`dtype: bfloat16`"):
        parse_recipe(["--config", str(recipe), "--dtype", "bfloat16"])
    bf16_weights = write_recipe(tmp_path / "w", tiny_model_dir, dtype="bfloat16", bf16=None)
    with pytest.raises(RecipeError, match="fp32 master weights.*`dtype: bfloat16`"):
        parse_recipe(["--config", str(bf16_weights), "--precision", "bf16"])
    with pytest.raises(RecipeError, match="`precision` must be one of auto, bf16, fp32"):
        parse_recipe(["--config", str(recipe), "--precision", "half"])
    # TRL's fields alone (precision null): the resolved value is still recorded for evaluation and sampling
    _, _, script_args, _ = parse_recipe(["--config", str(write_recipe(tmp_path / "t", tiny_model_dir))])
    assert script_args.precision == "fp32"  # TINY_TRAINING says bf16: false


@needs_bf16
def test_generation_runs_in_one_autocast_region_per_call(tmp_path, tiny_model_dir, monkeypatch):
    """Our trainers open one bf16 autocast region around each generation call (each weight cast once per call, not
    once per token's forward); without mixed precision, none."""
    from trl import GRPOTrainer as TRLGRPOTrainer

    from selfcorrect.trainers import METHODS

    seen = []

    def record(self, prompt_ids, *args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return [[1] for _ in prompt_ids], None

    monkeypatch.setattr(TRLGRPOTrainer, "_generate_single_turn", record)
    for bf16 in (True, False):
        trainer = build_trainer(write_recipe(tmp_path / str(bf16), tiny_model_dir, method="grpo", bf16=bf16))
        trainer._generate_single_turn([[1, 2]], None, {}, 1)
    assert seen == [(True, torch.bfloat16), (False, torch.bfloat16)]
    online = [m.trainer for name, m in METHODS.items() if m.offline_columns is None]
    assert all(issubclass(cls, AutocastGeneration) for cls in online)  # every trainer that generates
