"""One credit path: every row of the composition table (docs/methods/composing.md) on a tiny model, every hook
honoured, the judge's verdict computed once, and the multi-attempt trainer equal to TRL's GRPO on a prompt-only dataset.

Hand-worked example used throughout (G = 4, one group): attempt rewards / verdicts (r1, r2) = (0, 1), (0, 0), (1, 1),
(1, 0). SCoRe stage II (alpha 10, `mean` scaling): turn 1 r1 - mean = -0.5, -0.5, 0.5, 0.5; turn 2 shaped
r2 + 10 (r2 - r1) = 11, 0, 1, -10, minus their mean 0.5 = 10.5, -0.5, 0.5, -10.5.
"""

from __future__ import annotations

import math

import pytest
import torch

from selfcorrect import rewards as reward_module
from selfcorrect.configs import parse_recipe
from selfcorrect.trainers import (
    CritiqueGRPOTrainer,
    MultiAttemptGRPOTrainer,
    NegativeSampleTrainer,
    RISETrainer,
    SCoReTrainer,
    UFOTrainer,
)
from tests.helpers import ROOT, build_trainer, parity_judge, write_recipe

MULTI = dict(max_attempt_length=8, max_completion_length=96)
REWARDS = torch.tensor([[0.0, 1.0], [0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])  # (N=4, K=2), one group
VERDICTS = [[False, True], [False, False], [True, True], [True, False]]
EPISODES = {"attempt_correct": VERDICTS, "attempt_answers": [["1", "2"], ["3", "4"], ["5", "5"], ["6", "7"]]}
ORL = -1 / 6  # OREAL: a wrong sample in a group with 2 of 4 right: eta (1 - p) * RLOO = 0.5 * 0.5 * (0 - 2/3)


def _close(got, expected, atol=1e-5):
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected, dtype=torch.float32), atol=atol, rtol=0)


def _credit(tmp_path, tiny_model_dir, cls, rewards=REWARDS, episodes=EPISODES, **fields):
    trainer = build_trainer(write_recipe(tmp_path, tiny_model_dir, **fields), cls)
    trainer.model.train()  # group size: num_generations (4)
    return trainer.assign_credit(rewards.clone(), episodes).tolist()


# (trainer class, recipe fields, expected (N, K) advantages): the README's composition table, row by row.
TABLE = {
    "multi_attempt + grpo": (
        MultiAttemptGRPOTrainer,
        dict(method="multi_attempt", scale_rewards="none"),
        [[-0.5, 0.5], [-0.5, -0.5], [0.5, 0.5], [0.5, -0.5]],
    ),
    "multi_attempt + psr": (
        MultiAttemptGRPOTrainer,
        dict(method="multi_attempt", advantage_mode="psr"),
        [[0, 1], [0, 0], [1, 1], [1, 0]],
    ),
    "multi_attempt + nsr": (
        MultiAttemptGRPOTrainer,
        dict(method="multi_attempt", advantage_mode="nsr"),
        [[-1, 0], [-1, -1], [0, 0], [0, -1]],
    ),
    "nsr + w_reinforce": (
        NegativeSampleTrainer,
        dict(method="nsr", max_attempts=2, advantage_mode="w_reinforce", positive_weight=0.1),
        [[-1, 0.1], [-1, -1], [0.1, 0.1], [0.1, -1]],
    ),
    "nsr + oreal": (
        NegativeSampleTrainer,
        dict(method="nsr", max_attempts=2, advantage_mode="oreal"),
        [[ORL, 1], [ORL, ORL], [1, 1], [1, ORL]],
    ),
    "nsr + w_reinforce + R3L": (
        NegativeSampleTrainer,
        dict(method="nsr", max_attempts=2, advantage_mode="w_reinforce", positive_advantage_scale=3.0),
        [[-1, 0.3], [-1, -1], [0.3, 0.3], [0.3, -1]],
    ),
    "score + grpo": (SCoReTrainer, dict(method="score"), [[-0.5, 10.5], [-0.5, -0.5], [0.5, 0.5], [0.5, -10.5]]),
    "score + psr": (
        SCoReTrainer,
        dict(method="score", advantage_mode="psr"),
        [[0, 10.5], [0, 0], [0.5, 0.5], [0.5, 0]],
    ),
    "score + nsr": (
        SCoReTrainer,
        dict(method="score", advantage_mode="nsr"),
        [[-0.5, 0], [-0.5, -0.5], [0, 0], [0, -10.5]],
    ),
    "score + w_reinforce": (
        SCoReTrainer,
        dict(method="score", advantage_mode="w_reinforce", positive_weight=0.1),
        [[-0.5, 1.05], [-0.5, -0.5], [0.05, 0.05], [0.05, -10.5]],
    ),
    "score + w_reinforce + R3L": (
        SCoReTrainer,
        dict(method="score", advantage_mode="w_reinforce", positive_weight=0.1, positive_advantage_scale=3.0),
        [[-0.5, 3.15], [-0.5, -0.5], [0.15, 0.15], [0.15, -10.5]],
    ),
    "score + grpo + R3L": (
        SCoReTrainer,
        dict(method="score", positive_advantage_scale=3.0),
        [[-0.5, 31.5], [-0.5, -0.5], [1.5, 1.5], [1.5, -10.5]],
    ),
    "rise + w_reinforce": (
        RISETrainer,
        dict(
            method="rise",
            advantage_mode="w_reinforce",
            reward_funcs=["accuracy"],
            verification_max_length=8,
            verification_solutions=2,
        ),
        [[-1, 0.1], [-1, -1], [0.1, 0.1], [0.1, -1]],
    ),
}


@pytest.mark.parametrize("row", list(TABLE))
def test_composition_table_row(tmp_path, tiny_model_dir, row):
    cls, fields, expected = TABLE[row]
    needs_verdict_rewards = fields.get("advantage_mode", "grpo") != "grpo" and cls not in (SCoReTrainer,)
    if needs_verdict_rewards:
        fields = {"reward_funcs": ["accuracy"], **fields}
    fields = {"max_attempts": 2, **MULTI, **fields}
    got = _credit(tmp_path, tiny_model_dir, cls, **fields)
    _close(got, expected)


# UFO: episodes with first right answers at turns 0, 1, never, never (distinct boxed answers: no penalties), so the
# returns are 1, 0.5, 0, 0; group-normalized (std, TRL's default): (R - 0.375) / 0.47871.
UFO_EPISODES = {
    "attempt_correct": [[True], [False, True], [False, False, False], [False, False, False]],
    "attempt_answers": [["1"], ["2", "3"], ["4", "5", "6"], ["7", "8", "9"]],
}
UFO_REWARDS = torch.tensor([[1, math.nan, math.nan], [0, 1, math.nan], [0, 0, 0], [0, 0, 0]], dtype=torch.float32)
UFO_ADV = [(r - 0.375) / (math.sqrt(0.6875 / 3) + 1e-4) for r in (1.0, 0.5, 0.0, 0.0)]


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("grpo", UFO_ADV),
        ("nsr", [min(a, 0.0) for a in UFO_ADV]),
        ("w_reinforce", [a * 0.1 if a > 0 else a for a in UFO_ADV]),
    ],
)
def test_ufo_return_composes_with_the_mode(tmp_path, tiny_model_dir, mode, expected):
    got = _credit(
        tmp_path,
        tiny_model_dir,
        UFOTrainer,
        rewards=UFO_REWARDS,
        episodes=UFO_EPISODES,
        method="ufo",
        max_attempts=3,
        max_attempt_length=8,
        max_completion_length=160,
        advantage_mode=mode,
        reward_funcs=["accuracy"],
    )
    _close(got, [[a] * 3 for a in expected], atol=1e-4)


@pytest.mark.parametrize(
    "mode, scale, expected",
    [
        ("grpo", 1.0, [0.75, -0.25, -0.25, -0.25]),
        ("nsr", 1.0, [0.0, -0.25, -0.25, -0.25]),
        ("w_reinforce", 1.0, [0.075, -0.25, -0.25, -0.25]),
        ("grpo", 3.0, [2.25, -0.25, -0.25, -0.25]),
    ],
)
def test_critique_grpo_credit_composes(tmp_path, tiny_model_dir, mode, scale, expected):
    got = _credit(
        tmp_path,
        tiny_model_dir,
        CritiqueGRPOTrainer,
        rewards=torch.tensor([[1.0], [0.0], [0.0], [0.0]]),
        episodes={
            "attempt_correct": [[True], [False], [False], [False]],
            "attempt_answers": [["1"], ["2"], ["3"], ["4"]],
        },
        method="critique_grpo",
        max_attempt_length=8,
        advantage_mode=mode,
        positive_advantage_scale=scale,
    )
    _close(got, [[a] for a in expected], atol=1e-6)


@pytest.mark.parametrize("method", ["score", "ufo", "critique_grpo"])
def test_oreal_with_a_methods_own_credit_is_refused_at_parse_time(tmp_path, tiny_model_dir, method):
    recipe = write_recipe(tmp_path, tiny_model_dir, method=method, advantage_mode="oreal", **MULTI)
    with pytest.raises(ValueError, match="oreal.*cannot compose"):
        parse_recipe(["--config", str(recipe)])


def test_oreal_with_a_subclass_credit_is_refused(tmp_path, tiny_model_dir):
    class MyCredit(MultiAttemptGRPOTrainer):
        def attempt_advantages(self, rewards, episodes):
            return rewards

    recipe = write_recipe(
        tmp_path, tiny_model_dir, method="multi_attempt", advantage_mode="oreal", reward_funcs=["accuracy"], **MULTI
    )
    with pytest.raises(ValueError, match="MyCredit assigns its own credit"):
        build_trainer(recipe, MyCredit)


@pytest.mark.parametrize(
    "fields",
    [
        dict(method="ufo", max_attempts=2, reward_funcs=["accuracy", "format"], reward_weights=[1.0, 0.2]),
        dict(method="nsr", reward_funcs=["tests.helpers:varied_reward"]),
        dict(
            method="rise",
            advantage_mode="nsr",
            reward_funcs=["outcome"],
            verification_max_length=8,
            verification_solutions=2,
        ),
    ],
    ids=["ufo+format", "nsr+custom", "rise-nsr+outcome"],
)
def test_reward_functions_a_method_ignores_are_refused(tmp_path, tiny_model_dir, fields):
    recipe = write_recipe(tmp_path, tiny_model_dir, **{**MULTI, "max_completion_length": 160, **fields})
    with pytest.raises(ValueError, match="would never reach the gradient"):
        build_trainer(recipe)


# --- hooks: each override is called, whatever the advantage mode -------------------------------------------------------


def _batch(trainer, size=8):
    trainer.generation_config.sequence_bias = [[[trainer.processing_class.eos_token_id], 9.0]]  # short attempts
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(size)]
    trainer.model.train()
    return rows, trainer._generate_and_score_completions(rows)


def _recipe(tmp_path, tiny_model_dir, **fields):
    values = dict(method="multi_attempt", max_attempts=2, advantage_mode="w_reinforce", reward_funcs=["accuracy"])
    return write_recipe(tmp_path, tiny_model_dir, **{**MULTI, **values, **fields})


def test_attempt_advantages_override_is_honoured_under_a_negative_sample_mode(tmp_path, tiny_model_dir):
    class FixedCredit(MultiAttemptGRPOTrainer):
        def attempt_advantages(self, rewards, episodes):
            credit = torch.zeros_like(rewards)  # (N, K)
            credit[:, 0], credit[:, 1] = -2.0, 3.0
            return credit

    trainer = build_trainer(_recipe(tmp_path, tiny_model_dir, positive_weight=0.5), FixedCredit)
    rows, out = _batch(trainer)
    for b, row in enumerate(rows):
        for (start, end), value in zip(row["attempt_spans"], (-2.0, 1.5)):  # W-REINFORCE: positives times 0.5
            assert out["advantages"][b, start:end].tolist() == [value] * (end - start)


def test_attempt_rewards_override_reaches_the_credit(tmp_path, tiny_model_dir):
    class SeenRewards(MultiAttemptGRPOTrainer):
        def attempt_rewards(self, rewards_per_func):
            return torch.arange(rewards_per_func.size(0) * 2, dtype=torch.float32).view(-1, 2)  # (N, K)

        def attempt_advantages(self, rewards, episodes):
            self.seen = rewards.clone()
            return super().attempt_advantages(rewards, episodes)

    trainer = build_trainer(_recipe(tmp_path, tiny_model_dir, advantage_mode="grpo"), SeenRewards)
    _batch(trainer)
    assert trainer.seen.tolist() == torch.arange(16, dtype=torch.float32).view(8, 2).tolist()


def test_judge_override_decides_verdicts_and_the_accuracy_reward(tmp_path, tiny_model_dir):
    class Parity(MultiAttemptGRPOTrainer):
        calls = 0

        def judge(self, text, row):
            Parity.calls += 1
            return parity_judge(text, row)

        def attempt_advantages(self, rewards, episodes):
            self.seen = rewards.clone()  # (N, K): the accuracy reward of every attempt
            return super().attempt_advantages(rewards, episodes)

    trainer = build_trainer(_recipe(tmp_path, tiny_model_dir, advantage_mode="grpo"), Parity)
    rows, _ = _batch(trainer)
    assert Parity.calls == sum(len(row["attempt_texts"]) for row in rows)
    expected = [[float(parity_judge(text, row)) for text in row["attempt_texts"]] for row in rows]
    assert [values[: len(e)] for values, e in zip(trainer.seen.tolist(), expected)] == expected


def test_feedback_override_under_a_negative_sample_mode(tmp_path, tiny_model_dir):
    class Quote(MultiAttemptGRPOTrainer):
        def feedback(self, outcome):
            return f"Attempt {outcome.attempt + 1} said {outcome.answer}."

    trainer = build_trainer(_recipe(tmp_path, tiny_model_dir), Quote)
    rows, _ = _batch(trainer)
    assert all(row["feedback_texts"] == [f"Attempt 1 said {row['attempt_answers'][0]}."] for row in rows)


def test_feedback_batch_override_writes_a_rounds_turns_in_one_call(tmp_path, tiny_model_dir):
    class Numbered(MultiAttemptGRPOTrainer):
        rounds: list[int] = []

        def feedback_batch(self, outcomes):
            Numbered.rounds.append(len(outcomes))
            return [f"Attempt {i} of this round: try again." for i in range(len(outcomes))]

    trainer = build_trainer(_recipe(tmp_path, tiny_model_dir), Numbered)
    rows, _ = _batch(trainer)
    assert Numbered.rounds == [8]  # two attempts: one round of feedback, all 8 episodes at once
    assert [row["feedback_texts"] for row in rows] == [[f"Attempt {i} of this round: try again."] for i in range(8)]


def test_kl_coefficients_override_gives_per_attempt_kl_weights(tmp_path, tiny_model_dir):
    class TwoKL(MultiAttemptGRPOTrainer):
        def kl_coefficients(self, num_attempts):
            return [0.5, 0.05]

    trainer = build_trainer(_recipe(tmp_path, tiny_model_dir, beta=0.01), TwoKL)
    rows, out = _batch(trainer)
    for b, row in enumerate(rows):
        for (start, end), value in zip(row["attempt_spans"], (0.5, 0.05)):
            assert out["kl_weights"][b, start:end].tolist() == pytest.approx([value] * (end - start))


def test_credit_reads_rewards_override_is_honoured(tmp_path, tiny_model_dir):
    class VerdictOnly(MultiAttemptGRPOTrainer):
        def attempt_advantages(self, rewards, episodes):
            return torch.zeros_like(rewards)

        def credit_reads_rewards(self):
            return False

    recipe = _recipe(tmp_path, tiny_model_dir, advantage_mode="grpo", reward_funcs=["tests.helpers:varied_reward"])
    with pytest.raises(ValueError, match="varied_reward"):
        build_trainer(recipe, VerdictOnly)


def test_registered_verdict_credit_is_what_the_trainer_says(tmp_path, tiny_model_dir):
    """`verdict_credit=True` at registration (what the benchmark reads to give a method `accuracy` only) holds exactly
    for the shipped multi-attempt methods whose trainer's `credit_reads_rewards()` is False under its config's
    defaults."""
    from selfcorrect.trainers import METHODS, import_families

    import_families()
    extra = {"rise": dict(verification_max_length=8, verification_solutions=2), "ufo": dict(max_attempts=2)}
    checked = []
    for name, method in METHODS.items():
        shipped = method.trainer.__module__.startswith("selfcorrect.")
        if not (shipped and issubclass(method.trainer, MultiAttemptGRPOTrainer)):
            continue
        recipe = write_recipe(
            tmp_path / name, tiny_model_dir, method=name, reward_funcs=["accuracy"], **MULTI, **extra.get(name, {})
        )
        trainer = build_trainer(recipe, method.trainer)
        assert method.verdict_credit == (not trainer.credit_reads_rewards()), name
        checked.append(name)
    assert {"ufo", "nsr", "score"} <= set(checked)


# --- the verdict, once -----------------------------------------------------------------------------------------------


def test_math_verify_runs_once_per_attempt(tmp_path, tiny_model_dir):
    """The judge, `accuracy` and `outcome` share one math-verify call per attempt (the judge's, in the rollout)."""
    recipe = _recipe(tmp_path, tiny_model_dir, advantage_mode="grpo", reward_funcs=["accuracy", "outcome"])
    trainer = build_trainer(recipe)
    before = reward_module.verify_stats()["calls"]
    rows, _ = _batch(trainer)
    attempts = sum(len(row["attempt_texts"]) for row in rows)
    assert reward_module.verify_stats()["calls"] - before == attempts


# --- TRL's GRPO on a prompt-only dataset --------------------------------------------------------------------------------


def length_reward(completions, **kwargs):
    return [len(c) / 10.0 for c in completions]


def test_single_attempt_grpo_equals_trl_on_a_prompt_only_dataset(tiny_model_dir):
    """max_attempts 1 + advantage_mode grpo on rows with no gold answer and a custom reward: the same completions,
    advantages and loss as TRL's GRPOTrainer."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from selfcorrect.trainers import MultiAttemptConfig

    data = Dataset.from_dict({"prompt": [f"Count to {i}:" for i in range(8)]})
    common = dict(
        output_dir="/tmp/unused",
        use_cpu=True,
        bf16=False,
        seed=0,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        report_to="none",
        logging_steps=1,
        temperature=1.0,
    )
    outputs, losses = [], []
    for cls, config in ((GRPOTrainer, GRPOConfig(**common)), (MultiAttemptGRPOTrainer, None)):
        if config is None:
            config = MultiAttemptConfig(**common, max_attempts=1, max_attempt_length=8)
        trainer = cls(
            model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
            reward_funcs=[length_reward],
            args=config,
            train_dataset=data,
            processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
        )
        trainer.model.train()
        torch.manual_seed(0)
        rows = [dict(data[i // 4]) for i in range(8)]
        out = trainer._generate_and_score_completions(rows)
        out["num_items_in_batch"] = out["completion_mask"].sum()
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer.training_step in a real step
        losses.append(trainer._compute_loss(trainer.model, out).item())
        outputs.append(out)
    trl_out, ours = outputs
    assert torch.equal(trl_out["completion_ids"], ours["completion_ids"])
    advantages = ours["advantages"]  # (B, T): one value per row on every token
    row_values = advantages.masked_fill(ours["completion_mask"] == 0, float("nan")).nanmean(dim=1)  # (B,)
    assert row_values.tolist() == pytest.approx(trl_out["advantages"].tolist(), abs=1e-5)
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


# --- rows without a gold answer ----------------------------------------------------------------------------------------


def _prompt_only_trainer(tiny_model_dir, tmp_path, **fields):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfcorrect.trainers import MultiAttemptConfig

    data = Dataset.from_dict({"prompt": [[{"role": "user", "content": f"Say {i}."}] for i in range(4)]})
    config = MultiAttemptConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=4,
        num_generations=4,
        max_attempt_length=8,
        max_completion_length=96,
        report_to="none",
        max_attempts=2,
        feedback="unary",
        **fields,
    )
    return MultiAttemptGRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        reward_funcs=[length_reward],
        args=config,
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
    )


def test_multi_attempt_without_gold_needs_a_verdict(tmp_path, tiny_model_dir):
    with pytest.raises(ValueError, match="no `solution` column.*judge_threshold"):
        _prompt_only_trainer(tiny_model_dir, tmp_path)


def test_judge_threshold_judges_rows_without_gold_by_their_reward(tmp_path, tiny_model_dir):
    trainer = _prompt_only_trainer(tiny_model_dir, tmp_path, judge_threshold=1.0)
    trainer.generation_config.sequence_bias = [[[trainer.processing_class.eos_token_id], 4.0]]  # varied lengths
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(4)]
    trainer.model.train()
    trainer._generate_and_score_completions(rows)
    for row in rows:
        for text, verdict, cut in zip(row["attempt_texts"], row["attempt_correct"], row["attempt_truncated"]):
            assert verdict == (len(text) / 10.0 >= 1.0 and not cut)
        feedback = ["Incorrect. Please think again."] if not row["attempt_correct"][0] else []
        assert row["feedback_texts"] == feedback[: len(row["attempt_texts"]) - 1]


# --- the README's "Adding a method", as written ------------------------------------------------------------------------


def _readme_method_file() -> str:
    """The README's "Adding a method" file, verbatim."""
    import re

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("<!-- adding-a-method:") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_adding_a_method(tmp_path, tiny_model_dir, monkeypatch):
    """The README's example file, verbatim: registers `fix_bonus`, a recipe names it as `module:name`, it trains, and
    its credit is the hand-computed one."""
    from selfcorrect.train import main as train_main
    from selfcorrect.trainers import METHODS

    (tmp_path / "my_methods.py").write_text(_readme_method_file())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(METHODS, "fix_bonus", raising=False)
    recipe = write_recipe(
        tmp_path / "run", tiny_model_dir, method="my_methods:fix_bonus", fix_bonus=2.0, scale_rewards="none", **MULTI
    )
    trainer = train_main(["--config", str(recipe)])
    assert type(trainer).__name__ == "FixBonusTrainer" and trainer.state.global_step == 2
    # hand example: episodes (wrong, right) and (wrong, wrong) in a group of 4 with (right, right), (right, wrong)
    trainer.model.train()
    credit = trainer.assign_credit(REWARDS.clone(), EPISODES)  # (4, 2)
    shaped_last = torch.tensor([1.0 + 2.0, 0.0, 1.0, 0.0])  # only episode 0 was fixed
    expected = torch.stack([REWARDS[:, 0] - 0.5, shaped_last - shaped_last.mean()], dim=1)
    torch.testing.assert_close(credit, expected)
    monkeypatch.delitem(METHODS, "fix_bonus")


def test_a_method_added_to_the_package_is_one_file(tmp_path, tiny_model_dir, monkeypatch):
    """The README's example as a method of the package: one file among the trainers (a folder added to
    `selfcorrect.trainers`' path stands for selfcorrect/trainers/), one recipe naming it `method: fix_bonus`, and this
    test. No other file names it: the recipe's lookup finds the file, and it registers itself."""
    import sys

    import selfcorrect.trainers as trainers
    from selfcorrect.train import main as train_main
    from selfcorrect.trainers import METHODS
    from selfcorrect.trainers.registry import METHOD_CONFIGS

    folder = tmp_path / "trainers"
    folder.mkdir()
    (folder / "fix_bonus.py").write_text(_readme_method_file())
    monkeypatch.setattr(trainers, "__path__", [*trainers.__path__, str(folder)])
    monkeypatch.delitem(METHODS, "fix_bonus", raising=False)  # the README's example, if another test registered it
    recipe = write_recipe(tmp_path / "run", tiny_model_dir, method="fix_bonus", fix_bonus=2.0, **MULTI)
    try:
        trainer = train_main(["--config", str(recipe)])
        assert type(trainer).__module__ == "selfcorrect.trainers.fix_bonus" and trainer.state.global_step == 2
        assert METHODS["fix_bonus"].trainer is type(trainer)
    finally:
        module = sys.modules.pop("selfcorrect.trainers.fix_bonus", None)
        if module is not None:
            METHOD_CONFIGS.pop(module.FixBonusTrainer, None)
        METHODS.pop("fix_bonus", None)


# Methods whose credit composes through their own tests rather than rows of TABLE (`offline` methods have no credit).
OWN_COMPOSITION_TESTS = {
    "ufo": "test_ufo_return_composes_with_the_mode",
    "critique_grpo": "test_critique_grpo_credit_composes",
}


def test_composition_table_covers_every_registered_multi_attempt_method():
    """TABLE is checked against the registry: every shipped multi-attempt method has a row (or its own composition
    test, named in OWN_COMPOSITION_TESTS), and each row builds the trainer its `method` registers."""
    from selfcorrect.trainers import METHODS, import_families

    import_families()
    shipped = {
        name
        for name, method in METHODS.items()
        if method.trainer.__module__.startswith("selfcorrect.") and issubclass(method.trainer, MultiAttemptGRPOTrainer)
    }
    rows = {fields["method"] for _, fields, _ in TABLE.values()}
    assert all(name in globals() for name in OWN_COMPOSITION_TESTS.values())
    assert shipped == rows | set(OWN_COMPOSITION_TESTS), (
        f"registered multi-attempt methods without a composition row: {sorted(shipped - rows - set(OWN_COMPOSITION_TESTS))}; "
        f"rows or tests naming no registered method: {sorted((rows | set(OWN_COMPOSITION_TESTS)) - shipped)}"
    )
    for row, (cls, fields, _) in TABLE.items():
        assert METHODS[fields["method"]].trainer is cls, row


def test_unknown_method_module_is_a_clear_recipe_error(tmp_path, tiny_model_dir):
    from selfcorrect.configs import RecipeError

    recipe = write_recipe(tmp_path, tiny_model_dir, method="no_such_module:thing")
    with pytest.raises(RecipeError, match="cannot import module 'no_such_module'"):
        parse_recipe(["--config", str(recipe)])
