"""Evaluation with scripted generation, so every number in the table is known."""

from __future__ import annotations

import pytest

from selfcorrect.configs import DataArgs, RecipeError, parse_recipe
from selfcorrect.data import load_datasets
from selfcorrect.evaluate import evaluate_pass_at_k, markdown_table
from selfcorrect.metrics import pass_at_k
from tests.helpers import write_recipe


def test_pass_at_k_from_scripted_samples(tokenizer):
    _, test = load_datasets(DataArgs(arithmetic_eval_size=3), train=False)
    golds = test["solution"]
    # problem 0: 2 of 4 samples right; problem 1: 0 of 4; problem 2: 4 of 4 (one right answer cut off: wrong)
    plan = {0: [True, False, True, False], 1: [False] * 4, 2: [True, True, True, True]}
    calls = []

    def generate(contexts, max_new_tokens, attempt):
        calls.append(len(contexts))
        out = []
        for i in range(len(contexts)):
            problem, sample = divmod(i, 4)
            answer = golds[problem] if plan[problem][sample] else "-999"
            ids = tokenizer.encode(f"So \\boxed{{{answer}}}.", add_special_tokens=False)
            truncated = problem == 2 and sample == 3
            out.append(ids if truncated else ids + [tokenizer.eos_token_id])
        return out, None

    metrics = evaluate_pass_at_k(None, tokenizer, test, num_samples=4, ks=[1, 2, 4], generate=generate)
    assert calls == [12]
    counts = [2, 0, 3]
    for k in (1, 2, 4):
        assert metrics[f"pass@{k}"] == pytest.approx(sum(pass_at_k(4, c, k) for c in counts) / 3)
    assert metrics["pass@1"] == pytest.approx((0.5 + 0 + 0.75) / 3)
    table = markdown_table({"acc_t1": 0.5, "delta": 0, "delta_i2c": 0, "delta_c2i": 0, **metrics})
    assert "pass@4" in table and f"{100 * metrics['pass@2']:.1f}" in table


def test_pass_at_k_rejects_k_above_n(tmp_path, tiny_model_dir, tokenizer):
    with pytest.raises(ValueError, match="1..eval_num_samples"):
        evaluate_pass_at_k(None, tokenizer, [], num_samples=2, ks=[1, 4])
    recipe = write_recipe(tmp_path, tiny_model_dir, eval_num_samples=4, eval_pass_k=[1, 8])
    with pytest.raises(RecipeError, match="eval_pass_k"):
        parse_recipe(["--config", str(recipe)])
