"""One registry style: every recipe-named choice (method, feedback, critic, advantage mode, reward function) is looked
up the same way, names the field on a typo, and accepts an entry registered by the user's own module
(`package.module:name`) — shown here end to end for an advantage mode, a feedback provider and a critic."""

from __future__ import annotations

import pytest
import torch

from selfcorrect.algos import ADVANTAGE_MODES, AdvantageMode, sign_weighted_advantages
from selfcorrect.critics import CRITICS, Critique, IndicativeCritic
from selfcorrect.feedback import FEEDBACK, FeedbackProvider
from selfcorrect.registry import Registry
from selfcorrect.rewards import REWARD_FUNCS
from selfcorrect.trainers import METHODS, SCoReTrainer
from tests.helpers import build_trainer, write_recipe

HERE = __name__  # tests.trainers.test_registry


def _halve_negative(credit: torch.Tensor, positive_weight: float) -> torch.Tensor:
    return torch.where(credit < 0, credit / 2, credit)


class Shout(FeedbackProvider):
    name = "shout"

    def __init__(self, template: str | None = None):
        self.template = template or "WRONG! Attempt {attempt} again."

    def __call__(self, outcome):
        return self.render(self.template, outcome)


class FixedCritic(IndicativeCritic):
    def critique(self, requests):
        self.stats.requests += len(requests)
        return [Critique(text=f"Look at step 1 of {r.solution}.", verdict=r.correct, source="model") for r in requests]


# Registered at import, under names no other test uses (the registries are global): a recipe naming `tests.trainers.test_registry:<name>` imports this module first.
ADVANTAGE_MODES.register("example_halve_negative", AdvantageMode(weigh=_halve_negative))
ADVANTAGE_MODES.register("example_own_credit", AdvantageMode(weigh=None, composes=False))
FEEDBACK.register("example_shout", Shout)
CRITICS.register("example_fixed", lambda settings, self_generate, device: FixedCritic())


def test_every_recipe_choice_is_a_registry():
    for registry, field in (
        (METHODS, "method"),
        (FEEDBACK, "feedback"),
        (CRITICS, "critic"),
        (ADVANTAGE_MODES, "advantage_mode"),
        (REWARD_FUNCS, "reward_funcs"),
    ):
        assert isinstance(registry, Registry) and registry.field == field
        with pytest.raises(ValueError, match=rf"`{field}`: unknown .* 'typo'; registered: "):
            registry.lookup("typo")


def test_registry_lookup_register_and_import():
    registry: Registry[int] = Registry("colour", "colour")
    registry.register("red", 1)
    registry.register("red", 1)  # the same entry again: a no-op (a module imported twice)
    with pytest.raises(ValueError, match="colour 'red' is already registered"):
        registry.register("red", 2)
    assert registry.lookup("red") == 1
    with pytest.raises(ValueError, match="unknown colour 'blue'; registered: red"):
        registry.lookup("blue")
    with pytest.raises(ValueError, match=r"`colour: no_such_module:red`: cannot import module 'no_such_module'"):
        registry.lookup("no_such_module:red")
    with pytest.raises(ValueError, match="`colour` must be a string"):
        registry.lookup(3)
    assert ADVANTAGE_MODES.lookup(f"{HERE}:example_halve_negative").weigh is _halve_negative


def test_a_user_advantage_mode_composes_with_score(tmp_path, tiny_model_dir):
    """SCoRe stage II's credit on the issue-12 example (tests/test_composition.py), negatives halved."""
    assert sign_weighted_advantages(torch.tensor([-1.0, 2.0]), f"{HERE}:example_halve_negative").tolist() == [
        -0.5,
        2.0,
    ]
    recipe = write_recipe(
        tmp_path, tiny_model_dir, method="score", advantage_mode=f"{HERE}:example_halve_negative", max_attempt_length=8,
        max_completion_length=96,
    )  # fmt: skip
    trainer = build_trainer(recipe)
    trainer.model.train()
    rewards = torch.tensor([[0.0, 1.0], [0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    episodes = {"attempt_correct": [[False, True], [False, False], [True, True], [True, False]]}
    credit = trainer.assign_credit(rewards, episodes)
    torch.testing.assert_close(credit, torch.tensor([[-0.25, 10.5], [-0.25, -0.25], [0.5, 0.5], [0.5, -5.25]]))


def test_a_user_mode_that_is_a_credit_of_its_own_is_refused_for_score(tmp_path, tiny_model_dir):
    recipe = write_recipe(
        tmp_path, tiny_model_dir, method="score", advantage_mode=f"{HERE}:example_own_credit", max_attempt_length=8,
        max_completion_length=96,
    )  # fmt: skip
    with pytest.raises(Exception, match="example_own_credit` cannot compose with SCoRe's shaped per-attempt credit"):
        build_trainer(recipe)


def test_a_user_feedback_provider_and_critic_from_the_recipe(tmp_path, tiny_model_dir):
    common = dict(method="score", max_attempt_length=8, max_completion_length=160)
    trainer = build_trainer(write_recipe(tmp_path / "a", tiny_model_dir, feedback=f"{HERE}:example_shout", **common))
    assert isinstance(trainer, SCoReTrainer) and isinstance(trainer.feedback_provider, Shout)
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(4)]
    trainer.model.train()
    trainer._generate_and_score_completions(rows)
    assert all(row["feedback_texts"] == ["WRONG! Attempt 1 again."] for row in rows)

    recipe = write_recipe(tmp_path / "b", tiny_model_dir, feedback="critic", critic=f"{HERE}:example_fixed", **common)
    trainer = build_trainer(recipe)
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(4)]
    trainer.model.train()
    before = trainer.feedback_provider.critic.stats.requests
    trainer._generate_and_score_completions(rows)
    assert trainer.feedback_provider.critic.stats.requests - before == 4  # one round: every first attempt
    for row in rows:
        assert row["feedback_texts"][0].startswith(f"Look at step 1 of {row['solution']}.")


def test_indicative_feedback_takes_the_recipe_template_as_its_request_to_revise():
    from selfcorrect.feedback import AttemptOutcome, get_feedback_provider

    outcome = AttemptOutcome(
        row={"solution": "5"}, text="\\boxed{6}", answer="6", correct=False, truncated=False, attempt=0
    )
    default = get_feedback_provider("indicative_gt")(outcome)
    assert default == (
        "The generated solution is incorrect. The ground truth is 5. Please review your solution and write the final "
        "answer inside \\boxed{}."
    )
    assert get_feedback_provider("indicative", "Fix attempt {attempt}.")(outcome) == (
        "The generated solution is incorrect. Fix attempt 1."
    )
