"""REDI (Xu et al. 2025): the loss on hand-worked tensors, pair building with hand counts, training without a reference
model (chosen likelihood up, rejected down), the entry point with `method: redi` / `method: sft`, and bad input."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from selfcorrect.algos import length_normalized_logps, redi_loss
from selfcorrect.configs import RecipeError, parse_recipe
from selfcorrect.data import DataError
from selfcorrect.data.redi import build_redi_data
from tests.helpers import dump_recipe, unchanged_parameters, write_jsonl

SYSTEM = [{"role": "system", "content": "Answer in \\boxed{}."}]


def _prompt(question):
    return [*SYSTEM, {"role": "user", "content": question}]


PAIRS = [
    {
        "prompt": _prompt("What is 3 + 4?"),
        "chosen": [{"role": "assistant", "content": "3 + 4 = 7. The answer is \\boxed{7}."}],
        "rejected": [{"role": "assistant", "content": "3 + 4 = 8, so \\boxed{8}."}],
        "solution": "7",
    },
    {
        "prompt": _prompt("What is 10 - 6?"),
        "chosen": [{"role": "assistant", "content": "10 - 6 = 4. The answer is \\boxed{4}."}],
        "rejected": [{"role": "assistant", "content": "I think it is \\boxed{5}."}],
        "solution": "4",
    },
]


def _recipe(tmp_path, model_dir, **fields):
    values = dict(
        method="redi",
        model_name_or_path=str(model_dir),
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        seed=0,
        max_steps=2,
        learning_rate=0.01,
        lr_scheduler_type="constant",
        warmup_steps=0,
        per_device_train_batch_size=2,
        gradient_checkpointing=False,
        max_length=128,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
    )
    return dump_recipe(tmp_path, values | fields)


# --- the loss --------------------------------------------------------------------------------------------------------


def test_redi_loss_hand_worked():
    chosen, chosen_len = torch.tensor([-4.0, -9.0], requires_grad=True), torch.tensor([2, 3])
    rejected, rejected_len = torch.tensor([-6.0, -2.0], requires_grad=True), torch.tensor([3, 4])
    # per-token: chosen [-2, -3], rejected [-2, -0.5]; pairs: 2 + 0.8 * -2 = 0.4 and 3 + 0.8 * -0.5 = 2.6; mean 1.5
    loss = redi_loss(chosen, chosen_len, rejected, rejected_len, alpha=0.8)
    assert loss.item() == pytest.approx(1.5)
    loss.backward()
    # dL/dchosen_i = -1 / (P |y_w,i|), dL/drejected_i = alpha / (P |y_l,i|): the push-up beats the push-down
    assert chosen.grad.tolist() == pytest.approx([-1 / 4, -1 / 6])
    assert rejected.grad.tolist() == pytest.approx([0.8 / 6, 0.8 / 8])
    # alpha = 0 is SFT on the correct traces (length-averaged per sequence)
    assert redi_loss(chosen, chosen_len, rejected, rejected_len, alpha=0.0).item() == pytest.approx(2.5)


def test_length_normalization_of_an_empty_sequence_is_zero():
    out = length_normalized_logps(torch.tensor([-3.0, 0.0]), torch.tensor([3, 0]))
    assert out.tolist() == [-1.0, 0.0]


# --- pair building ---------------------------------------------------------------------------------------------------


def _trace(question, text, solution, truncated=False):
    return {"prompt": _prompt(question), "completion": text, "solution": solution, "truncated": truncated}


def test_pairs_and_sft_set_with_hand_counts():
    traces = [
        _trace("A", "so \\boxed{7}", "7"),  # correct
        _trace("A", "so \\boxed{8}", "7"),  # incorrect
        _trace("A", "so \\boxed{8}", "7"),  # duplicate of the previous one
        _trace("A", "   ", "7"),  # empty
        _trace("B", "\\boxed{2}", "2"),
        _trace("B", "it is \\boxed{2.0}", "2"),  # both correct: no incorrect trace
        _trace("C", "\\boxed{1}", "5"),
        _trace("C", "no answer", "5"),  # both incorrect: no correct trace
        _trace("D", "\\boxed{3}", ""),  # gold does not parse: dropped
        _trace("E", "\\boxed{9}", "9"),
        _trace("E", "then \\boxed{9}", "9", truncated=True),  # cut off by the cap: incorrect
        _trace("E", "\\boxed{6}", "9"),
        _trace("E", "it is \\boxed{9}", "9"),
    ]
    sft, pairs, counts = build_redi_data(traces, max_pairs_per_prompt=2)
    assert counts == {
        "traces": 13,
        "prompts": 5,
        "empty_traces": 1,
        "duplicate_traces": 1,
        "unparseable_gold_prompts": 1,
        "correct_traces": 5,  # A 1, B 2, E 2
        "incorrect_traces": 5,  # A 1, C 2, E 2 (one truncated)
        "truncated_traces": 1,
        "prompts_without_correct": 1,  # C
        "prompts_without_incorrect": 1,  # B
        "pair_prompts": 2,  # A, E
        "pairs": 3,  # A 1, E 2
        "sft_rows": 5,
    }
    assert [(p["prompt"][-1]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [
        ("A", "so \\boxed{7}", "so \\boxed{8}"),
        ("E", "\\boxed{9}", "then \\boxed{9}"),
        ("E", "it is \\boxed{9}", "\\boxed{6}"),
    ]
    assert all(p["chosen"][0]["role"] == "assistant" and p["solution"] for p in pairs)
    assert [r["completion"][0]["content"] for r in sft][:3] == ["so \\boxed{7}", "\\boxed{2}", "it is \\boxed{2.0}"]
    _, one_pair_each, counts = build_redi_data(traces, max_pairs_per_prompt=1)
    assert counts["pairs"] == len(one_pair_each) == 2


def test_redi_data_command_from_a_traces_file(tmp_path):
    from selfcorrect.cli import main

    traces = write_jsonl(
        tmp_path / "teacher.jsonl",
        [_trace("A", "so \\boxed{7}", "7"), _trace("A", "so \\boxed{8}", "7"), _trace("B", "\\boxed{1}", "2")],
    )
    assert main(["redi-data", "--traces", str(traces), "--output_dir", str(tmp_path / "out")]) == 0
    pairs = [json.loads(line) for line in (tmp_path / "out" / "pairs.jsonl").read_text().splitlines()]
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [
        ("so \\boxed{7}", "so \\boxed{8}")
    ]
    counts = json.loads((tmp_path / "out" / "counts.json").read_text())
    assert (counts["pairs"], counts["sft_rows"], counts["prompts_without_correct"]) == (1, 1, 1)


def test_traces_without_the_columns_fail():
    with pytest.raises(DataError, match="solution"):
        build_redi_data([{"prompt": "q", "completion": "a"}])


# --- training --------------------------------------------------------------------------------------------------------


def _mean_logps(model, tokenizer, row, column):
    """Length-normalized log-likelihood of a completion, computed independently of the trainer."""
    prompt_ids = tokenizer.apply_chat_template(
        row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    full_ids = tokenizer.apply_chat_template(row["prompt"] + row[column], tokenize=True, return_dict=False)
    assert full_ids[: len(prompt_ids)] == prompt_ids
    ids = torch.tensor([full_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, :-1]  # (T-1, V)
    token_logps = torch.log_softmax(logits.float(), dim=-1).gather(1, ids[0, 1:, None])[:, 0]  # (T-1,)
    return token_logps[len(prompt_ids) - 1 :].mean().item()


def test_redi_raises_chosen_and_lowers_rejected_without_a_reference(tmp_path, tiny_model_dir, tokenizer):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from selfcorrect.trainers import REDIConfig, REDITrainer

    class NoReference(REDITrainer):
        def compute_ref_log_probs(self, model, inputs):  # DPOTrainer's reference forward: must never run
            raise AssertionError("a reference forward pass ran")

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = {c: [_mean_logps(model, tokenizer, row, c) for row in PAIRS] for c in ("chosen", "rejected")}
    args = REDIConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        max_steps=6,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        warmup_steps=0,
        per_device_train_batch_size=2,
        gradient_checkpointing=False,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        max_length=128,
    )
    trainer = NoReference(model=model, args=args, train_dataset=Dataset.from_list(PAIRS), processing_class=tokenizer)
    assert trainer.ref_model is None
    assert "ref_chosen_logps" not in trainer.train_dataset.column_names
    trainer.train()
    after = {c: [_mean_logps(model, tokenizer, row, c) for row in PAIRS] for c in ("chosen", "rejected")}
    for i in range(len(PAIRS)):
        assert after["chosen"][i] > before["chosen"][i] + 0.1, (before, after)
        assert after["rejected"][i] < before["rejected"][i] - 0.02, (before, after)
    logged = [h for h in trainer.state.log_history if "redi/chosen_logps" in h]
    assert len(logged) == 6
    # the first step's logged value is the model before any update, on the same pairs: it matches our measurement
    assert logged[0]["redi/chosen_logps"] == pytest.approx(sum(before["chosen"]) / 2, abs=1e-4)
    assert logged[0]["redi/rejected_logps"] == pytest.approx(sum(before["rejected"]) / 2, abs=1e-4)
    assert logged[0]["redi/margin"] == pytest.approx(
        logged[0]["redi/chosen_logps"] - logged[0]["redi/rejected_logps"], abs=1e-5
    )
    assert logged[-1]["redi/margin"] > logged[0]["redi/margin"]


def test_train_entry_point_with_method_redi(tmp_path, tiny_model_dir):
    from selfcorrect.train import main

    pairs = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    trainer = main(["--config", str(_recipe(tmp_path, tiny_model_dir, dataset_name=str(pairs)))])
    assert type(trainer).__name__ == "REDITrainer" and trainer.ref_model is None
    assert trainer.state.global_step == 2
    assert any("redi/margin" in h for h in trainer.state.log_history)
    unchanged = unchanged_parameters(tiny_model_dir, tmp_path / "out")
    assert not unchanged, unchanged


def test_train_entry_point_with_method_sft_on_correct_traces(tmp_path, tiny_model_dir):
    from selfcorrect.train import main

    sft, _, _ = build_redi_data(
        [_trace("A", "so \\boxed{7}", "7"), _trace("B", "\\boxed{2}", "2"), _trace("B", "\\boxed{3}", "2")]
    )
    data = write_jsonl(tmp_path / "sft.jsonl", sft)
    recipe = _recipe(tmp_path, tiny_model_dir, method="sft", dataset_name=str(data))
    trainer = main(["--config", str(recipe)])
    assert type(trainer).__name__ == "SFTTrainer" and trainer.state.global_step == 2
    assert len(trainer.train_dataset) == 2  # the two correct traces
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)


# --- bad input -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_out_of_range_fails(tmp_path, tiny_model_dir, alpha):
    with pytest.raises(RecipeError, match=r"recipe\.yaml.*redi_alpha.*\[0, 1\]"):
        parse_recipe(["--config", str(_recipe(tmp_path, tiny_model_dir, redi_alpha=alpha))])


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"prompt": "q", "chosen": "a"}], r"pairs\.jsonl.*no column\(s\) 'rejected'"),
        ([{"prompt": "q", "chosen": "a", "rejected": "  "}], r"pairs\.jsonl.*row 0: column 'rejected' is empty"),
        ([{"prompt": "q", "chosen": [], "rejected": "b"}], r"row 0: column 'chosen' is empty"),
        ([], r"pairs\.jsonl is empty"),
    ],
)
def test_bad_pairs_fail_before_the_model_loads(tmp_path, rows, message):
    from selfcorrect.train import main

    pairs = write_jsonl(tmp_path / "pairs.jsonl", rows)
    recipe = _recipe(tmp_path, "/nonexistent/model", dataset_name=str(pairs))
    with pytest.raises(DataError, match=message):
        main(["--config", str(recipe)])


def test_redi_data_command_writes_counts_and_fails_without_pairs(tmp_path, tiny_model_dir):
    from selfcorrect.cli import main

    recipe = tmp_path / "problems.yaml"
    recipe.write_text(
        yaml.safe_dump(
            dict(
                model_name_or_path=str(tiny_model_dir),
                output_dir=str(tmp_path / "unused"),
                use_cpu=True,
                bf16=False,
                arithmetic_train_size=3,
                eval_batch_size=8,
            )
        )
    )
    out = tmp_path / "redi"
    # a random model writes no boxed answer in 4 tokens: every trace is incorrect, so no pair can be built
    argv = ["redi-data", "--config", str(recipe), "--redi_samples", "2", "--redi_max_new_tokens", "4"]
    assert main([*argv, "--output_dir", str(out)]) == 2
    counts = json.loads((out / "counts.json").read_text())
    assert counts["traces"] == 6 and counts["prompts"] == 3 and counts["pairs"] == 0
    assert counts["prompts_without_correct"] == 3
    assert len((out / "traces.jsonl").read_text().splitlines()) == 6
    assert main([*argv, "--output_dir", str(out), "--redi_samples", "0"]) == 2
