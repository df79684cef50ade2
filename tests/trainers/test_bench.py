"""`python -m selfcorrect.bench`: both arms run end to end in fresh processes and the table has every row and column.

No timing assertions: the numbers depend on the machine. What a user relies on is checked: one row per arm in the
order asked, the baseline's ratios are 1, the generated-token count follows from batch x attempts x fixed length, and
each arm's recipe is the one the user's code path would read.
"""

from __future__ import annotations

import json

import pytest
import yaml

from selfcorrect.bench import append_results, feedback_turn_tokens, main, parse_methods, recipe_values


def test_bench_runs_trl_and_score_and_writes_the_table(tmp_path, tiny_model_dir):
    out = tmp_path / "bench"
    argv = ["--model", str(tiny_model_dir), "--methods", "trl,trl_equal,score", "--steps", "1", "--warmup-steps", "0"]
    argv += ["--repeats", "1", "--max-new-tokens", "6", "--num-generations", "2", "--batch-size", "4"]
    argv += ["--reward-funcs", "tests.helpers:varied_reward", "--output-dir", str(out)]
    result = main(argv)

    rows = {row["method"]: row for row in result["rows"]}
    assert list(rows) == ["trl", "trl_equal", "score"]
    assert rows["trl"]["trainer"] == "GRPOTrainer" and rows["score"]["trainer"] == "SCoReTrainer"
    # EOS suppressed: 4 completions x 6 tokens for TRL; 4 episodes x 2 attempts x 6 model tokens for SCoRe, and as
    # many for TRL at the episode's length
    assert rows["trl"]["tokens_per_step"] == 24 and rows["score"]["tokens_per_step"] == 48
    episode_length = 2 * 6 + feedback_turn_tokens(str(tiny_model_dir)) + 1  # 2 attempts, a feedback turn, an EOS
    assert rows["trl_equal"]["tokens_per_step"] == 4 * episode_length and rows["trl_equal"]["trainer"] == "GRPOTrainer"
    score = rows["score"]
    assert score["equal_time_ratio"] == pytest.approx(
        score["seconds_per_step"] / rows["trl_equal"]["seconds_per_step"]
    )
    assert score["equal_memory_ratio"] == pytest.approx(
        score["peak_memory_mib"] / rows["trl_equal"]["peak_memory_mib"]
    )
    assert "equal_memory_ratio" not in rows["trl"]  # single-turn rows are compared with `trl` only
    assert rows["trl"]["time_ratio"] == rows["trl"]["memory_ratio"] == 1.0
    for row in rows.values():
        assert row["seconds_per_step"] > 0 and row["peak_memory_mib"] > 0
    # a multi-attempt row's memory is judged at the episode's length only (plain TRL's rows hold one attempt)
    assert set(rows["score"]["targets_met"]) == {"time", "time@equal", "memory@equal"}

    table = (out / "bench.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| method"))
    for column in ("s / step", "tokens / s", "s / 1k tokens", "peak MiB", "time × TRL", "time × TRL@equal"):
        assert column in header
    lines = table.splitlines()
    main_table = lines[lines.index(header) :]
    body = main_table[
        2 : next(i for i, line in enumerate(main_table) if not line.startswith("|"))
    ]  # rows, one per arm
    assert [line.split("|")[1].strip() for line in body] == ["trl", "trl_equal", "score"]
    assert all(line.count("|") == header.count("|") for line in body)
    for needed in ("torch ", "transformers ", "TRL ", "Machine: ", "python -m selfcorrect.bench --model"):
        assert needed in table
    assert table.startswith(f"## {result['meta']['date']} — trainer benchmark")
    saved = json.loads((out / "bench.json").read_text())
    assert [run["method"] for run in saved["runs"]] == ["trl", "trl_equal", "score"]
    # one generation call per attempt serves every row of the step: TRL one call of 4 rows, SCoRe two (attempt 2 of
    # every episode in one call)
    assert [run["generate_calls"] for run in saved["runs"]] == [[[4]], [[4]], [[4, 4]]]
    assert saved["meta"]["versions"]["trl"].startswith("1.16")


def test_arm_recipes_share_everything_but_the_episode(tmp_path, tiny_model_dir):
    opts = argparse_namespace(model=str(tiny_model_dir))
    trl, grpo, score = (recipe_values(m, opts, tmp_path) for m in ("trl", "grpo", "score"))
    assert trl == grpo  # the baseline and our single-turn path read the same settings
    assert trl["generation_kwargs"] == {"min_new_tokens": 8} and trl["max_completion_length"] == 8
    assert score["max_attempt_length"] == 8 and score["max_attempts"] == 2
    assert score["max_completion_length"] >= 16
    for key, value in trl.items():  # everything TRL reads is the same, except the episode's length
        if key not in ("method", "max_completion_length"):
            assert score[key] == value, key
    assert set(score) - set(trl) <= {
        "max_attempt_length",
        "max_attempts",
        "verification_max_length",
        "verification_solutions",
        "critic_max_tokens",  # every multi-attempt config has the critic fields (`feedback: critic`)
    }
    assert recipe_values("nsr", opts, tmp_path)["max_attempts"] == 1  # single-turn trainer stays single-turn
    equal = recipe_values("trl_equal", opts, tmp_path)  # TRL at the episode's length: 2 attempts x 8 tokens,
    turn = feedback_turn_tokens(opts.model)  # SCoRe's instruction as a chat turn, and the EOS closing attempt 1
    assert turn > 40 and equal["max_completion_length"] == 16 + turn + 1
    assert equal["generation_kwargs"] == {"min_new_tokens": 16 + turn + 1}
    assert {k: v for k, v in equal.items() if k not in ("max_completion_length", "generation_kwargs")} == {
        k: v for k, v in trl.items() if k not in ("max_completion_length", "generation_kwargs")
    }


def test_methods_are_discovered_and_checked():
    methods = parse_methods(None)
    assert methods[:3] == ["trl", "trl_equal", "grpo"] and {"score", "ufo", "nsr"} <= set(methods)
    assert parse_methods("score") == ["trl", "score"]  # the baseline is always measured
    with pytest.raises(ValueError, match="unknown method.*scroe.*available: trl, trl_equal, grpo"):
        parse_methods("trl,scroe")
    from selfcorrect.trainers import METHODS

    if "redi" in METHODS:  # offline pair training generates nothing: no GRPO step to compare it with
        assert "redi" not in methods
        with pytest.raises(ValueError, match="redi train offline"):
            parse_methods("trl,redi")


def test_append_results_puts_the_newest_section_first(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Measured results\n\nIntro.\n\n## 2026-11-24 — older\n\nold\n")
    append_results("## 2026-11-25 — bench\n\nnew\n", results)
    text = results.read_text()
    assert text.index("## 2026-11-25") < text.index("## 2026-11-24") and text.startswith("# Measured results")


def argparse_namespace(**overrides):
    from selfcorrect.bench import parse_args

    return parse_args(["--max-new-tokens", "8", *[f"--{k}={v}" for k, v in overrides.items()]])


def test_random_init_bench_needs_only_config_and_tokenizer(tmp_path, tiny_model_dir):
    """The GPU bench's path (launch/bench_gpu.sh): a folder without weights, random weights made on the spot."""
    import torch
    from safetensors.torch import load_file

    from selfcorrect.models import export_architecture

    arch = export_architecture(str(tiny_model_dir), tmp_path / "arch")
    assert (arch / "config.json").is_file() and (arch / "tokenizer.json").is_file()
    assert not list(arch.glob("*.safetensors"))
    out = tmp_path / "bench"
    argv = ["--model", str(arch), "--random-init", "--methods", "trl", "--steps", "1", "--warmup-steps", "0"]
    argv += ["--repeats", "1", "--max-new-tokens", "4", "--num-generations", "2", "--batch-size", "2"]
    argv += ["--reward-funcs", "tests.helpers:varied_reward", "--output-dir", str(out)]
    result = main(argv)
    assert result["rows"][0]["runs"] == 1
    assert result["meta"]["settings"]["model"] == f"random-init {arch}"
    weights = load_file(str(out / "random-init-model" / "model.safetensors"))
    reference = load_file(str(tiny_model_dir / "model.safetensors"))
    assert weights.keys() == reference.keys()
    # made from the config alone (the folder has no weights): seed 0, like the tiny test model, so the same values
    assert all(torch.equal(weights[k], reference[k]) for k in weights)


def test_targets_per_method():
    """The issue's targets on hand-made ratios: a multi-attempt row at 1.12x per token and 1.08x memory meets the
    general ones; RISE at 1.12x per token misses its 1.10, at 1.25x memory meets its 1.30 (the general 1.10 would not)."""
    from selfcorrect.bench import targets_met

    row = dict(attempts=1, token_ratio=5.0, time_ratio=5.6, token_time_ratio=1.12, memory_ratio=1.25)
    assert targets_met({**row, "method": "rise"}) == {"time": False, "memory": True}
    assert targets_met({**row, "method": "critique_grpo"}) == {"time": True, "memory": False}
    single = dict(method="nsr", attempts=1, token_ratio=1.0, time_ratio=1.04, token_time_ratio=1.04, memory_ratio=1.0)
    assert targets_met(single) == {"time": True, "memory": True}
    assert targets_met({**single, "time_ratio": 1.06}) == {"time": False, "memory": True}


def test_multi_attempt_memory_is_judged_at_equal_length_and_known_limits_are_named():
    """SCoRe at 1.3x plain TRL's memory (rows twice as long) but 1.0x TRL at the episode's length meets its targets;
    a missed target with a measured cause (RISE's time per token) says what blocks it under the table."""
    from selfcorrect.bench import markdown_report, targets_met

    score = dict(method="score", attempts=2, token_ratio=2.0, time_ratio=2.1, token_time_ratio=1.05,
                 memory_ratio=1.30, equal_time_ratio=0.98, equal_memory_ratio=1.00)  # fmt: skip
    assert targets_met(score) == {"time": True, "time@equal": True, "memory@equal": True}
    assert targets_met({**score, "equal_memory_ratio": 1.06})["memory@equal"] is False
    assert targets_met({**score, "equal_time_ratio": 1.01})["time@equal"] is False

    def row(method, **ratios):
        base = dict(trainer="T", runs=1, seconds_per_step=1.0, tokens_per_step=8, tokens_per_second=8.0,
                    seconds_per_1k_tokens=125.0, peak_memory_mib=100.0)  # fmt: skip
        return {"method": method, **base, **ratios}

    rise = row("rise", attempts=1, token_ratio=5.0, time_ratio=7.1, token_time_ratio=1.42, memory_ratio=1.11)
    rise["targets_met"] = targets_met(rise)
    meta = dict(date="2026-11-30", machine="m", device="cpu", command="python -m selfcorrect.bench",
                versions=dict(python="3", torch="2", transformers="5", trl="1.16"),
                settings=dict(batch_size=8, num_generations=4, max_new_tokens=64, fixed_length=True, max_attempts=2,
                              dtype="float32", beta=0.0, steps=2, warmup_steps=1, repeats=1, model="m"))  # fmt: skip
    report = markdown_report([row("trl", attempts=1), rise], meta)
    blocked = [line for line in report.splitlines() if line.startswith("- rise, time target missed")]
    assert len(blocked) == 1 and "verification row" in blocked[0]
    rise["targets_met"] = {"time": True, "memory": True}
    assert "What blocks" not in markdown_report([row("trl", attempts=1), rise], meta)


def test_bench_runs_both_precisions_and_times_the_parts_of_a_step(tmp_path, tiny_model_dir):
    """`--precision fp32,bf16`: every arm in both precisions in one run, the bf16 x fp32 ratios, and the parts of each
    step (generation, loss forward + backward, optimizer, judging) with their FLOP/s beside a matmul probe."""
    out = tmp_path / "bench"
    argv = [
        "--model",
        str(tiny_model_dir),
        "--methods",
        "trl",
        "--steps",
        "1",
        "--warmup-steps",
        "0",
        "--repeats",
        "1",
    ]
    argv += ["--max-new-tokens", "4", "--num-generations", "2", "--batch-size", "2", "--precision", "fp32,bf16"]
    argv += ["--reward-funcs", "tests.helpers:varied_reward", "--output-dir", str(out)]
    result = main(argv)

    rows = {(row["method"], row["precision"]): row for row in result["rows"]}
    assert list(rows) == [("trl", "fp32"), ("trl", "bf16")]
    fp32, bf16 = rows[("trl", "fp32")], rows[("trl", "bf16")]
    assert fp32["time_ratio"] == bf16["time_ratio"] == 1.0  # each precision has its own baseline
    assert bf16["precision_time_ratio"] == pytest.approx(bf16["seconds_per_step"] / fp32["seconds_per_step"])
    assert bf16["precision_memory_ratio"] == pytest.approx(bf16["peak_memory_mib"] / fp32["peak_memory_mib"])
    assert "precision_time_ratio" not in fp32
    runs = {run["precision"]: run for run in result["runs"]}
    assert runs["fp32"]["compute_dtype"] == "float32" and runs["bf16"]["compute_dtype"] == "bfloat16"
    recipes = {p: yaml.safe_load((out / "runs" / f"trl-{p}-r0" / "recipe.yaml").read_text()) for p in runs}
    assert recipes["bf16"]["bf16"] is True and recipes["fp32"]["bf16"] is False
    assert recipes["bf16"]["dtype"] == recipes["fp32"]["dtype"] == "float32"  # the same weights: autocast only
    for row in (fp32, bf16):
        assert row["matmul_gflops"] > 0 and row["step_gflop"] > 0
        for part in ("generation", "loss", "optimizer", "judging"):
            assert row[f"{part}_seconds"] > 0, part
        assert row["generation_gflops"] > 0 and row["loss_gflops"] > 0
    # FLOPs of one step: 2 prompts' contexts and 2 x 4 sampled tokens through the model, then 3x a forward over the
    # trained rows; the step's total is what the parts add up to
    assert runs["fp32"]["part_flops"][0]["loss"] > runs["fp32"]["part_flops"][0]["generation"] > 0
    assert runs["fp32"]["threads"] >= 1
    assert runs["fp32"]["generate_calls"] == [[2]]  # one generation call serves every row of the step

    table = (out / "bench.md").read_text()
    assert "Where a step's time goes" in table and "| trl | bf16 |" in table
    assert "| method | s / step fp32 | s / step bf16 | step time bf16 × fp32 | peak memory bf16 × fp32 |" in table


def test_weight_flops_counts_the_body_and_the_tied_head_once(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from selfcorrect.bench import weight_flops

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    body, head = weight_flops(model)
    config = model.config
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    kv = hidden // config.num_attention_heads * config.num_key_value_heads
    per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter  # q, o; k, v; gate, up, down
    assert body == layers * per_layer  # norms are vectors; the tied embedding / head is the head
    assert head == config.vocab_size * hidden
