"""Critique-GRPO: shaping weight, group composition, mixed-group advantages, refinements under the original prompt,
the loss on refinement rows, training end to end, and R3L positive amplification on any trainer."""

from __future__ import annotations

import math

import pytest
import torch

from selfcorrect.algos import (
    choose_refinements,
    mixed_group_advantages,
    policy_shaping_loss,
    policy_shaping_weight,
    refinement_candidates,
    scale_positive_advantages,
)
from selfcorrect.configs import parse_recipe
from selfcorrect.trainers import CritiqueGRPOTrainer
from selfcorrect.trainers.critique import REFINEMENT_TEMPLATE
from tests.helpers import build_trainer, parity_judge, unchanged_parameters, write_recipe

NAN = float("nan")
CRITIQUE = dict(method="critique_grpo", max_attempt_length=8)


class ScriptedCritique(CritiqueGRPOTrainer):
    def judge(self, text, row):
        return parity_judge(text, row)


# --- math ---------------------------------------------------------------------------------------------------------------


def test_shaping_weight_values_and_gradient():
    p = torch.tensor([0.9, 0.1, 0.01])
    logps = p.log().requires_grad_()
    rho = policy_shaping_weight(logps, gamma=0.1)
    assert rho.tolist() == pytest.approx([0.9 / 1.0, 0.5, 0.01 / 0.11], rel=1e-6)
    rho.sum().backward()
    # d rho / d logp = gamma * p / (p + gamma)^2
    assert logps.grad.tolist() == pytest.approx([0.1 * 0.9 / 1.0, 0.1 * 0.1 / 0.04, 0.1 * 0.01 / 0.11**2], rel=1e-5)


def test_shaping_loss_is_minus_advantage_times_rho_and_broadcasts_rows():
    logps = torch.log(torch.tensor([[0.5, 0.2], [0.4, 0.1]])).requires_grad_()
    loss = policy_shaping_loss(logps, torch.tensor([2.0, -1.0]), gamma=0.1)  # (B,) advantages
    expected = [[-2 * 0.5 / 0.6, -2 * 0.2 / 0.3], [0.4 / 0.5, 0.1 / 0.2]]
    assert torch.allclose(loss, torch.tensor(expected), rtol=1e-6)
    loss.sum().backward()
    # a positive advantage pushes logp up (negative gradient of the loss), a negative one down
    assert (logps.grad[0] < 0).all() and (logps.grad[1] > 0).all()
    assert logps.grad[0, 1].item() == pytest.approx(-2 * 0.1 * 0.2 / 0.3**2, rel=1e-5)


def test_candidates_only_wrong_responses_of_refined_groups():
    correct = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 0.0, NAN, 1.0])  # group 1: no correct; group 2: two correct
    paper = refinement_candidates(correct, 4, "no_correct")
    assert paper.tolist() == [True, True, True, True, False, False, False, False]
    every = refinement_candidates(correct, 4, "all")
    assert every.tolist() == [True, True, True, True, False, True, True, False]  # NaN (unparseable gold) is wrong
    capped = refinement_candidates(correct, 4, "all", max_per_group=1)
    assert capped.tolist() == [True, False, False, False, False, True, False, False]
    with pytest.raises(ValueError, match="refine_groups"):
        refinement_candidates(correct, 4, "some")


def test_choose_prefers_correct_refinements_then_group_order():
    candidates = torch.tensor([True, True, True, True, False, True, True, False])
    refined_ok = torch.tensor([0.0, 0.0, 1.0, 1.0, NAN, 0.0, 0.0, NAN])
    assert choose_refinements(candidates, refined_ok, 4, k=1).tolist() == [0, 0, 1, 0, 0, 1, 0, 0]
    assert choose_refinements(candidates, refined_ok, 4, k=3).tolist() == [1, 0, 1, 1, 0, 1, 1, 0]
    # a group with fewer candidates than k gets what it has; never a non-candidate
    assert choose_refinements(candidates, refined_ok, 4, k=4).tolist() == [1, 1, 1, 1, 0, 1, 1, 0]


def test_mixed_group_advantages_hand_built_groups():
    # group 1 (no correct response): 3 wrong responses (reward 0) + 1 correct refinement (reward 1): mean 0.25
    # group 2 (some correct): 2 correct, 1 wrong, 1 refinement with reward 0.5: mean 0.625; no std division
    rewards = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.5])
    adv = mixed_group_advantages(rewards, 4)
    assert adv.tolist() == pytest.approx([-0.25, -0.25, -0.25, 0.75, 0.375, 0.375, -0.625, -0.125])
    assert scale_positive_advantages(adv, 3.0).tolist() == pytest.approx(
        [-0.25, -0.25, -0.25, 2.25, 1.125, 1.125, -0.625, -0.125]
    )
    assert scale_positive_advantages(adv, 1.0) is adv


# --- configuration --------------------------------------------------------------------------------------------------


def test_paper_defaults(tmp_path, tiny_model_dir):
    _, _, _, args = parse_recipe(["--config", str(write_recipe(tmp_path, tiny_model_dir, method="critique_grpo"))])
    assert (args.num_refinements, args.refine_groups, args.shaping_gamma) == (1, "no_correct", 0.1)
    assert (args.beta, args.loss_type, args.scale_rewards, args.critic) == (0.0, "dr_grpo", "none", "indicative_gt")


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(num_refinements=4), "num_refinements"),  # k >= G = 4
        (dict(num_refinements=0), "num_refinements"),
        (dict(refine_groups="some"), "refine_groups"),
        (dict(refinement_template="Fix it: {question} {response}"), r"refinement_template.*critique"),
        (dict(refinement_template="{question} {response} {critique} {answer}"), "answer"),
        (dict(max_attempts=2), "max_attempts"),
        (dict(shaping_gamma=0.0), "shaping_gamma"),
        (dict(num_refinements=2, max_refinements_per_group=1), "max_refinements_per_group"),
        (dict(critic="gpt"), "critic"),
        (dict(critic="endpoint"), "critic_url"),
        (dict(critic="endpoint", critic_url="localhost:8000"), "critic_url"),
        (dict(critic="model"), "critic_model"),
        (dict(critic="self", critic_template="Judge this."), "critic_template"),
        (dict(critic="endpoint", critic_url="http://x", critic_timeout=0.0), "critic_timeout"),
        (dict(critic_on_error="ignore"), "critic_on_error"),
        (dict(positive_advantage_scale=0.0), "positive_advantage_scale"),
    ],
)
def test_bad_settings_fail_before_training(tmp_path, tiny_model_dir, fields, message):
    with pytest.raises(ValueError, match=message):
        parse_recipe(["--config", str(write_recipe(tmp_path, tiny_model_dir, method="critique_grpo", **fields))])


# --- in a real batch ---------------------------------------------------------------------------------------------------


def _batch(trainer, groups=2):
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(4 * groups)]  # as the RepeatSampler orders them
    trainer.model.train()
    return rows, trainer._generate_and_score_completions(rows)


def test_refinements_join_groups_under_the_original_prompt(tmp_path, tiny_model_dir):
    recipe = write_recipe(tmp_path, tiny_model_dir, refine_groups="all", num_refinements=2, **CRITIQUE)
    trainer = build_trainer(recipe, ScriptedCritique)
    trainer.generation_config.sequence_bias = [[[trainer.processing_class.eos_token_id], 9.0]]
    rows, out = _batch(trainer)
    tokenizer = trainer.processing_class
    flags = out["refinement_mask"].tolist()
    assert flags == [bool(row["is_refinement"]) for row in rows] and any(flags)
    assert out["completion_ids"].size(0) == 8  # refinements replace rows: the batch shape is GRPO's
    for g in range(2):
        group = rows[4 * g : 4 * g + 4]
        placed = sum(r["is_refinement"] for r in group)
        critiqued = sum(1 for r in group if r["critique"])  # the wrong sampled responses ("all" mode)
        assert placed == min(2, critiqued)
        assert all(r["critique"] for r in group if r["is_refinement"])
        # all prompt rows of the group are the ORIGINAL prompt's tokens, refinement rows included
        prompts = out["prompt_ids"][4 * g : 4 * g + 4]
        assert all(torch.equal(prompts[0], p) for p in prompts)
        original = trainer._tokenize_prompts([group[0]["prompt"]])[0][0]
        assert prompts[0][out["prompt_mask"][4 * g].bool()].tolist() == list(original)
    for b, row in enumerate(rows):
        length = int((out["completion_mask"][b]).sum())
        text = tokenizer.decode(out["completion_ids"][b, :length], skip_special_tokens=True)
        if row["is_refinement"]:
            assert text == row["refinement"] == row["attempt_texts"][0]
            assert row["critique"] == f"The generated solution is incorrect. The ground truth is {row['solution']}."
        else:
            assert text == row["response"] == row["attempt_texts"][0]
    # the completions table shows each row's sampled response, its critique and the refinement that replaced it
    table = trainer._logs["extra"]
    for column in ("response", "critique", "refinement"):
        stored = list(table[column])  # TRL keeps the last rows only (a deque)
        assert stored and stored == [row[column] for row in rows][-len(stored) :]
    # hand computation of the mixed-group advantage (test reward: distinct characters / 10, no std division)
    rewards = torch.tensor([len(set(row["attempt_texts"][0])) / 10.0 for row in rows])
    for b in range(8):
        group = slice(b // 4 * 4, b // 4 * 4 + 4)
        assert out["advantages"][b, 0].item() == pytest.approx((rewards[b] - rewards[group].mean()).item(), abs=1e-5)


def test_refinement_prompt_holds_question_response_and_critique(tmp_path, tiny_model_dir):
    trainer = build_trainer(write_recipe(tmp_path, tiny_model_dir, **CRITIQUE), ScriptedCritique)
    row = dict(trainer.train_dataset[0])
    messages = trainer.refinement_prompt(row, "I think 5.", "The generated solution is incorrect.")
    assert messages[0] == row["prompt"][0] and messages[0]["role"] == "system"
    question = row["prompt"][-1]["content"]
    assert messages[-1] == {
        "role": "user",
        "content": REFINEMENT_TEMPLATE.replace("{question}", question)
        .replace("{response}", "I think 5.")
        .replace("{critique}", "The generated solution is incorrect."),
    }


def test_no_correct_mode_refines_only_groups_without_a_correct_response(tmp_path, tiny_model_dir):
    recipe = write_recipe(tmp_path, tiny_model_dir, **CRITIQUE)
    trainer = build_trainer(recipe, ScriptedCritique)
    trainer.generation_config.sequence_bias = [[[trainer.processing_class.eos_token_id], 9.0]]
    seen = set()
    for _ in range(4):
        rows, out = _batch(trainer, groups=4)
        for g in range(4):
            group = rows[4 * g : 4 * g + 4]
            # the judge's verdict on the sampled responses (the refinement replaced one of them)
            sampled_ok = [parity_judge(r["response"], r) and not r["attempt_truncated"][0] for r in group]
            sampled_ok = [ok for ok, r in zip(sampled_ok, group) if not r["is_refinement"]]
            placed = sum(r["is_refinement"] for r in group)
            if any(sampled_ok):
                assert placed == 0
            seen.add(placed)
            assert placed <= 1
    assert 1 in seen  # some group had no correct response and was refined


def test_loss_is_trl_loss_plus_shaping_on_refinement_rows(tmp_path, tiny_model_dir):
    """dr_grpo on-policy: sampled tokens contribute -A (ratio 1), refinement tokens -A * rho, over B * max_len."""
    recipe = write_recipe(tmp_path, tiny_model_dir, refine_groups="all", **CRITIQUE)
    trainer = build_trainer(recipe, ScriptedCritique)
    trainer.generation_config.sequence_bias = [[[trainer.processing_class.eos_token_id], 9.0]]
    _, out = _batch(trainer)
    assert out["refinement_mask"].any() and not out["refinement_mask"].all()
    trainer.current_gradient_accumulation_steps = 1
    loss = trainer.compute_loss(trainer.model, out)

    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
    attention = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
    with torch.no_grad():
        logits = trainer.model(input_ids=ids, attention_mask=attention).logits[:, :-1] / trainer.temperature
    length = out["completion_ids"].size(1)
    logps = logits[:, -length:].log_softmax(-1).gather(-1, out["completion_ids"].unsqueeze(-1)).squeeze(-1)  # (B, T)
    mask = out["completion_mask"] * out["tool_mask"]
    rho = logps.exp() / (logps.exp() + 0.1)
    weight = torch.where(out["refinement_mask"].unsqueeze(1), rho, torch.ones_like(rho))
    expected = (-out["advantages"] * weight * mask).sum() / (8 * trainer.max_completion_length)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-7)


def test_two_steps_through_main_change_every_parameter(tmp_path, tiny_model_dir, monkeypatch):
    from selfcorrect.train import main as train_main

    monkeypatch.setattr(CritiqueGRPOTrainer, "judge", lambda self, text, row: parity_judge(text, row))
    recipe = write_recipe(tmp_path, tiny_model_dir, refine_groups="all", **CRITIQUE)
    trainer = train_main(["--config", str(recipe)])
    assert trainer.state.global_step == 2
    logs = [log for log in trainer.state.log_history if "loss" in log]
    assert len(logs) == 2 and all(math.isfinite(log["loss"]) for log in logs)
    assert all(0 < log["selfcorrect/refined_group_frac"] <= 1 for log in logs)
    assert all("selfcorrect/refinement_success" in log and "selfcorrect/shaping_weight_mean" in log for log in logs)
    unchanged = unchanged_parameters(tiny_model_dir, tmp_path / "out")
    assert not unchanged, unchanged


def test_self_critique_is_regenerated_then_replaced_and_counted(tmp_path, tiny_model_dir):
    """A random policy writes critiques without a verdict: 1 + critic_retries critique calls, then the indicative
    critique replaces every one of them, and the metrics say so."""
    recipe = write_recipe(
        tmp_path, tiny_model_dir, refine_groups="all", critic="self", critic_retries=1, critic_max_tokens=6, **CRITIQUE
    )
    trainer = build_trainer(recipe, ScriptedCritique)
    calls = []
    original = trainer._generate_attempt

    def counting(contexts, max_new_tokens, attempt):
        calls.append((len(contexts), max_new_tokens))
        return original(contexts, max_new_tokens, attempt)

    trainer._generate_attempt = counting
    rows, _ = _batch(trainer)
    critiqued = sum(1 for row in rows if row["critique"])
    assert critiqued > 0
    # responses (8 contexts), two critique rounds (6 tokens), one refinement call (8 tokens)
    assert calls == [(8, 8), (critiqued, 6), (critiqued, 6), (critiqued, 8)]
    assert all(row["critique"] == "The generated solution is incorrect." for row in rows if row["critique"])
    metrics = trainer._metrics["train"]
    assert metrics["selfcorrect/critique_fallback"] == [1.0] and metrics["selfcorrect/critique_agreement"] == [0.0]
    assert trainer.critic.stats.regenerated == critiqued and trainer.critic.stats.fallbacks == critiqued


def test_positive_amplification_on_another_trainer(tmp_path, tiny_model_dir):
    """`positive_advantage_scale` works in every multi-attempt trainer: here single-attempt GRPO, no std scaling."""
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="multi_attempt",
        max_attempts=1,
        max_attempt_length=8,
        scale_rewards="none",
        positive_advantage_scale=3.0,
    )
    trainer = build_trainer(recipe)
    rows, out = _batch(trainer)
    rewards = torch.tensor([len(set(row["attempt_texts"][0])) / 10.0 for row in rows])
    for b in range(8):
        group = slice(b // 4 * 4, b // 4 * 4 + 4)
        centred = (rewards[b] - rewards[group].mean()).item()
        expected = 3.0 * centred if centred > 0 else centred
        assert out["advantages"][b, 0].item() == pytest.approx(expected, abs=1e-5)
    assert (out["advantages"][:, 0] > 0).any()
