"""Reward functions and recipe builders used by the tests (importable by dotted path: `tests.helpers:...`)."""

from __future__ import annotations

from pathlib import Path

import yaml


def varied_reward(completions, **kwargs):
    """A reward that varies between samples of a random model (distinct characters / 10), so groups have signal."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [len(set(t)) / 10.0 for t in texts]


def failing_reward(completions, **kwargs):
    raise RuntimeError("boom")


TINY_TRAINING = dict(
    use_cpu=True,
    bf16=False,
    seed=0,
    max_steps=2,
    learning_rate=0.01,
    lr_scheduler_type="constant",
    per_device_train_batch_size=4,
    gradient_accumulation_steps=1,
    num_generations=4,
    max_completion_length=16,
    temperature=1.0,
    logging_steps=1,
    save_strategy="no",
    report_to="none",
    dataloader_num_workers=0,
    arithmetic_train_size=16,
    arithmetic_eval_size=4,
    reward_funcs=["tests.helpers:varied_reward"],
)


def write_recipe(tmp_path: Path, model_dir: Path, **fields) -> Path:
    values = dict(model_name_or_path=str(model_dir), output_dir=str(tmp_path / "out"), **TINY_TRAINING)
    values.update(fields)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def build_trainer(recipe: Path, trainer_cls=None):
    """The trainer `selfcorrect.train` would build from a recipe (optionally a subclass), without training."""
    from selfcorrect.train import build_trainer as build

    return build(["--config", str(recipe)], trainer_cls)[0]


def parity_judge(text, row):
    """A scripted judge for random models: 'correct' when the attempt has an even number of distinct characters."""
    return len(set(text)) % 2 == 0
