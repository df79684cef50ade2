"""recipes/prefill_cost.py (issue 14's KV-reuse measurement) runs, renders attempt-2 contexts as the trainers do, and
reports shares that are consistent with its own timings."""

from __future__ import annotations

import json

from tests.helpers import load_script


def test_contexts_hold_the_prompt_an_attempt_of_exactly_l_tokens_and_the_feedback(tokenizer):
    prompts, contexts = load_script("prefill_cost").episode_contexts(tokenizer, 40, batch=3)
    assert len(prompts) == len(contexts) == 3
    text = tokenizer.decode(contexts[0])
    assert text.count("Incorrect. Please think again.") == 1 and "How many apples" in text
    assert contexts[0][: len(prompts[0]) - 3] == prompts[0][:-3]  # the same conversation start
    assert len(contexts[0]) >= len(prompts[0]) + 40


def test_prefill_cost_runs_on_a_tiny_model(tiny_model_dir, tmp_path):
    rows = load_script("prefill_cost").main(["--model", str(tiny_model_dir), "--lengths", "4,8", "--batch", "2", "--repeats", "1",
                           "--out", str(tmp_path)])  # fmt: skip
    assert [r["attempt_tokens"] for r in rows] == [4, 8]
    for r in rows:
        assert r["saving_bound"] == r["prefill_s"] / (r["attempt1_s"] + r["attempt2_s"])
        assert r["context_tokens"] > r["prompt_tokens"] + r["attempt_tokens"]
    assert json.loads((tmp_path / "prefill.json").read_text()) == rows
    assert "| 8 |" in (tmp_path / "prefill.md").read_text()
