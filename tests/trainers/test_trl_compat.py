"""With `max_attempts: 1` the multi-attempt base is TRL's GRPO: the settings TRL's own GRPO tests exercise (reward
functions of every kind, mixed and weighted, None rewards, extra dataset columns, both data formats, evaluation, the
completion cap) train the same way, on a tiny local Qwen2 policy and a tiny Qwen2 reward model (no hub download).

The full port of TRL's tests/test_grpo_trainer.py and the tests it still does not pass are listed in the note of
issue 24; this file keeps the part that runs in about a minute on CPU."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

QUESTIONS = ["The sky is", "The sun is", "Water is", "Grass is", "Fire is", "Snow is", "The moon is", "Sand is"]


@pytest.fixture(scope="module")
def qwen2_dirs(tmp_path_factory, tokenizer):
    """(policy, reward model) folders: a tiny random Qwen2ForCausalLM and Qwen2ForSequenceClassification (one label),
    each with the real tokenizer: the local stand-ins of TRL's tiny-Qwen2ForCausalLM-2.5 and
    tiny-Qwen2ForSequenceClassification-2.5."""
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2ForSequenceClassification

    def config(**extra):
        return Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **extra,
        )

    root = tmp_path_factory.mktemp("tiny-qwen2")
    paths = []
    for name, model_cls, extra in [
        ("tiny-Qwen2ForCausalLM", Qwen2ForCausalLM, {}),
        ("tiny-Qwen2ForSequenceClassification", Qwen2ForSequenceClassification, {"num_labels": 1}),
    ]:
        torch.manual_seed(0)
        path = root / name
        model_cls(config(**extra)).save_pretrained(path)
        tokenizer.save_pretrained(path)
        paths.append(path)
    return tuple(paths)


def prompts_dataset(conversational: bool = False, **columns) -> Dataset:
    prompts = [[{"role": "user", "content": q}] for q in QUESTIONS] if conversational else list(QUESTIONS)
    return Dataset.from_dict({"prompt": prompts, **columns})


def one_attempt_config(tmp_path, **fields):
    """TRL-style settings at one attempt; the attempt is capped by `max_completion_length` as TRL caps a completion."""
    from selfcorrect.trainers.base import MultiAttemptConfig

    values = dict(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to="none",
        learning_rate=0.1,
        per_device_train_batch_size=3,
        num_generations=3,
        max_completion_length=8,
        max_steps=2,
        max_attempts=1,
        max_attempt_length=10_000,
        save_strategy="no",
    )
    return MultiAttemptConfig(**(values | fields))


def train_and_check(trainer, names):
    """Train; the loss is logged, TRL's per-function reward metrics carry TRL's names, every parameter changed."""
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.state.log_history[-1]["train_loss"] is not None
    logged = {key for log in trainer.state.log_history for key in log}
    assert {f"rewards/{name}/mean" for name in names} <= logged
    unchanged = [n for n, p in trainer.model.named_parameters() if torch.equal(before[n], p)]
    assert not unchanged, unchanged


def length_reward(completions, **kwargs):
    return [float(len(c[-1]["content"] if isinstance(c, list) else c)) for c in completions]


async def async_length_reward(completions, **kwargs):
    return length_reward(completions)


def none_for_even_rows(completions, **kwargs):
    return [None if i % 2 == 0 else 1.0 + i for i in range(len(completions))]


def column_reward(completions, some_values, **kwargs):
    """Reads an extra dataset column, as TRL passes every column to reward functions."""
    return [float(len(c)) - v for c, v in zip(completions, some_values, strict=True)]


@pytest.mark.parametrize("conversational", [False, True], ids=["standard", "conversational"])
def test_reward_model_by_path(tmp_path, qwen2_dirs, conversational):
    from selfcorrect.trainers.base import MultiAttemptGRPOTrainer

    policy, reward_model = qwen2_dirs
    trainer = MultiAttemptGRPOTrainer(
        model=str(policy),
        reward_funcs=str(reward_model),
        args=one_attempt_config(tmp_path),
        train_dataset=prompts_dataset(conversational),
    )
    train_and_check(trainer, [reward_model.name])


@pytest.mark.parametrize(
    "kinds, weights",
    [
        (["model", "callable"], None),
        (["callable", "async"], None),
        (["callable", "none_for_even"], [2.0, 0.5]),
        (["column"], None),
    ],
    ids=["mixed-model-and-callable", "sync-and-async", "weighted-with-none", "extra-column"],
)
def test_reward_function_mixes(tmp_path, qwen2_dirs, tokenizer, kinds, weights):
    from selfcorrect.trainers.base import MultiAttemptGRPOTrainer

    policy, reward_model = qwen2_dirs
    funcs = {
        "model": str(reward_model),
        "callable": length_reward,
        "async": async_length_reward,
        "none_for_even": none_for_even_rows,
        "column": column_reward,
    }
    names = {
        "model": reward_model.name,
        "callable": "length_reward",
        "async": "async_length_reward",
        "none_for_even": "none_for_even_rows",
        "column": "column_reward",
    }
    dataset = prompts_dataset(some_values=[float(i) for i in range(len(QUESTIONS))])
    trainer = MultiAttemptGRPOTrainer(
        model=str(policy),
        reward_funcs=[funcs[k] for k in kinds],
        args=one_attempt_config(tmp_path, reward_weights=weights),
        train_dataset=dataset,
    )
    assert trainer.reward_func_names == [names[k] for k in kinds]
    train_and_check(trainer, [names[k] for k in kinds])


def test_reward_processing_classes_for_a_model_instance(tmp_path, qwen2_dirs, tokenizer):
    """A reward model instance without a name to load a tokenizer from takes `reward_processing_classes`; TRL sets
    the model's pad id from it (the reward is read at the last non-pad token)."""
    from transformers import AutoModelForSequenceClassification

    from selfcorrect.trainers.base import MultiAttemptGRPOTrainer

    policy, reward_model_dir = qwen2_dirs
    reward_model = AutoModelForSequenceClassification.from_pretrained(reward_model_dir, num_labels=1)
    trainer = MultiAttemptGRPOTrainer(
        model=str(policy),
        reward_funcs=[reward_model],
        reward_processing_classes=[tokenizer],
        args=one_attempt_config(tmp_path),
        train_dataset=prompts_dataset(),
    )
    assert trainer.reward_processing_classes == [tokenizer]
    assert reward_model.config.pad_token_id == tokenizer.pad_token_id
    train_and_check(trainer, [reward_model_dir.name])


def test_one_attempt_is_capped_like_a_trl_completion_and_has_trl_attributes(tmp_path, qwen2_dirs):
    """The attempt stops at `max_completion_length` (8 here) even with a larger `max_attempt_length`, and the
    attributes TRL's trainer sets are there (`eos_token_ids`, `reward_func_names`)."""
    from selfcorrect.trainers.base import MultiAttemptGRPOTrainer

    policy, reward_model = qwen2_dirs
    trainer = MultiAttemptGRPOTrainer(
        model=str(policy),
        reward_funcs=length_reward,
        args=one_attempt_config(tmp_path),
        train_dataset=prompts_dataset(),
    )
    assert trainer.eos_token_ids == [trainer.processing_class.eos_token_id]
    rows = [dict(trainer.train_dataset[i // 3]) for i in range(6)]
    trainer.model.train()
    out = trainer._generate_and_score_completions(rows)
    assert out["completion_ids"].size(1) <= 8
    assert all(end - start <= 8 for row in rows for start, end in row["attempt_spans"])


def test_eval_with_num_generations_eval(tmp_path, qwen2_dirs):
    from selfcorrect.trainers.base import MultiAttemptGRPOTrainer

    policy, reward_model = qwen2_dirs
    trainer = MultiAttemptGRPOTrainer(
        model=str(policy),
        reward_funcs=str(reward_model),
        args=one_attempt_config(
            tmp_path, eval_strategy="steps", eval_steps=2, per_device_eval_batch_size=2, num_generations_eval=2
        ),
        train_dataset=prompts_dataset(),
        eval_dataset=prompts_dataset().select(range(2)),
    )
    trainer.train()
    assert any("eval_loss" in log for log in trainer.state.log_history)


def test_args_none_builds_the_methods_own_config():
    """`args=None` (TRL builds `GRPOConfig("<model>-GRPO")`): each trainer builds its registered method's config, a
    user's subclass its parent's, so the episode's fields exist."""
    from selfcorrect.trainers import (
        MultiAttemptConfig,
        MultiAttemptGRPOTrainer,
        SCoReConfig,
        SCoReTrainer,
        UFOConfig,
        UFOTrainer,
    )

    class MyUFO(UFOTrainer):
        pass

    assert SCoReTrainer._default_config_class() is SCoReConfig
    assert MyUFO._default_config_class() is UFOConfig
    assert MultiAttemptGRPOTrainer._default_config_class() is MultiAttemptConfig


def multiply(a: int, b: int) -> int:
    """Multiplies two integers.

    Args:
        a: The first integer.
        b: The second integer.
    """
    return a * b


@pytest.mark.parametrize(
    "extra", [{"tools": [multiply]}, {"rollout_func": lambda prompts, trainer: {}}], ids=["tools", "rollout_func"]
)
def test_what_the_episode_engine_replaces_is_refused(tmp_path, qwen2_dirs, extra):
    """TRL runs tools (and environments) only in its own rollout, which the episode engine replaces: refused with a
    sentence, not silently ignored."""
    from selfcorrect.trainers.base import MultiAttemptGRPOTrainer

    policy, _ = qwen2_dirs
    with pytest.raises(ValueError, match="method: grpo"):
        MultiAttemptGRPOTrainer(
            model=str(policy),
            reward_funcs=length_reward,
            args=one_attempt_config(tmp_path),
            train_dataset=prompts_dataset(),
            **extra,
        )
