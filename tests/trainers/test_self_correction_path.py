"""Regressions on the self-correction path (issue 12): evaluation builds what training builds, episodes that stop
early are scored, every EOS id ends an attempt, degenerate settings fail at parse time, eval groups are eval-sized."""

from __future__ import annotations

import pytest
import torch

from selfcorrect.configs import DataArgs, RecipeError, parse_recipe
from selfcorrect.data import load_datasets
from selfcorrect.episodes import ChatTurns, EpisodeSpec, run_episodes
from selfcorrect.evaluate import evaluate_self_correction, markdown_table
from selfcorrect.feedback import get_feedback_provider
from tests.helpers import ROOT, ScriptedGenerate, boxed_plan, build_trainer, write_recipe


def _prompt_ids(tokenizer, rows, **kwargs):
    return [ChatTurns(tokenizer, chat_template_kwargs=kwargs, multi_turn=False).prompt_ids(r["prompt"]) for r in rows]


# --- defect 1: an episode that stops at its first correct answer is evaluated (UFO) -----------------------------------


def test_unary_feedback_eval_carries_the_last_outcome_and_reports_success_within_k(tokenizer):
    _, test = load_datasets(DataArgs(arithmetic_eval_size=4), train=False)
    rows = [dict(r) for r in test]
    # p0 right at once (stops after 1 turn), p1 right at turn 2, p2 right at turn 3, p3 never right
    plan = [[True, True, True], [False, True, True], [False, False, True], [False, False, False]]
    generate = ScriptedGenerate(tokenizer, boxed_plan(test["solution"], plan), prompts=_prompt_ids(tokenizer, rows))
    result = evaluate_self_correction(None, tokenizer, test, attempts=3, feedback="unary", generate=generate)
    m = result["metrics"]
    assert [s["correct"] for s in result["samples"]] == [[True], [False, True], [False, False, True], [False] * 3]
    assert (m["acc_t1"], m["acc_t2"], m["acc_t3"]) == (1 / 4, 2 / 4, 3 / 4)  # carried forward = success within k
    assert (m["succ_t1"], m["succ_t2"], m["succ_t3"]) == (1 / 4, 2 / 4, 3 / 4)
    assert m["delta_i2c"] == 2 / 4 and m["delta_c2i"] == 0.0
    assert m["attempts_mean"] == (1 + 2 + 3 + 3) / 4 and m["stops_on_correct"] == 1.0
    assert m["repeat_answer_frac"] == 3 / 5  # of 5 later attempts, p2 t2 and p3 t2, t3 repeat -999
    head, _, row = markdown_table(m).splitlines()
    assert head.endswith("| succ@3 − acc@1 | turns |") and row.endswith("| +50.0 | 2.25 |")


def test_recipe_stop_on_correct_reaches_the_eval(tmp_path, tiny_model_dir):
    recipe = write_recipe(tmp_path, tiny_model_dir, method="ufo", max_attempt_length=8, max_completion_length=96)
    _, _, script_args, training_args = parse_recipe(["--config", str(recipe)])
    assert script_args.eval_feedback == "unary" and script_args.eval_stop_on_correct is True
    # an eval with another feedback than training's does not inherit training's stop rule
    _, _, script_args, _ = parse_recipe(["--config", str(recipe), "--eval_feedback", "indicative"])
    assert script_args.eval_stop_on_correct is False


# --- defect 3: the eval's token cap defaults to training's ------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, expected",
    [
        (dict(method="score", max_attempt_length=24, max_completion_length=96), 24),
        (dict(method="grpo", max_completion_length=16), 16),
        (dict(method="score", max_attempt_length=24, max_completion_length=96, eval_max_new_tokens=7), 7),
    ],
    ids=["multi-attempt", "single-turn", "explicit"],
)
def test_eval_token_cap_defaults_to_the_training_cap(tmp_path, tiny_model_dir, fields, expected):
    recipe = write_recipe(tmp_path, tiny_model_dir, **fields)
    _, _, script_args, _ = parse_recipe(["--config", str(recipe)])
    assert script_args.eval_max_new_tokens == expected


def test_gpu_score_recipe_evaluates_with_its_attempt_length():

    import yaml

    recipe = ROOT / "recipes" / "qwen2.5-math-1.5b" / "score_stage2.yaml"
    values = yaml.safe_load(recipe.read_text())
    assert "eval_max_new_tokens" not in values  # the recipe relies on the default
    _, _, script_args, training_args = parse_recipe(
        ["--config", str(recipe), "--bf16", "false", "--use_cpu", "true", "--use_vllm", "false"]
    )
    assert script_args.eval_max_new_tokens == training_args.max_attempt_length == values["max_attempt_length"]


# --- defect 4: every EOS id of the generation config ends an attempt ---------------------------------------------------


def test_any_eos_id_ends_an_attempt_without_a_second_eos(tokenizer):
    other_eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert other_eos != tokenizer.eos_token_id
    turns = ChatTurns(tokenizer, eos_token_ids=[other_eos])
    assert turns.eos_token_ids == {tokenizer.eos_token_id, other_eos}
    rows = [{"prompt": [{"role": "user", "content": "1 + 1?"}], "solution": "2"}]
    prompts = _prompt_ids(tokenizer, rows)
    generate = ScriptedGenerate(tokenizer, boxed_plan(["2"], [[False, True]]), prompts=prompts, stop_id=other_eos)
    (episode,) = run_episodes(
        prompts,
        rows,
        generate,
        decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        feedback=get_feedback_provider("score_instruction"),
        turns=turns,
        spec=EpisodeSpec(max_attempts=2, max_attempt_tokens=32),
    )
    assert episode.attempt_truncated == [False, False] and episode.attempt_correct == [False, True]
    start, end = episode.attempt_spans[0]
    assert episode.completion_ids[end - 1] == other_eos and episode.completion_ids[end] != tokenizer.eos_token_id
    feedback = turns.feedback_ids(episode.feedback_texts[0])
    assert episode.completion_ids[end : end + len(feedback)] == feedback


def test_trainer_ends_attempts_at_every_eos_id_trl_stops_at(tmp_path, tiny_model_dir):
    recipe = write_recipe(tmp_path, tiny_model_dir, method="score", max_attempt_length=8, max_completion_length=96)
    trainer = build_trainer(recipe)
    assert trainer.chat_turns.eos_token_ids == set(trainer.eos_token_ids)


# --- defect 5: evaluation renders exactly the contexts training renders -------------------------------------------------


@pytest.fixture
def kwarg_template_model(tmp_path_factory, tiny_model_dir):
    """The tiny model with a chat template that reads a `preamble` kwarg (so chat_template_kwargs change the ids)."""
    import shutil

    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("kwarg-template")
    shutil.copytree(tiny_model_dir, path, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = "{% if preamble is defined %}{{ preamble }}{% endif %}" + tok.chat_template
    tok.save_pretrained(path)
    return path


def test_eval_contexts_are_the_training_contexts(tmp_path, kwarg_template_model):
    recipe = write_recipe(
        tmp_path,
        kwarg_template_model,
        method="score",
        max_attempt_length=16,  # the eval cap: the scripted "So \\boxed{-999}." (10 tokens) and its EOS fit
        max_completion_length=96,
        chat_template_kwargs={"preamble": "PREAMBLE "},
        feedback_template="Check attempt {attempt} again and box the answer: \\boxed{}.",
        arithmetic_eval_size=2,
    )
    trainer = build_trainer(recipe)
    _, data_args, script_args, _ = parse_recipe(["--config", str(recipe)])
    _, test = load_datasets(data_args, train=False)
    rows = [dict(r) for r in test]
    train_prompts, _, _ = trainer._tokenize_prompts([r["prompt"] for r in rows])
    assert tokenizer_text(trainer, train_prompts[0]).startswith("PREAMBLE ")  # the kwarg is in training's ids

    plan = boxed_plan(test["solution"], [[False, False]] * 2)
    generate = ScriptedGenerate(trainer.processing_class, plan, prompts=train_prompts)
    evaluate_self_correction(
        None,
        trainer.processing_class,
        test,
        attempts=script_args.eval_attempts,
        feedback=script_args.eval_feedback,
        feedback_template=script_args.eval_feedback_template,
        chat_template_kwargs=script_args.eval_chat_template_kwargs,
        max_new_tokens=script_args.eval_max_new_tokens,
        generate=generate,
    )
    first = [c for a, contexts in generate.calls if a == 0 for c in contexts]
    assert first == [list(p) for p in train_prompts]  # same prompt ids as TRL's `_tokenize_prompts`
    second = [c for a, contexts in generate.calls if a == 1 for c in contexts]
    attempt = trainer.processing_class.encode("So \\boxed{-999}.", add_special_tokens=False)
    attempt += [trainer.processing_class.eos_token_id]
    message = trainer.feedback_provider.render(trainer.args.feedback_template, _outcome(attempt_index=0))
    assert message == "Check attempt 1 again and box the answer: \\boxed{}."
    expected = [list(p) + attempt + trainer.chat_turns.feedback_ids(message) for p in train_prompts]
    assert second == expected  # same feedback turn, spliced as the trainer splices it


def tokenizer_text(trainer, ids):
    return trainer.processing_class.decode(ids)


def _outcome(attempt_index):
    from selfcorrect.feedback import AttemptOutcome

    return AttemptOutcome(attempt_index, "", "-999", False, False, {"solution": "0"})


# --- defect 6: degenerate settings ------------------------------------------------------------------------------------


def test_score_stage1_without_any_kl_is_rejected(tmp_path, tiny_model_dir):
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="score",
        score_stage=1,
        beta=0.0,
        turn1_beta=0.0,
        max_attempt_length=8,
        max_completion_length=96,
    )
    with pytest.raises(RecipeError, match=r"`beta: 0` and `turn1_beta: 0` has no KL"):
        parse_recipe(["--config", str(recipe)])


def test_eval_mode_advantages_use_eval_group_size(tmp_path, tiny_model_dir):
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="score",
        score_stage=2,
        alpha=0.0,
        num_generations_eval=2,
        max_attempt_length=8,
        max_completion_length=96,
    )
    trainer = build_trainer(recipe)
    rewards = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # (N, K)
    trainer.model.train()
    assert trainer.attempt_advantages(rewards, {})[:, 0].tolist() == [0.75, -0.25, -0.25, -0.25]  # one group of 4
    trainer.model.eval()
    assert trainer.attempt_advantages(rewards, {})[:, 0].tolist() == [0.5, -0.5, 0.0, 0.0]  # two groups of 2
