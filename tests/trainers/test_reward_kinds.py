"""Every kind of reward function TRL's `GRPOTrainer` takes, in the multi-attempt trainers (SCoRe, UFO): plain and async
callables, reward models by local path (as a hub id is loaded) or as a `PreTrainedModel` instance, with or without
`reward_processing_classes`. Each attempt is scored on its own text; a reward model sees the prompt followed by that
attempt, as TRL builds its input (chat template for conversational data, the joined strings for standard data)."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from tests.helpers import ScriptedGenerate, tiny_llama_config

WRONG = "So \\boxed{-999}."  # 16 characters: the callable reward's value is 1.6
RIGHT = "So \\boxed{7}."  # 13 characters: 1.3


def text_length_reward(completions, **kwargs):
    """A hand-checkable reward: the attempt's length in characters / 10."""
    return [len(c[-1]["content"] if isinstance(c, list) else c) / 10.0 for c in completions]


async def async_text_length_reward(completions, **kwargs):
    """`text_length_reward`, awaited on TRL's event loop."""
    return text_length_reward(completions)


@pytest.fixture(scope="module")
def reward_model_dir(tmp_path_factory, tokenizer):
    """A tiny random sequence-classification Llama (one label) with the real tokenizer, saved as a model folder."""
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(1)
    config = tiny_llama_config(tokenizer)
    config.num_labels = 1
    model = LlamaForSequenceClassification(config).eval()
    path = tmp_path_factory.mktemp("tiny-reward-model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _reward_model_from_config(path, tokenizer):
    """The saved reward model rebuilt from its config (no `name_or_path`): TRL needs `reward_processing_classes`."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(path))
    model.load_state_dict(AutoModelForSequenceClassification.from_pretrained(path).state_dict())
    model.config._name_or_path = ""
    return model


KINDS = ["callable", "async", "model_path", "model_instance", "model_with_processing_class"]


def _reward_funcs(kind, reward_model_dir, tokenizer):
    """(reward_funcs, reward_processing_classes) for one kind."""
    from transformers import AutoModelForSequenceClassification

    if kind == "callable":
        return [text_length_reward], None
    if kind == "async":
        return [async_text_length_reward], None
    if kind == "model_path":
        return [str(reward_model_dir)], None
    if kind == "model_instance":  # TRL loads its tokenizer from the model's `name_or_path`
        return [AutoModelForSequenceClassification.from_pretrained(reward_model_dir, num_labels=1)], None
    return [_reward_model_from_config(reward_model_dir, tokenizer)], [tokenizer]


def _expected_name(kind, reward_model_dir):
    """TRL's `reward_func_names`: the function's name, or the last part of the model's id."""
    if kind in ("callable", "async"):
        return {"callable": "text_length_reward", "async": "async_text_length_reward"}[kind]
    return reward_model_dir.name if kind != "model_with_processing_class" else ""


def reward_model_score(path, tokenizer, prompt, attempt: str) -> float:
    """The reward model's score of prompt + one attempt, computed here on its own: the chat template over the prompt's
    messages and the attempt as an assistant turn (conversational), else the prompt string followed by the attempt."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).eval()
    if isinstance(prompt, list):
        text = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": attempt}], tokenize=False)
    else:
        text = prompt + attempt
    with torch.inference_mode():
        return model(**tokenizer(text, return_tensors="pt", add_special_tokens=False)).logits[0, 0].item()


def _dataset(conversational: bool, num_rows: int = 4, solution: bool = True, distinct: bool = True) -> Dataset:
    """Distinct prompts (the scripted generator finds an episode by its prompt), or one prompt repeated."""
    questions = [f"Problem {i if distinct else 0}: what is 3 + 4?" for i in range(num_rows)]
    prompts = [[{"role": "user", "content": q}] for q in questions] if conversational else questions
    columns = {"prompt": prompts}
    if solution:
        columns["solution"] = ["7"] * num_rows
    return Dataset.from_dict(columns)


def _trainer(trainer_cls, config_cls, tmp_path, model_dir, dataset, reward_funcs, processing_classes, **fields):
    config = config_cls(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,  # float32 throughout, so the reward model's scores compare to 1e-4
        report_to="none",
        per_device_train_batch_size=4,
        num_generations=2,
        max_attempt_length=16,  # the scripted attempts end before the cap
        max_completion_length=160,
        scale_rewards="none",
        **fields,
    )
    return trainer_cls(
        model=str(model_dir),
        args=config,
        train_dataset=dataset,
        reward_funcs=reward_funcs,
        reward_processing_classes=processing_classes,
    )


def _scripted_batch(trainer, plan, by_prompt: bool = True):
    """One scored batch of the training rows, attempt k of episode i being `plan(i, k)` (episodes found by their
    prompt, or by position in each generation call)."""
    rows = [dict(row) for row in trainer.train_dataset]
    prompt_ids, _, _ = trainer._tokenize_prompts([row["prompt"] for row in rows])
    prompts = prompt_ids if by_prompt else None
    trainer._generate_attempt = ScriptedGenerate(trainer.processing_class, plan, prompts=prompts)
    trainer.model.train()
    out = trainer._generate_and_score_completions(rows)
    return rows, out


@pytest.mark.parametrize("kind", KINDS)
def test_score_scores_each_attempt_on_its_own_text(tmp_path, tiny_model_dir, reward_model_dir, tokenizer, kind):
    """SCoRe with each kind: attempt 2's reward is the function's value on attempt 2's text alone (hand-checked for the
    callables: len / 10; the reward model's own score of prompt + attempt 2), logged under TRL's name."""
    from selfcorrect.trainers import SCoReConfig, SCoReTrainer

    funcs, processing = _reward_funcs(kind, reward_model_dir, tokenizer)
    trainer = _trainer(SCoReTrainer, SCoReConfig, tmp_path, tiny_model_dir, _dataset(True), funcs, processing)
    name = _expected_name(kind, reward_model_dir)
    assert trainer.reward_func_names == [name]
    rows, out = _scripted_batch(trainer, lambda i, k: WRONG if k == 0 else RIGHT)
    logged = trainer._logs["extra"]  # the completions table: one column per attempt
    if kind in ("callable", "async"):
        expected = {1: [1.6] * 4, 2: [1.3] * 4}
    else:
        expected = {
            k + 1: [reward_model_score(reward_model_dir, tokenizer, r["prompt"], t) for r in rows]
            for k, t in enumerate((WRONG, RIGHT))
        }
        assert expected[1][0] != pytest.approx(expected[2][0], abs=1e-4)  # the two attempts' scores differ
    assert logged["reward_1"] == pytest.approx(expected[1], abs=1e-4)
    assert logged["reward_2"] == pytest.approx(expected[2], abs=1e-4)
    # TRL's reward metric, under TRL's name, is the last attempt's
    last_mean = sum(expected[2]) / len(expected[2])
    assert trainer._metrics["train"][f"rewards/{name}/mean"][-1] == pytest.approx(last_mean, abs=1e-4)
    assert torch.isfinite(out["advantages"]).all()


@pytest.mark.parametrize("conversational", [True, False], ids=["conversational", "standard"])
def test_score_reward_model_input_follows_the_data_format(
    tmp_path, tiny_model_dir, reward_model_dir, tokenizer, conversational
):
    """Standard (string) prompts: the reward model reads prompt + attempt joined; conversational: the chat template."""
    from selfcorrect.trainers import SCoReConfig, SCoReTrainer

    dataset = _dataset(conversational)
    trainer = _trainer(SCoReTrainer, SCoReConfig, tmp_path, tiny_model_dir, dataset, [str(reward_model_dir)], None)
    rows, _ = _scripted_batch(trainer, lambda i, k: WRONG if k == 0 else f"So \\boxed{{{i}}}.")
    expected = [
        reward_model_score(reward_model_dir, tokenizer, r["prompt"], f"So \\boxed{{{i}}}.") for i, r in enumerate(rows)
    ]
    assert trainer._logs["extra"]["reward_2"] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_ufo_reward_functions_judge_attempts(tmp_path, tiny_model_dir, reward_model_dir, tokenizer, kind):
    """UFO on rows without gold answers, `judge_threshold` set: each kind's value of an attempt's own text decides
    whether it is right, so episodes whose first attempt scores above the threshold stop there, the others get
    "try again" and a second attempt, and UFO's return (the gradient) follows those verdicts."""
    from selfcorrect.trainers import UFOConfig, UFOTrainer

    if kind in ("callable", "async"):
        scores = {WRONG: 1.6, RIGHT: 1.3}
    else:
        prompt = _dataset(True, solution=False, distinct=False)[0]["prompt"]
        scores = {t: reward_model_score(reward_model_dir, tokenizer, prompt, t) for t in (WRONG, RIGHT)}
    # the higher-scoring text is the "right" one; the threshold lies between the two scores
    high, low = sorted(scores, key=scores.get, reverse=True)
    threshold = (scores[high] + scores[low]) / 2
    funcs, processing = _reward_funcs(kind, reward_model_dir, tokenizer)
    trainer = _trainer(
        UFOTrainer,
        UFOConfig,
        tmp_path,
        tiny_model_dir,
        _dataset(True, solution=False, distinct=False),
        funcs,
        processing,
        max_attempts=2,
        judge_threshold=threshold,
    )
    # episodes 0 and 2 are right at once; 1 and 3 are wrong first, then right (every second attempt is right, so the
    # generation call's position stands for the episode)
    rows, out = _scripted_batch(trainer, lambda i, k: high if i % 2 == 0 or k == 1 else low, by_prompt=False)
    assert [row["attempt_correct"] for row in rows] == [[True], [False, True], [True], [False, True]]
    assert [row["feedback_texts"] for row in rows] == [
        [],
        ["Incorrect. Please think again."],
        [],
        ["Incorrect. Please think again."],
    ]
    # UFO's return: 1 for a first-turn success, gamma = 0.5 for a second; normalized within groups of 2 -> +-0.25
    first_tokens = [out["advantages"][b, row["attempt_spans"][0][0]].item() for b, row in enumerate(rows)]
    assert first_tokens == pytest.approx([0.25, -0.25, 0.25, -0.25], abs=1e-5)


def logging_reward(completions, log_extra, log_metric, **kwargs):
    """A reward that logs through TRL's `log_extra` and `log_metric` kwargs: each completion's text, and a count."""
    texts = [c[-1]["content"] for c in completions]
    log_extra("seen", texts)
    log_metric("long_texts", float(sum(len(t) > 14 for t in texts)))
    return [0.0] * len(texts)


def test_score_reward_logs_are_named_per_attempt(tmp_path, tiny_model_dir):
    """What a reward function logs with `log_extra` / `log_metric` while attempt k is scored lands under
    `<column>_<k>` / `<metric>_t<k>`: one table row per episode in each, holding that attempt's values."""
    from selfcorrect.trainers import SCoReConfig, SCoReTrainer

    trainer = _trainer(SCoReTrainer, SCoReConfig, tmp_path, tiny_model_dir, _dataset(True), [logging_reward], None)
    _scripted_batch(trainer, lambda i, k: WRONG if k == 0 else RIGHT)
    assert list(trainer._logs["extra"]["seen_1"]) == [WRONG] * 4
    assert list(trainer._logs["extra"]["seen_2"]) == [RIGHT] * 4
    assert "seen" not in trainer._logs["extra"]
    metrics = trainer._metrics["train"]
    assert metrics["long_texts_t1"] == [4.0] and metrics["long_texts_t2"] == [0.0]  # 16 and 13 characters


def test_a_recipe_names_a_reward_model_by_folder(tmp_path, tiny_model_dir, reward_model_dir):
    """`reward_funcs: [accuracy, <folder>]` in a recipe: the folder reaches TRL as a string, which loads it as a one-label
    sequence classifier and names it after the folder, beside the registered function."""
    from tests.helpers import build_trainer, write_recipe

    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="score",
        reward_funcs=["accuracy", str(reward_model_dir)],
        max_attempt_length=8,
        max_completion_length=96,
    )
    trainer = build_trainer(recipe)
    assert trainer.reward_func_names == ["accuracy", reward_model_dir.name]
    reward_model = trainer.reward_funcs[1]
    assert reward_model.__class__.__name__ == "LlamaForSequenceClassification"
    assert reward_model.config.num_labels == 1


def test_a_reward_model_hub_id_offline_is_a_clear_error(monkeypatch):
    """A hub id that is neither cached nor reachable fails at once, naming the field, not after transformers' retries."""
    from selfcorrect import models
    from selfcorrect.models import ModelLoadError
    from selfcorrect.rewards import get_reward_funcs

    monkeypatch.setattr(models, "_hub_is_reachable", lambda *args, **kwargs: False)
    with pytest.raises(
        ModelLoadError, match=r"`reward_funcs`: 'no-such-org/no-such-reward-model' is not a local folder"
    ):
        get_reward_funcs(["accuracy", "no-such-org/no-such-reward-model"])


def test_attempts_never_made_reach_no_reward_function(tmp_path, tiny_model_dir, caplog):
    """SCoRe with `stop_on_correct`: episodes that stop at a right first attempt make no second one: no reward function is called on an empty
    attempt, so TRL never warns that all reward functions returned None, and that attempt's reward stays unset."""
    from selfcorrect.rewards import get_reward_funcs
    from selfcorrect.trainers import SCoReConfig, SCoReTrainer

    seen = []

    def recording_accuracy(completions, **kwargs):
        seen.extend(c[-1]["content"] for c in completions)
        return get_reward_funcs(["accuracy"])[0](completions, **kwargs)

    trainer = _trainer(
        SCoReTrainer,
        SCoReConfig,
        tmp_path,
        tiny_model_dir,
        _dataset(True, solution=True, distinct=False),
        [recording_accuracy],
        None,
        max_attempts=2,
        stop_on_correct=True,
    )
    with caplog.at_level("WARNING"):
        rows, _ = _scripted_batch(trainer, lambda i, k: RIGHT if i % 2 == 0 or k == 1 else WRONG, by_prompt=False)
    assert [row["attempt_correct"] for row in rows] == [[True], [False, True], [True], [False, True]]
    assert "" not in seen
    assert not [r for r in caplog.records if "All reward functions returned None" in r.getMessage()]
    rewards = trainer._metrics["train"]
    assert rewards["selfcorrect/acc_t1"] == [0.5]
