"""Slow tests on the embedded SmolLM2-135M-Instruct (`pytest -m slow`, a few minutes on CPU)."""

from __future__ import annotations

import pytest
import yaml

pytestmark = pytest.mark.slow


def test_embedded_model_two_attempt_eval_writes_boxed_answers(tmp_path):
    from selfcorrect.evaluate import main as eval_main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            dict(
                model_name_or_path="embedded",
                use_cpu=True,
                bf16=False,
                output_dir=str(tmp_path),
                arithmetic_levels=[1],
                arithmetic_eval_size=8,
                eval_max_new_tokens=48,
            )
        )
    )
    result = eval_main(["--config", str(recipe)])
    metrics = result["metrics"]
    assert metrics["num_problems"] == 8 and 0.0 <= metrics["acc_t1"] <= 1.0
    assert metrics["boxed_t1"] > 0  # the worked example in the system prompt teaches the format
    assert all(len(s["attempts"]) == 2 and len(s["feedback"]) == 1 for s in result["samples"])
    assert (tmp_path / "eval" / "eval.md").is_file()


def test_embedded_model_one_score_step(tmp_path):
    from selfcorrect.train import main as train_main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            dict(
                method="score",
                model_name_or_path="embedded",
                use_cpu=True,
                bf16=False,
                output_dir=str(tmp_path / "out"),
                arithmetic_levels=[1],
                arithmetic_train_size=8,
                max_steps=1,
                per_device_train_batch_size=4,
                num_generations=4,
                max_attempt_length=32,
                max_completion_length=160,
                learning_rate=1e-5,
                logging_steps=1,
                save_strategy="no",
                report_to="none",
                reward_funcs=["accuracy", "format"],
            )
        )
    )
    trainer = train_main(["--config", str(recipe)])
    log = trainer.state.log_history[0]
    assert trainer.state.global_step == 1 and "selfcorrect/acc_t2" in log and log["loss"] == log["loss"]
