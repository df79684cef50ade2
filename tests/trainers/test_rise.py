"""RISE self-verification: rubric and rewards on hand-made responses, verification rows in a real batch, a 2-step run,
the SCoRe composition and verification-weighted voting."""

from __future__ import annotations

import math

import pytest
import torch

from selfcorrect import verification
from selfcorrect.algos import (
    majority_vote,
    outcome_score,
    select_spread,
    verification_accuracy,
    verification_rewards,
    weighted_vote,
)
from selfcorrect.configs import RecipeError, parse_recipe
from selfcorrect.rewards import outcome_reward
from selfcorrect.train import main as train_main
from selfcorrect.trainers.self_verification import concat_batches
from selfcorrect.verification import (
    DEFAULT_VERIFICATION_TEMPLATE,
    parse_rating,
    verification_reward,
    verification_template,
)
from tests.helpers import build_trainer, scripted_rating, unchanged_parameters, write_recipe

RISE = dict(
    method="rise",
    verification_solutions=4,
    verification_generations=2,
    verification_max_length=12,
    max_attempt_length=8,
    max_completion_length=16,
)


# --- rewards and the rubric ----------------------------------------------------------------------------------------


def test_outcome_reward_values():
    completions = ["So \\boxed{13}.", "So \\boxed{12}.", "The answer is 13.", "So \\boxed{}.", "\\boxed{13.0}"]
    assert outcome_reward(completions, solution=["13"] * 5) == [1.0, -0.5, -1.0, -1.0, 1.0]
    assert [outcome_score(True, True), outcome_score(True, False), outcome_score(False, True)] == [1.0, -0.5, -1.0]
    assert outcome_score(True, None) == -0.5  # a gold that does not parse is not a correct answer


def test_ratings_are_compared_as_numbers():
    texts = [
        "Looks right. \\boxed{1}",
        "\\boxed{1.0}",
        "\\boxed{ -0.5 }",
        "\\boxed{-1.0}",
        "\\boxed{-\\frac{1}{2}}",
        "\\boxed{correct}",
        "I think it is right.",
        "\\boxed{}",
    ]
    ratings = [parse_rating(t) for t in texts]
    assert ratings[:5] == [1.0, 1.0, -0.5, -1.0, -0.5]
    assert ratings[5] == math.inf and math.isnan(ratings[6]) and math.isnan(ratings[7])
    targets = [1.0, -0.5, -0.5, -1.0, -0.5, 1.0, 1.0, -1.0]
    # right rating 1; boxed but different (or not a number) -0.5; no boxed rating -1
    assert verification_reward(texts, verify_target=targets) == [1.0, -0.5, 1.0, 1.0, 1.0, -0.5, -1.0, -1.0]
    conversational = [[{"role": "assistant", "content": t}] for t in texts[:2]]
    assert verification_reward(conversational, verify_target=[1.0, 1.0]) == [1.0, 1.0]


def test_verification_accuracy_per_class_against_hand_counts():
    ratings = torch.tensor([1.0, 1.0, -0.5, -1.0, float("nan"), 0.3, -1.0, float("inf")])  # (8,)
    targets = torch.tensor([1.0, -0.5, -0.5, -0.5, -1.0, -1.0, -1.0, 1.0])
    assert verification_rewards(ratings, targets).tolist() == [1.0, -0.5, 1.0, -0.5, -1.0, -0.5, 1.0, -0.5]
    stats = verification_accuracy(ratings, targets)
    assert stats["acc"] == pytest.approx(3 / 8)
    assert stats["acc_score_1"] == pytest.approx(1 / 2)  # rows 0 (right), 7 (not a number)
    assert stats["acc_score_-0.5"] == pytest.approx(1 / 3)  # rows 1, 2 (right), 3
    assert stats["acc_score_-1"] == pytest.approx(1 / 3)  # rows 4 (none), 5 (0.3), 6 (right)
    assert stats["valid_rating_frac"] == pytest.approx(5 / 8)  # 0.3, inf and the missing one are not valid


def test_template_states_the_rubric_and_bad_templates_fail():
    prompt = verification.verification_messages("What is 2 + 2?", "It is \\boxed{5}.", DEFAULT_VERIFICATION_TEMPLATE)
    text = prompt[0]["content"]
    assert prompt[0]["role"] == "user" and "What is 2 + 2?" in text and "It is \\boxed{5}." in text
    for rule in ("- 1 if", "- -0.5 if", "- -1 if", "\\boxed{}"):
        assert rule in text
    with pytest.raises(ValueError, match=r"verification_template.*must contain the placeholder\(s\) \['response'\]"):
        verification_template("Rate {question} in \\boxed{}.")
    with pytest.raises(ValueError, match=r"unknown placeholder\(s\) \['answer'\]"):
        verification_template("{question} {response} {answer} \\boxed{}")
    with pytest.raises(ValueError, match="boxed"):
        verification_template("Is {response} a right answer to {question}?")


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(verification_solutions=9), r"verification_solutions.*B_v = 9.*larger than the generation batch \(8"),
        (dict(verification_solutions=4, steps_per_generation=8, verification_generations=3), "steps_per_generation"),
        (dict(verification_generations=1), r"verification_generations.*at least 2.*group of one has advantage 0"),
        (dict(verification_solutions=0), "RISE needs `verification_solutions`"),
        (dict(verification_template="Rate {response}: \\boxed{}"), r"placeholder\(s\) \['question'\]"),
        (dict(verification_attempt=2), r"verification_attempt.*1\.\.max_attempts \(1\)"),
        (dict(verification_max_length=64), r"verification_max_length.*max_completion_length"),
        (dict(eval_verify_samples=4, eval_sample_temperature=0.0), "eval_sample_temperature"),
    ],
    ids=[
        "bv-larger-than-batch",
        "rows-vs-steps",
        "groups-of-one",
        "bv-zero",
        "template-slot",
        "attempt",
        "length",
        "eval-temperature",
    ],
)
def test_bad_settings_fail_before_training(tmp_path, fields, message):
    values = {**RISE, "per_device_train_batch_size": 8, **fields}
    recipe = write_recipe(tmp_path, tmp_path, **values)
    with pytest.raises(RecipeError, match=message):
        parse_recipe(["--config", str(recipe)])


# --- pure functions ------------------------------------------------------------------------------------------------


def test_select_spread_covers_groups_evenly_and_is_reproducible():
    picks = select_spread(12, 4, 5, torch.Generator().manual_seed(3))  # 3 groups of 4
    assert len(set(picks.tolist())) == 5
    per_group = torch.bincount(picks // 4, minlength=3)
    assert sorted(per_group.tolist()) == [1, 2, 2]
    assert torch.equal(picks, select_spread(12, 4, 5, torch.Generator().manual_seed(3)))  # same on every rank
    assert sorted(select_spread(8, 4, 8, torch.Generator().manual_seed(0)).tolist()) == list(range(8))
    with pytest.raises(ValueError, match="cannot pick 9 of 8"):
        select_spread(8, 4, 9)


def test_weighted_vote_follows_the_verifications():
    answers = ["12", "12", "12", " 13", "13", None]
    assert majority_vote(answers) == "12"
    # the two "13" samples are rated correct by their verifications, the "12" ones are not
    assert weighted_vote(answers, [0.0, 0.5, 0.0, 1.0, 1.0, 1.0]) == " 13"
    assert weighted_vote(answers, [0.0] * 6) == "12"  # no weight anywhere: the plain majority
    assert weighted_vote(["4", "4.0"], [1.0, 1.0]) == "4"  # a tie goes to the first seen
    assert weighted_vote([None, ""], [1.0, 1.0]) is None


def test_concat_batches_pads_and_counts_tokens():
    first = {
        "prompt_ids": torch.tensor([[0, 5, 6]]),
        "prompt_mask": torch.tensor([[0, 1, 1]]),
        "completion_ids": torch.tensor([[7, 8]]),
        "completion_mask": torch.tensor([[1, 1]]),
        "tool_mask": torch.tensor([[1, 0]]),
        "advantages": torch.tensor([[0.5, 0.0]]),
        "kl_weights": torch.tensor([[0.1, 0.0]]),
        "num_items_in_batch": torch.tensor(1.0),
    }
    second = {
        "prompt_ids": torch.tensor([[9, 9, 9, 9], [0, 0, 4, 4]]),
        "prompt_mask": torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]]),
        "completion_ids": torch.tensor([[1, 2, 3], [1, 0, 0]]),
        "completion_mask": torch.tensor([[1, 1, 1], [1, 0, 0]]),
        "advantages": torch.tensor([1.0, -1.0]),
        "num_items_in_batch": torch.tensor(4.0),
    }
    out = concat_batches(first, second, pad_token_id=0, kl_weight=0.01)
    assert out["prompt_ids"].tolist() == [[0, 0, 5, 6], [9, 9, 9, 9], [0, 0, 4, 4]]
    assert out["prompt_mask"].tolist() == [[0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]]
    assert out["completion_mask"].tolist() == [[1, 1, 0], [1, 1, 1], [1, 0, 0]]
    assert out["tool_mask"].tolist() == [[1, 0, 0], [1, 1, 1], [1, 1, 1]]
    assert out["advantages"].tolist() == [[0.5, 0.0, 0.0], [1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]]
    assert torch.allclose(out["kl_weights"], torch.tensor([[0.1, 0.0, 0.0], [0.01] * 3, [0.01] * 3]))
    assert out["num_items_in_batch"].item() == 5.0
    assert out["verification_rows"].tolist() == [False, True, True]
    with pytest.raises(NotImplementedError, match="pixel_values"):
        concat_batches({**first, "pixel_values": torch.zeros(1)}, second, pad_token_id=0)


# --- the trainer -----------------------------------------------------------------------------------------------------


def _rise_batch(tmp_path, tiny_model_dir, monkeypatch, **fields):
    """A RISE trainer on the tiny model and one real training batch: 2 groups of 4 solutions, scripted ratings."""
    monkeypatch.setattr(verification, "parse_rating", scripted_rating)
    recipe = write_recipe(tmp_path, tiny_model_dir, scale_rewards="none", beta=0.01, **{**RISE, **fields})
    trainer = build_trainer(recipe)
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]  # 2 groups of 4, the RepeatSampler's order
    trainer.model.train()
    return trainer, rows, trainer._generate_and_score_completions(rows)


def _record(monkeypatch, module, name: str) -> list:
    """Patch `module.name` to record what each call returns (the list returned)."""
    returned, real = [], getattr(module, name)

    def recording(*args, **kwargs):
        returned.append(real(*args, **kwargs))
        return returned[-1]

    monkeypatch.setattr(module, name, recording)
    return returned


@pytest.mark.parametrize(
    "composed",
    [{}, dict(advantage_mode="w_reinforce", positive_advantage_scale=3.0, reward_funcs=["accuracy"])],
    ids=["grpo", "w_reinforce+r3l"],
)
def test_verification_rows_join_the_batch(tmp_path, tiny_model_dir, monkeypatch, composed):
    """A real batch of 2 groups of 4 solutions: 4 solutions (2 per group) get 2 verifications each; the verification
    rows carry the verified solution in their prompt, group-relative advantages over their 2 verifications, full loss
    masks, and count in `num_items_in_batch`. An advantage mode and R3L act on the solutions' credit only: the
    verification rows keep TRL's group advantages (the README's composition table, RISE column)."""
    trainer, rows, out = _rise_batch(tmp_path, tiny_model_dir, monkeypatch, **composed)

    assert out["completion_ids"].size(0) == 8 + 4 * 2 and out["advantages"].shape == out["completion_ids"].shape
    assert out["prompt_ids"].size(0) == out["ref_per_token_logps"].size(0) == 16
    ver_rows = trainer._last_verification_rows
    assert len(ver_rows) == 8 and [r["verify_solution_index"] for r in ver_rows[::2]] == [
        r["verify_solution_index"] for r in ver_rows[1::2]
    ]  # each context twice in a row: one group
    picked = [r["verify_solution_index"] for r in ver_rows[::2]]
    assert sorted(p // 4 for p in picked) == [0, 0, 1, 1]  # spread over the two groups
    tokenizer = trainer.processing_class
    loss_mask = out["completion_mask"] * out["tool_mask"]  # (16, T)
    rewards, ratings = [], []
    for j, row in enumerate(ver_rows):
        solution = rows[row["verify_solution_index"]]
        prompt = tokenizer.decode(out["prompt_ids"][8 + j][out["prompt_mask"][8 + j].bool()])
        assert solution["attempt_texts"][0] in prompt and solution["problem"] in prompt
        answer = (solution["attempt_answers"][0] or "").strip()
        assert row["verify_target"] == outcome_score(bool(answer), solution["attempt_correct"][0])
        ids = out["completion_ids"][8 + j][out["completion_mask"][8 + j].bool()]
        assert loss_mask[8 + j].sum() == len(ids) > 0
        rating = scripted_rating(tokenizer.decode(ids, skip_special_tokens=True))
        ratings.append(rating)
        rewards.append(verification_rewards(torch.tensor([rating]), torch.tensor([row["verify_target"]])).item())
    rewards = torch.tensor(rewards).view(4, 2)  # (solutions, n)
    expected = (rewards - rewards.mean(dim=1, keepdim=True)).view(-1)  # scale_rewards none
    assert out["advantages"][8:, 0].tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    assert torch.equal(out["advantages"][8:], out["advantages"][8:, :1].expand(-1, out["advantages"].size(1)))
    assert out["num_items_in_batch"].item() == loss_mask.sum().item()  # solutions and verifications together
    logged = trainer._metrics["train"]
    assert logged["selfcorrect/verify_reward"][-1] == pytest.approx(rewards.mean().item())
    assert logged["selfcorrect/verify_no_rating_frac"][-1] == pytest.approx(sum(math.isnan(r) for r in ratings) / 8)
    trainer.current_gradient_accumulation_steps = 1
    loss = trainer.compute_loss(trainer.model, out)
    assert torch.isfinite(loss)


def test_two_steps_change_every_parameter_and_log_verification(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(verification, "parse_rating", scripted_rating)
    recipe = write_recipe(tmp_path, tiny_model_dir, **RISE)
    trainer = train_main(["--config", str(recipe)])
    assert trainer.state.global_step == 2
    unchanged = unchanged_parameters(tiny_model_dir, tmp_path / "out")
    assert not unchanged, unchanged
    logs = [log for log in trainer.state.log_history if "loss" in log]
    assert len(logs) == 2
    for log in logs:
        for key in (
            "verify_acc",
            "verify_valid_rating_frac",
            "verify_reward",
            "solution_reward",
            "verify_no_rating_frac",
        ):
            assert f"selfcorrect/{key}" in log
        assert 0.0 <= log["selfcorrect/verify_acc"] <= 1.0


def test_score_verifies_attempt_one_before_revising(tmp_path, tiny_model_dir, monkeypatch):
    """Composition: a SCoRe stage-I recipe with `verification_solutions` verifies the first attempt; verification rows
    get TRL's uniform KL weight (beta) next to the per-attempt weights of the episodes."""
    monkeypatch.setattr(verification, "parse_rating", scripted_rating)
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="score",
        score_stage=1,
        beta=0.01,
        turn1_beta=0.1,
        max_attempt_length=8,
        max_completion_length=96,
        verification_solutions=2,
        verification_generations=2,
        verification_max_length=8,
    )
    trainer = build_trainer(recipe)
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]
    trainer.model.train()
    out = trainer._generate_and_score_completions(rows)
    assert out["completion_ids"].size(0) == 8 + 2 * 2
    for j, row in enumerate(trainer._last_verification_rows):
        episode = rows[row["verify_solution_index"]]
        prompt = trainer.processing_class.decode(out["prompt_ids"][8 + j][out["prompt_mask"][8 + j].bool()])
        assert episode["attempt_texts"][0] in prompt  # attempt 1, not the revision
        mask = out["completion_mask"][8 + j].bool()
        assert out["kl_weights"][8 + j][mask].tolist() == pytest.approx([0.01] * int(mask.sum()))
    trainer.current_gradient_accumulation_steps = 1
    assert torch.isfinite(trainer.compute_loss(trainer.model, out))


# --- evaluation ------------------------------------------------------------------------------------------------------


class ScriptedModel:
    """Answers and verifications from a script (a `GenerateFn`): per problem, samples answer 13, 13, 12 in turn; the
    verifier rates answer 12 correct and 13 wrong, so the weighted vote picks 12 where the majority picks 13."""

    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, 0

    def __call__(self, contexts, max_new_tokens, attempt):
        outputs = []
        for i, context in enumerate(contexts):
            text = self.tokenizer.decode(context)
            if "### Response" in text:
                reply = "\\boxed{1}" if "\\boxed{12}" in text.split("### Response")[1] else "\\boxed{-1}"
            else:
                reply = "It is \\boxed{13}." if i % 3 < 2 else "It is \\boxed{12}."
            outputs.append(self.tokenizer.encode(reply, add_special_tokens=False) + [self.tokenizer.eos_token_id])
        return outputs, None


def test_eval_reports_weighted_and_plain_majority(tokenizer):
    from datasets import Dataset

    from selfcorrect.data.formatting import build_prompt

    rows = [{"prompt": build_prompt("What is 6 + 6?", None, None), "solution": "12"}] * 2
    metrics = verification.evaluate_self_verification(
        None, tokenizer, Dataset.from_list(rows), num_samples=3, generate=ScriptedModel(tokenizer)
    )
    assert metrics["verify_pass@1"] == pytest.approx(1 / 3)
    assert metrics["verify_majority"] == 0.0  # 13 twice, 12 once
    assert metrics["verify_weighted_majority"] == 1.0  # only 12 is rated correct
    # targets: 13 -> -0.5, 12 -> 1; ratings: 13 -> -1 (wrong), 12 -> 1 (right)
    assert metrics["verify_acc"] == pytest.approx(1 / 3)
    assert metrics["verify_acc_score_1"] == 1.0 and metrics["verify_acc_score_-0.5"] == 0.0
    assert math.isnan(metrics["verify_acc_score_-1"]) and metrics["verify_valid_rating_frac"] == 1.0
    table = "\n".join(verification.markdown_lines(metrics))
    assert "verification-weighted majority" in table and "100.0" in table


# --- two ranks ------------------------------------------------------------------------------------------------------


# --- padding: verification rows are not padded onto the solutions ------------------------------------------------------


def test_two_length_groups_hand_example():
    from selfcorrect.algos import two_length_groups

    # 4 short rows (prompt 10, completion 8) and 2 long ones (prompt 250, completion 12): 6 x 262 = 1572 padded
    # tokens in one group; 4 x 18 + 2 x 262 = 596 in two.
    prompts, completions = [10, 250, 10, 10, 250, 10], [8, 12, 8, 8, 12, 8]
    assert two_length_groups(prompts, completions) == [[0, 2, 3, 5], [1, 4]]
    assert two_length_groups([10, 12, 11], [8, 8, 9]) == [[0, 1, 2]]  # saving < 25 %: one group
    assert two_length_groups([5], [3]) == [[0]]


def test_row_lengths_count_up_to_the_last_real_token():
    from selfcorrect.algos import row_lengths

    prompt_mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    completion_mask = torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0]])  # row 0: a masked feedback token inside
    assert row_lengths(prompt_mask, completion_mask) == ([2, 3], [3, 2])


def test_length_grouped_loss_equals_trls(tmp_path, tiny_model_dir, monkeypatch):
    """A real RISE batch (solutions + verification rows) through `_compute_loss`: the loss and its gradient with the
    forward split per length group equal one padded forward (TRL's) to float tolerance."""
    import selfcorrect.trainers.base as base

    trainer, _, out = _rise_batch(tmp_path, tiny_model_dir, monkeypatch)
    trainer.current_gradient_accumulation_steps = 1
    groups = _record(monkeypatch, base, "two_length_groups")
    results = []
    for min_saving in (0.1, 1.0):  # 0.1: this batch (16 % saving) is split; 1.0: never split (TRL's forward)
        trainer.length_group_min_saving = min_saving
        trainer.model.zero_grad()
        loss = trainer._compute_loss(trainer.model, out)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]))
    assert [len(g) for g in groups] == [2, 1]
    (split_loss, split_grads), (trl_loss, trl_grads) = results
    torch.testing.assert_close(split_loss, trl_loss, atol=1e-5, rtol=1e-4)
    for a, b in zip(split_grads, trl_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_loss_passes_hand_example():
    from selfcorrect.algos import loss_pass_weight, loss_passes, verification_pass_rows

    # solutions 0, 2, 3 (prompt 10, completion 8): 3 x 18 = 54 padded tokens, the budget; verifications 1, 4, 5
    # (prompt 20, completions 7, 5, 6): the widest is 27 tokens, so 2 fit a pass
    flags, prompts, completions = [False, True, False, False, True, True], [10, 20, 10, 10, 20, 20], [8, 7, 8, 8, 5, 6]
    assert verification_pass_rows(flags, prompts, completions) == (3, 2)
    assert verification_pass_rows(flags, prompts, completions, budget=10) == (3, 1)  # one row at least
    assert verification_pass_rows([True, True], [20, 20], [7, 5]) == (0, 2)  # no solutions: one pass
    assert verification_pass_rows([False, False], [10, 10], [8, 8]) == (2, 2)  # nothing to split
    # this rank's passes, in the sizes all ranks agreed on: verification rows from shortest (4: 25) to longest (1: 27)
    assert loss_passes(flags, prompts, completions, 3, 2) == [[0, 2, 3], [4, 5], [1]]
    # another rank had 2 solution rows and room for 1 verification row a pass: the third solution leads the rest
    assert loss_passes(flags, prompts, completions, 2, 1) == [[0, 2], [3], [4], [5], [1]]
    assert loss_passes(flags, prompts, completions, 0, 6) == [[0, 2, 3, 4, 5, 1]]
    # shared prompts (n = 2): verification rows 1, 4 share a prompt, 5 and 6 another (prompt 20, completions 7, 5, 6, 4)
    flags, prompts, completions = flags + [True], prompts + [20], completions + [4]
    # budget 54: even a pass straddling 2 groups, 2 x 20 + 2 x 7 = 54 tokens, fits: one group (2 rows) a pass
    assert verification_pass_rows(flags, prompts, completions, share_prefix=2) == (3, 2)
    assert verification_pass_rows(flags, prompts, completions, budget=200, share_prefix=2) == (3, 10)  # (200-20) // 34
    assert verification_pass_rows(flags, prompts, completions, budget=53, share_prefix=2) == (
        3,
        1,
    )  # unshared: 53 // 27
    group = [0, 1, 2, 3, 1, 5, 5]  # `prompt_groups`: the first row with the same prompt
    assert loss_passes(flags, prompts, completions, 3, 2, prompt_group=group) == [[0, 2, 3], [1, 4], [5, 6]]
    assert loss_passes(flags, prompts, completions, 3, 2) == [[0, 2, 3], [6, 4], [5, 1]]  # by length: groups mixed
    assert loss_pass_weight("grpo", 2, 8, 10.0, 40.0) == 0.25  # a row mean: its share of rows
    assert loss_pass_weight("dr_grpo", 2, 8, 10.0, 40.0) == 0.25
    assert loss_pass_weight("bnpo", 2, 8, 10.0, 40.0) == 0.25 * 1.0 and loss_pass_weight("bnpo", 6, 8, 30, 40) == 0.75
    assert loss_pass_weight("dapo", 2, 8, 10.0, 40.0) == 1.0  # already divided by the whole batch's tokens
    with pytest.raises(ValueError, match="unknown loss_type"):
        loss_pass_weight("ppo", 1, 1, 1.0, 1.0)


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "bnpo", "dr_grpo"])
def test_verification_loss_passes_give_the_joined_batch_gradient(tmp_path, tiny_model_dir, monkeypatch, loss_type):
    """A real RISE batch (8 solutions, 8 verification rows of ~4x their prompt length), with the per-attempt KL (beta):
    the loss run as solution + verification passes and backpropagated as the Trainer does it gives the loss and the
    gradient of one pass over the joined batch, for row-mean, token-mean and global-token normalizations, with the
    verifications of a solution sharing one prompt forward (default) and without; no pass holds more padded tokens
    than the solutions (or one row; a shared prompt counted once)."""
    import selfcorrect.trainers.self_verification as sv

    trainer, _, out = _rise_batch(tmp_path, tiny_model_dir, monkeypatch, loss_type=loss_type)
    trainer.current_gradient_accumulation_steps = 1
    passes_seen = _record(monkeypatch, sv, "loss_passes")
    shared_calls = _record(monkeypatch, sv, "shared_prefix_logps")
    real_pass_rows, budget = sv.verification_pass_rows, {}  # shared: a budget of 500 tokens, one group a pass
    monkeypatch.setattr(sv, "verification_pass_rows", lambda *a, **k: real_pass_rows(*a, **k, **budget))
    results, logged = [], []
    for separate, shared in ((True, False), (True, True), (False, True)):
        trainer.args.verification_loss_passes, trainer.args.verification_shared_prefix = separate, shared
        budget = {"budget": 500} if shared else {}
        trainer.model.zero_grad()
        trainer._metrics["train"].clear()
        loss = trainer.compute_loss(trainer.model, out)
        trainer.accelerator.backward(loss)
        results.append((loss.detach(), [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]))
        logged.append({key: values for key, values in trainer._metrics["train"].items()})
    unshared, shared = passes_seen
    prompt_lengths = out["prompt_mask"].sum(dim=1)  # (16,)
    completion_lengths = out["completion_mask"].cumsum(dim=1).argmax(dim=1) + 1  # (16,) up to the last real token
    solution_tokens = 8 * int(prompt_lengths[:8].max() + completion_lengths[:8].max())
    verified = [r["verify_solution_index"] for r in trainer._last_verification_rows]  # (8,) rows 8..15

    def padded(rows, share):
        prompts = len({verified[i - 8] for i in rows}) if share else len(rows)
        return prompts * int(prompt_lengths[rows].max()) + len(rows) * int(completion_lengths[rows].max())

    for passes, share, most in ((unshared, False, solution_tokens), (shared, True, 500)):
        assert len(passes) >= 3 and passes[0] == list(range(8))  # the solutions, then verification rows in chunks
        assert sorted(i for rows in passes for i in rows) == list(range(16))
        assert all(len(rows) == 1 or padded(rows, share) <= most for rows in passes[1:])
    # shared: each pass holds one whole group (both verifications of a solution), its prompt computed once
    assert [len({verified[i - 8] for i in rows}) for rows in shared[1:]] == [1, 1, 1, 1]
    assert len(shared_calls) == len(shared) - 1 and all(call is not None for call in shared_calls)
    (split_loss, split_grads), (shared_loss, shared_grads), (joined_loss, joined_grads) = results
    assert len(split_grads) == len(shared_grads) == len(joined_grads) > 0
    for loss, grads in ((split_loss, split_grads), (shared_loss, shared_grads)):
        torch.testing.assert_close(loss, joined_loss, atol=1e-5, rtol=1e-4)
        for a, b in zip(grads, joined_grads):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    # one logged value per micro-batch, the joined pass's: token means (entropy, KL), min / max
    assert logged[0].keys() == logged[2].keys() and {"entropy", "kl", "clip_ratio/low_min"} <= logged[0].keys()
    for key, (value,) in logged[2].items():
        for split in logged[:2]:
            assert split[key] == [pytest.approx(value, rel=1e-4, abs=1e-6)], key


def test_verification_reference_logps_compute_each_prompt_once(tmp_path, tiny_model_dir, monkeypatch):
    """β = 0.01: the verification rows' reference log-probs come from one forward per verified solution's prompt
    (in TRL's chunks) and equal TRL's per-row forward on the masked-in tokens."""
    from trl import GRPOTrainer

    import selfcorrect.trainers.self_verification as sv

    calls = _record(monkeypatch, sv, "shared_prefix_logps")
    trainer, _, out = _rise_batch(tmp_path, tiny_model_dir, monkeypatch)
    assert calls and all(call is not None for call in calls)  # the shared path ran, and found shared prompts
    rows = slice(8, 16)  # the 8 verification rows (4 solutions x 2)
    prompt_ids, prompt_mask = out["prompt_ids"][rows], out["prompt_mask"][rows]
    completion_ids, completion_mask = out["completion_ids"][rows], out["completion_mask"][rows]
    with torch.no_grad():
        expected, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(
            trainer,
            trainer.ref_model,
            torch.cat([prompt_ids, completion_ids], dim=1),
            torch.cat([prompt_mask, completion_mask], dim=1),
            completion_ids.size(1),
        )  # (8, T)
    real = completion_mask.bool()
    torch.testing.assert_close(out["ref_per_token_logps"][rows][real], expected[real], atol=1e-5, rtol=1e-5)


def test_prompt_groups_compare_tokens_and_padding():
    from selfcorrect.algos import prompt_groups

    ids = torch.tensor([[0, 5, 6], [9, 5, 6], [0, 5, 6], [5, 5, 6], [0, 5, 7]])  # row 1: a pad of another id
    mask = torch.tensor([[0, 1, 1], [0, 1, 1], [0, 1, 1], [1, 1, 1], [0, 1, 1]])
    assert prompt_groups(ids, mask) == [0, 0, 0, 3, 4]  # row 3 has one more real token, row 4 another last token


@pytest.mark.parametrize("setting", ["plain", "gradient-checkpointing", "lora"])
def test_shared_prefix_logps_equal_trls_forward(tiny_model_dir, setting):
    """Three left-padded prompts, four completions each (some cut short): the log-probs, entropies and gradient with
    each prompt computed once equal TRL's full forward (fused LM head, temperature) to float rounding, also under
    gradient checkpointing, whose replay must not write the cache twice, and through a LoRA adapter (the decoder of
    the PEFT model); nothing shared: None (TRL's forward)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from selfcorrect.trainers.self_verification import shared_prefix_logps

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    add_fused_lm_head(model, temperature=0.7, outputs=("log_probs", "entropy"))
    if setting == "gradient-checkpointing":
        model.gradient_checkpointing_enable()
    if setting == "lora":
        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.train()
    generator = torch.Generator().manual_seed(0)
    prompts = torch.randint(5, 1000, (3, 12), generator=generator)  # (3, P)
    prompt_mask = torch.ones(3, 12, dtype=torch.long)
    prompt_mask[1, :4], prompt_mask[2, :1] = 0, 0
    prompt_ids = prompts.masked_fill(prompt_mask == 0, 0).repeat_interleave(4, dim=0)  # (12, P)
    completion_ids = torch.randint(5, 1000, (12, 6), generator=generator)  # (12, T)
    completion_mask = torch.ones(12, 6, dtype=torch.long)
    completion_mask[0, 3:], completion_mask[7, 1:] = 0, 0
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (12, P + T)
    attention_mask = torch.cat([prompt_mask.repeat_interleave(4, dim=0), completion_mask], dim=1)

    labels = input_ids.masked_fill(attention_mask == 0, -100)
    labels[:, :-6] = -100
    full = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, fused_lm_head=True)
    (full.log_probs[:, -6:] * completion_mask).sum().backward()
    full_grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad()
    logps, entropies = shared_prefix_logps(model, model.get_decoder(), input_ids, attention_mask, 6, True)
    (logps * completion_mask).sum().backward()

    real = completion_mask.bool()
    torch.testing.assert_close(logps[real], full.log_probs[:, -6:][real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropies[real], full.entropy[:, -6:][real], atol=1e-5, rtol=1e-5)
    shared_grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert len(shared_grads) == len(full_grads) > 0
    for shared_grad, full_grad in zip(shared_grads, full_grads):
        torch.testing.assert_close(shared_grad, full_grad, atol=1e-5, rtol=1e-4)
    assert shared_prefix_logps(model, model.get_decoder(), input_ids[::4], attention_mask[::4], 6, False) is None


def test_select_rows_trims_each_pass_to_its_own_padding():
    from selfcorrect.trainers.self_verification import select_rows

    batch = {
        "prompt_ids": torch.tensor([[0, 0, 5, 6], [9, 9, 9, 9], [0, 0, 0, 4]]),
        "prompt_mask": torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]]),
        "completion_ids": torch.tensor([[7, 8, 0], [1, 2, 3], [1, 0, 0]]),
        "completion_mask": torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]]),
        "advantages": torch.tensor([[0.5, 0.5, 0.0], [1.0, 1.0, 1.0], [-1.0, 0.0, 0.0]]),
        "importance_sampling_ratio": torch.tensor([[1.0], [0.75], [1.5]]),
        "verification_rows": torch.tensor([False, True, False]),
        "num_items_in_batch": torch.tensor(6.0),
    }
    part = select_rows(batch, [0, 2])
    assert part["prompt_ids"].tolist() == [[5, 6], [0, 4]]  # the two left columns no row uses are dropped
    assert part["completion_ids"].tolist() == [[7, 8], [1, 0]]  # so is the right column after every real token
    assert part["advantages"].tolist() == [[0.5, 0.5], [-1.0, 0.0]]
    assert part["importance_sampling_ratio"].tolist() == [[1.0], [1.5]]  # sequence-level (B, 1): rows only
    assert part["verification_rows"].tolist() == [False, False] and part["num_items_in_batch"].item() == 6.0
