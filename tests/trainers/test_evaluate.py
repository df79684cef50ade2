"""Evaluation with scripted generation, so every number in the table is known."""

from __future__ import annotations

import json
import logging
import re

import pytest

from selfcorrect.configs import DataArgs, RecipeError, parse_recipe
from selfcorrect.data import load_datasets
from selfcorrect.evaluate import (
    EvalProgress,
    evaluate_pass_at_k,
    evaluate_self_correction,
    load_model_for_eval,
    markdown_comparison,
    markdown_table,
    save_comparison,
    save_results,
)
from selfcorrect.metrics import pass_at_k
from selfcorrect.models import ModelLoadError
from tests.helpers import ScriptedGenerate, boxed_plan, tiny_llama_config, write_recipe


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


# --- the self-correction table from scripted attempts -----------------------------------------------------------------


def test_self_correction_table_from_scripted_attempts(tokenizer, tmp_path):
    _, test = load_datasets(DataArgs(arithmetic_eval_size=4), train=False)
    assert test["level"] == [1, 2, 1, 2]
    # p0 wrong -> right, p1 right -> wrong, p2 right -> right, p3 right but cut off (wrong) -> right
    plan = [[False, True], [True, False], [True, True], [True, True]]
    generate = ScriptedGenerate(tokenizer, boxed_plan(test["solution"], plan), truncated={(3, 0)})
    result = evaluate_self_correction(None, tokenizer, test, attempts=2, generate=generate)
    assert [(a, len(c)) for a, c in generate.calls] == [(0, 4), (1, 4)]  # one batched call per attempt, all problems
    m = result["metrics"]
    assert m["acc_t1"] == 2 / 4 and m["acc_t2"] == 3 / 4 and m["delta"] == 1 / 4
    assert m["delta_i2c"] == 2 / 4 and m["delta_c2i"] == 1 / 4  # p0, p3 / p1, fractions of all problems
    assert m["truncated_t1"] == 1 / 4 and m["boxed_t1"] == 1.0 and m["num_problems"] == 4
    assert m["level_1/acc_t1"] == 1 / 2 and m["level_1/acc_t2"] == 1.0  # p0, p2
    assert m["level_2/acc_t1"] == 1 / 2 and m["level_2/acc_t2"] == 1 / 2  # p1, p3
    assert [s["correct"] for s in result["samples"]] == [[False, True], [True, False], [True, True], [False, True]]
    assert all("There might be an error" in s["feedback"][0] for s in result["samples"])
    assert markdown_table(m, title="scripted").splitlines()[2] == "| n=4 | 50.0 | 75.0 | +25.0 | +50.0 | +25.0 |"

    path = save_results(result, tmp_path / "eval", "scripted")
    assert json.loads(path.read_text())["metrics"]["acc_t2"] == 0.75
    assert (tmp_path / "eval" / "scripted.md").read_text().startswith("| scripted | acc@t1 | acc@t2 |")
    assert (tmp_path / "eval" / "scripted.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    before = {**m, "acc_t2": 0.25, "delta": -0.25, "delta_i2c": 0.0, "delta_c2i": 0.25}
    table = save_comparison({"before": before, "after": m}, tmp_path / "eval", "before_after")
    assert table.splitlines()[2:] == [
        "| before (n=4) | 50.0 | 25.0 | -25.0 | +0.0 | +25.0 |",
        "| after (n=4) | 50.0 | 75.0 | +25.0 | +50.0 | +25.0 |",
    ]
    assert (tmp_path / "eval" / "before_after.png").is_file()


def test_plot_degrades_to_a_warning_without_matplotlib(tmp_path, monkeypatch, caplog):
    import sys

    from selfcorrect.plots import save_eval_plot

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    metrics = {"acc_t1": 0.5, "acc_t2": 0.75, "delta": 0.25, "delta_i2c": 0.5, "delta_c2i": 0.25}
    with caplog.at_level("WARNING"):
        assert save_eval_plot({"m": metrics}, tmp_path / "m.png") is None
    assert "matplotlib is not installed" in caplog.text and not (tmp_path / "m.png").exists()
    save_results({"metrics": metrics, "samples": []}, tmp_path, "m")  # the JSON and the table are still written
    assert (tmp_path / "m.json").is_file() and (tmp_path / "m.md").is_file()


# --- what `selfcorrect eval` loads, and bad input ---------------------------------------------------------------------


def _tiny_llama(path, tokenizer, hidden):
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(1)
    LlamaForCausalLM(tiny_llama_config(tokenizer, hidden=hidden, layers=1)).save_pretrained(path)
    return path


def test_eval_loads_a_lora_adapter_onto_its_base(tmp_path, tiny_model_dir, tokenizer):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl import ModelConfig

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)  # adapter_config.json names tiny_model_dir as its base
    assert not (adapter / "config.json").exists()
    ids = torch.tensor([tokenizer.encode("1 + 1 = ")])
    with torch.no_grad():
        expected = peft_model(ids).logits

    model, tok = load_model_for_eval(ModelConfig(model_name_or_path=str(adapter)))
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, expected, atol=1e-5)  # base + adapter, merged
    assert len(tok) == len(tokenizer)

    # an adapter whose base does not fit (hidden size 64 instead of 32): one clear error, not a traceback
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(_tiny_llama(tmp_path / "other", tokenizer, hidden=64))
    tokenizer.save_pretrained(tmp_path / "other")
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="adapter .* does not match its base model .*other"):
        load_model_for_eval(ModelConfig(model_name_or_path=str(adapter)))


def test_eval_bad_checkpoints_are_clear_errors(tmp_path, tiny_model_dir, tokenizer):
    from trl import ModelConfig

    (tmp_path / "run" / "checkpoint-2").mkdir(parents=True)
    (tmp_path / "run" / "checkpoint-2" / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="checkpoint .*checkpoint-3 does not exist.*checkpoint-2"):
        load_model_for_eval(ModelConfig(model_name_or_path=str(tmp_path / "run" / "checkpoint-3")))
    # a checkpoint whose vocabulary is smaller than its tokenizer's: from a different model
    small = tmp_path / "small"
    _tiny_llama(small, tokenizer, hidden=32)
    config = json.loads((small / "config.json").read_text())
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(LlamaConfig(**{**config, "vocab_size": 1000})).save_pretrained(small)
    tokenizer.save_pretrained(small)
    with pytest.raises(ModelLoadError, match="tokenizer has 49152 tokens but the model's embedding table has 1000"):
        load_model_for_eval(ModelConfig(model_name_or_path=str(small)))


def test_eval_split_without_gold_answers_fails_before_loading_the_model(tmp_path, capsys):
    from selfcorrect.cli import main as cli_main

    data = tmp_path / "data"
    data.mkdir()
    (data / "test.jsonl").write_text('{"problem": "1+1?"}\n{"problem": "2+2?"}\n')
    recipe = write_recipe(tmp_path, tmp_path / "no-such-model", dataset_name=str(data))
    assert cli_main(["eval", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "split 'test'" in err and "no column(s) 'solution'" in err and "solution_column" in err
    (data / "test.jsonl").write_text('{"problem": "1+1?", "solution": ""}\n')
    assert cli_main(["eval", "--config", str(recipe)]) == 2
    assert "gold answers do not parse" in capsys.readouterr().err


def test_periodic_eval_steps_must_not_be_negative(tmp_path, tiny_model_dir):
    recipe = write_recipe(tmp_path, tiny_model_dir, selfcorrect_eval_steps=-1)
    with pytest.raises(RecipeError, match="selfcorrect_eval_steps"):
        parse_recipe(["--config", str(recipe)])


# --- progress while evaluating, and the one-attempt table -------------------------------------------------------------


def test_progress_line_per_attempt_round(tokenizer, caplog):
    _, test = load_datasets(DataArgs(arithmetic_eval_size=4), train=False)
    plan = [[True, True], [False, True], [True, True], [False, False]]
    generate = ScriptedGenerate(tokenizer, boxed_plan(test["solution"], plan))
    with caplog.at_level(logging.INFO, logger="selfcorrect.evaluate"):
        evaluate_self_correction(
            None, tokenizer, test, attempts=2, feedback="unary", stop_on_correct=True, generate=generate, progress=True
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "selfcorrect.evaluate"]
    assert lines[0].startswith("evaluating 4 problems, up to 2 attempts of <= 128 tokens each")
    assert lines[1].startswith("eval attempt 1/2: 4/4 problems | ")
    assert lines[2].startswith("eval attempt 2/2: 2/2 problems still going (of 4) | ")  # p0, p2 stopped right
    assert all(re.search(r"\d+ tokens, [\d.]+ tok/s \| \S+ elapsed, ETA \S+$", line) for line in lines[1:])
    assert len(lines) == 3  # a caller's generator gets whole rounds: one line each

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="selfcorrect.evaluate"):
        evaluate_self_correction(None, tokenizer, test, attempts=2, generate=generate)  # progress off by default
    assert not [r for r in caplog.records if r.name == "selfcorrect.evaluate"]


def test_progress_reports_each_generation_batch_and_returns_what_the_generator_returns(tokenizer):
    contexts = [[i + 1] for i in range(5)]
    generate = ScriptedGenerate(tokenizer, lambda i, k: f"answer {i}", prompts=contexts)
    lines: list[str] = []
    progress = EvalProgress(generate, problems=5, attempts=2, chunk=2, report=lines.append)
    samples, logprobs = progress(contexts, 16, 0)
    assert samples == ScriptedGenerate(tokenizer, lambda i, k: f"answer {i}")(contexts, 16, 0)[0]  # one call
    assert logprobs is None and [len(c) for _, c in generate.calls] == [2, 2, 1]
    assert [line.split(" | ")[0] for line in lines] == ["eval attempt 1/2: " + f"{n}/5 problems" for n in (2, 4, 5)]
    assert f"{sum(len(s) for s in samples)} tokens" in lines[-1]


@pytest.mark.parametrize("quiet", [False, True])
def test_recipe_evaluation_shows_progress_unless_quiet(tiny_model_dir, tokenizer, caplog, quiet):
    """The path of `selfcorrect eval` and of the evaluations during training (`evaluate_with_script_args`)."""
    from transformers import AutoModelForCausalLM

    from selfcorrect.configs import ScriptArgs
    from selfcorrect.evaluate import evaluate_with_script_args

    _, test = load_datasets(DataArgs(arithmetic_eval_size=3), train=False)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = ScriptArgs(eval_attempts=1, eval_max_new_tokens=2, eval_batch_size=2, quiet=quiet)
    with caplog.at_level(logging.INFO, logger="selfcorrect.evaluate"):
        evaluate_with_script_args(model, tokenizer, test, args)
    lines = [r.getMessage() for r in caplog.records if r.name == "selfcorrect.evaluate"]
    if quiet:
        assert lines == []
    else:  # the evaluation's own generator: a line per batch of `eval_batch_size` problems
        assert [line.split(" | ")[0] for line in lines[1:]] == [
            "eval: 2/3 problems",
            "eval: 3/3 problems",
        ]


def test_one_attempt_table_shows_only_what_applies():
    one = {"acc_t1": 0.25, "delta": 0.0, "delta_i2c": 0.0, "delta_c2i": 0.0, "num_problems": 4}
    table = markdown_table(one, title="m").splitlines()
    assert table[0] == "| m | acc@t1 |" and table[2] == "| n=4 | 25.0 |"
    two = {**one, "acc_t2": 0.5, "delta": 0.25, "delta_i2c": 0.25}
    assert markdown_table(two, title="m").splitlines()[0] == "| m | acc@t1 | acc@t2 | Δ(t1,tK) | Δ i→c | Δ c→i |"
    assert markdown_comparison({"before": one, "after": one}).splitlines()[2] == "| before (n=4) | 25.0 |"


def test_in_training_eval_records_which_rows_it_evaluated(tmp_path, tiny_model_dir):
    """`selfcorrect train` evaluating on the training rows (one file, `dataset_test_split: train`): the after-training
    results file says `held_out: false`, as `selfcorrect eval`'s does."""
    import json

    from selfcorrect.train import main
    from tests.helpers import write_jsonl, write_recipe

    data = write_jsonl(tmp_path / "d.jsonl", [{"problem": f"{i}+1?", "solution": str(i + 1)} for i in range(4)])
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="grpo",
        dataset_name=str(data),
        dataset_test_split="train",
        max_steps=1,
        eval_after_training=True,
        eval_max_new_tokens=4,
    )
    main(["--config", str(recipe)])
    saved = json.loads((tmp_path / "out" / "eval" / "after.json").read_text())
    assert saved["config"]["eval_split"] == {"dataset": str(data), "split": "train", "held_out": False}
