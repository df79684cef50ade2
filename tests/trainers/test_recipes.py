"""Every shipped recipe runs: each `recipes/demo/*.yaml` trains (1 step; 2 for SCoRe I -> II) and evaluates end to end
(training's eval before/after and `selfcorrect eval`) on a tiny model, and each GPU recipe (`recipes/<model>/*.yaml`)
parses and builds its trainer on a tiny stand-in with its own settings.

Recipes are found by glob, so a new recipe is covered without editing this file. Only what cannot run here (or would
take minutes) is overridden: the model, the output folder, data that lives elsewhere, the number of steps, the number
of problems and the token caps, vLLM and mixed precision. Everything that defines the method (feedback, eval_* fields,
advantage_mode, score stages, critic, verification, batch arithmetic, ...) is the recipe's own.

The demo recipes run on a tiny Llama whose greedy and sampled output is `\\boxed{N}` followed by the end-of-turn token,
where N is the gold answer of one of the evaluation problems: some attempts are correct and others wrong, so the code
paths that only a right answer reaches (UFO's stop at the first correct answer, correct-answer rewards, pairs with a
correct trace) run too. A random-weight model is never right and never writes an end-of-turn token.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfcorrect.configs import load_recipe_file, parse_recipe, recipe_dataclasses
from selfcorrect.train import build_trainer
from tests.helpers import ROOT, tiny_llama_config, write_jsonl

RECIPES = ROOT / "recipes"
DEMO_RECIPES = sorted((RECIPES / "demo").glob("*.yaml"))
GPU_RECIPES = sorted(p for p in RECIPES.glob("*/*.yaml") if p.parent.name != "demo")

# Token caps for the demo runs: the answering model writes 6-9 tokens, so every cap leaves room for it.
TOKENS = 16
# Overrides that only shrink a demo run: applied when the recipe's method has the field.
DEMO_SHRINK = dict(
    dtype="float32",
    max_steps=1,
    arithmetic_train_size=8,
    arithmetic_eval_size=4,
    max_attempt_length=TOKENS,
    eval_max_new_tokens=TOKENS,
    eval_verify_max_new_tokens=TOKENS,
    verification_max_length=TOKENS,
    critic_max_tokens=TOKENS,
    max_length=128,
)


def test_recipes_are_found():
    """The globs see the recipes (an empty parameter list would silently skip the tests below)."""
    assert DEMO_RECIPES and GPU_RECIPES, RECIPES


# --- helpers ----------------------------------------------------------------------------------------------------------


def _fields(method: str) -> set[str]:
    import dataclasses

    return {f.name for cls in recipe_dataclasses(method) for f in dataclasses.fields(cls) if f.init}


def _argv(recipe: Path, overrides: dict) -> list[str]:
    argv = ["--config", str(recipe)]
    for key, value in overrides.items():
        argv += [f"--{key}", *(map(str, value) if isinstance(value, list | tuple) else [str(value)])]
    return argv


# Hand-written problems and traces, shaped like `selfcorrect redi-data` output and like the hub datasets' columns.
PROBLEMS = [("What is 2 + 3?", "5"), ("What is 4 times 6?", "24"), ("What is 9 - 7?", "2"), ("What is 10 / 5?", "2")]


def _traces() -> list[dict]:
    traces = []
    for question, answer in PROBLEMS:
        traces.append({"prompt": question, "completion": f"The result is \\boxed{{{answer}}}.", "solution": answer})
        traces.append({"prompt": question, "completion": f"I think it is \\boxed{{{answer}1}}.", "solution": answer})
    return traces


def _offline_rows(method: str) -> list[dict]:
    """What `selfcorrect redi-data` writes for this offline method: SFT rows or (chosen, rejected) pairs."""
    from selfcorrect.data.redi import build_redi_data
    from selfcorrect.trainers import METHODS

    sft_rows, pair_rows, counts = build_redi_data(_traces())
    assert counts["pairs"] == len(PROBLEMS) and counts["sft_rows"] == len(PROBLEMS), counts
    columns = METHODS[method].offline_columns
    rows = pair_rows if "chosen" in columns else sft_rows
    assert all(c in rows[0] for c in columns), (columns, rows[0])
    return rows


def _problem_rows(values: dict) -> list[dict]:
    """Problems with the recipe's column names and its dataset's gold-answer format (GSM8K `####`, MATH `\\boxed{}`)."""
    prompt_column = values.get("prompt_column", "problem")
    solution_column = values.get("solution_column", "solution")
    name = str(values.get("eval_dataset_name") or values.get("dataset_name", "")).lower()
    rows = []
    for question, answer in PROBLEMS:
        if "gsm8k" in name:
            gold = f"Work it out.\n#### {answer}"
        elif solution_column == "solution":
            gold = f"Work it out, so the answer is $\\boxed{{{answer}}}$."
        else:
            gold = answer
        rows.append({prompt_column: question, solution_column: gold})
    return rows


def _problems_folder(folder: Path, values: dict) -> Path:
    """A local dataset folder with the recipe's train and test splits (one .jsonl per split)."""
    for split in {values.get("dataset_train_split", "train"), values.get("dataset_test_split", "test")}:
        write_jsonl(folder / f"{split}.jsonl", _problem_rows(values))
    return folder


def _data_overrides(values: dict, root: Path) -> dict:
    """Local stand-ins for the recipe's data files and hub datasets (bundled problems are used as they are)."""
    from selfcorrect.trainers import METHODS

    method = values.get("method", "grpo")
    overrides = {}
    name = values.get("dataset_name", "bundled:arithmetic")
    if METHODS[method].offline_columns:  # traces from `selfcorrect redi-data`, at the recipe's path, under root
        path = root / name.lstrip("/")
        overrides["dataset_name"] = str(write_jsonl(path, _offline_rows(method)))
    elif not name.startswith("bundled:"):
        overrides["dataset_name"] = str(_problems_folder(root / "problems", values))
    eval_name = values.get("eval_dataset_name")
    if eval_name and not eval_name.startswith("bundled:"):
        overrides["eval_dataset_name"] = str(_problems_folder(root / "eval-problems", values))
    return overrides


def _answer_chain(tokenizer, answer: str) -> list[int] | None:
    ids = tokenizer(f"\\boxed{{{answer}}}", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return ids if len(set(ids)) == len(ids) else None


def answering_model(path: Path, tokenizer, chain: list[int], hidden: int = 32) -> Path:
    """A 2-layer, 32-wide Llama (SmolLM2's tokenizer) that writes the tokens `chain` after any context.

    The attention and MLP outputs are zero, so the last hidden state is the last token's embedding: a bigram model.
    Every token outside the chain embeds to e_0, which predicts chain[0]; chain[i] embeds to e_{i+1}, which predicts
    chain[i + 1]. The logit gap of 40 makes sampling at the recipes' temperatures (0.7-1) pick the same tokens as greedy
    (the other 49k tokens share < 1e-12), and keeps every log-probability above float32's normal range: a larger gap
    makes `exp` underflow into subnormals, which slows TRL's log-prob kernel on CPU tenfold.
    """
    import torch
    from transformers import LlamaForCausalLM

    assert len(chain) <= hidden and len(set(chain)) == len(chain)
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(tokenizer, hidden=hidden, tie_word_embeddings=False))
    weight = 40.0 / hidden**0.5  # the final RMSNorm scales a unit vector to norm sqrt(hidden)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed, head = model.model.embed_tokens.weight, model.lm_head.weight
        embed.zero_()
        embed[:, 0] = 1.0
        head.zero_()
        head[chain[0], 0] = weight
        for state, (token, following) in enumerate(zip(chain, chain[1:]), start=1):
            embed[token] = 0.0
            embed[token, state] = 1.0
            head[following, state] = weight
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _check_eval(path: Path, script_args, num_problems: int) -> dict:
    """An eval JSON has the recipe's table: acc@t1..acc@tK over every problem, plus pass@k / voting when configured."""
    assert path.is_file(), f"missing {path}"
    result = json.loads(path.read_text())
    metrics = result["metrics"]
    attempts = sorted(int(k[5:]) for k in metrics if k.startswith("acc_t") and k[5:].isdigit())
    assert attempts == list(range(1, script_args.eval_attempts + 1)), metrics
    assert metrics["num_problems"] == num_problems == len(result["samples"])
    if script_args.eval_num_samples:
        assert all(f"pass@{k}" in metrics for k in script_args.eval_pass_k), metrics
    if script_args.eval_verify_samples:
        assert "verify_weighted_majority" in metrics and "verify_acc" in metrics, metrics
    assert path.with_suffix(".md").is_file()
    return metrics


# --- demo recipes: train and evaluate end to end ------------------------------------------------------------------------


@pytest.fixture
def demo_run(tmp_path, tokenizer):
    """(overrides, parsed recipe) for a demo recipe, shrunk, on an answering model right on some of its eval problems."""
    from selfcorrect.data import load_datasets

    def make(recipe: Path):
        values = load_recipe_file(recipe)
        fields = _fields(values.get("method", "grpo"))
        overrides = {k: v for k, v in DEMO_SHRINK.items() if k in fields}
        if values.get("stage1_steps") is not None:  # SCoRe I -> II: one step of each stage
            overrides.update(stage1_steps=1, max_steps=2)
        overrides.update(_data_overrides(values, tmp_path / "data"))
        overrides.update(model_name_or_path=str(tmp_path / "model"), output_dir=str(tmp_path / "out"))
        _, _, _, args = parse_recipe(_argv(recipe, overrides))
        if "max_completion_length" in fields and getattr(args, "max_attempts", 1) == 1:
            # single-attempt methods: the attempt's cap (a multi-attempt episode keeps the recipe's, checked, length)
            overrides["max_completion_length"] = TOKENS
        parsed = parse_recipe(_argv(recipe, overrides))
        _, test_ds = load_datasets(parsed[1], train=False, test=True)
        golds = [str(s) for s in test_ds["solution"]]
        chain = next((c for c in (_answer_chain(tokenizer, g) for g in golds) if c), None)
        assert chain is not None, f"no eval answer of {recipe.name} can be written as distinct tokens: {golds}"
        answering_model(tmp_path / "model", tokenizer, chain)
        return overrides, parsed

    return make


@pytest.mark.parametrize("recipe", DEMO_RECIPES, ids=lambda p: p.stem)
def test_demo_recipe_trains_and_evaluates(recipe, demo_run):
    from selfcorrect.train import main as train_main

    overrides, (_, data_args, script_args, args) = demo_run(recipe)
    trainer = train_main(_argv(recipe, overrides))

    assert trainer.state.global_step == args.max_steps == overrides["max_steps"]
    assert any("loss" in h for h in trainer.state.log_history), trainer.state.log_history
    assert (Path(args.output_dir) / "config.json").is_file()  # the final model is saved
    if getattr(args, "stage1_steps", None):
        stages = [h["selfcorrect/score_stage"] for h in trainer.state.log_history if "selfcorrect/score_stage" in h]
        assert stages == [1.0, 2.0], trainer.state.log_history
    eval_dir = Path(args.output_dir) / "eval"
    n = data_args.arithmetic_eval_size
    if script_args.eval_before_training:
        before = _check_eval(eval_dir / "before.json", script_args, n)
        assert 0 < before["acc_t1"] < 1, before  # the answering model is right on some problems only
    if script_args.eval_after_training:
        _check_eval(eval_dir / "after.json", script_args, n)
    if script_args.eval_before_training and script_args.eval_after_training:
        table = (eval_dir / "before_after.md").read_text()
        assert "| before (n=" in table and "| after (n=" in table, table


@pytest.mark.parametrize("recipe", DEMO_RECIPES, ids=lambda p: p.stem)
def test_demo_recipe_eval_command(recipe, demo_run):
    from selfcorrect.evaluate import main as eval_main

    overrides, (_, data_args, script_args, args) = demo_run(recipe)
    result = eval_main(_argv(recipe, overrides))
    metrics = _check_eval(Path(args.output_dir) / "eval" / "eval.json", script_args, data_args.arithmetic_eval_size)
    assert metrics == pytest.approx(result["metrics"], nan_ok=True)
    assert 0 < metrics["acc_t1"] < 1, metrics


# --- GPU recipes: parse and build the trainer on a tiny stand-in -------------------------------------------------------

# What cannot run on this machine; everything else is the recipe's own.
GPU_STAND_IN = dict(use_vllm=False, bf16=False, fp16=False, use_cpu=True, report_to="none")
# Fields the stand-in replaces: every other field of the recipe must reach the trainer unchanged.
NOT_COMPARED = {"model_name_or_path", "dataset_name", "eval_dataset_name", "output_dir", *GPU_STAND_IN}


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_gpu_recipe_builds_its_trainer(recipe, tmp_path, tiny_model_dir):
    import dataclasses

    from selfcorrect.trainers import METHODS

    values = load_recipe_file(recipe)
    method = values["method"]
    fields = _fields(method)
    overrides = {k: v for k, v in GPU_STAND_IN.items() if k in fields}
    overrides.update(_data_overrides(values, tmp_path / "data"))
    overrides.update(model_name_or_path=str(tiny_model_dir), output_dir=str(tmp_path / "out"))
    trainer, parsed, test_ds = build_trainer(_argv(recipe, overrides))

    # The method's trainer class, with RISE's verification pass composed in when the recipe asks for it.
    expected_class = METHODS[method].trainer
    if getattr(trainer.args, "verification_solutions", 0) > 0:
        from selfcorrect.trainers.self_verification import with_verification

        expected_class = with_verification(expected_class)
    assert type(trainer) is expected_class and type(trainer.args) is METHODS[method].config
    assert not getattr(trainer.args, "use_vllm", False) and trainer.args.use_cpu
    # Every field the recipe sets reaches the parsed recipe unchanged (method, batch, caps, KL, feedback, ...).
    parsed_values = {}
    for part in (*parsed[:3], trainer.args):
        parsed_values.update({f.name: getattr(part, f.name) for f in dataclasses.fields(part) if f.init})
    changed = {
        key: (value, parsed_values[key])
        for key, value in values.items()
        if key not in NOT_COMPARED and parsed_values[key] != value
    }
    assert not changed, f"{recipe.name}: recipe values not in the trainer's config: {changed}"
    args = trainer.args
    assert args.gradient_checkpointing == values.get("gradient_checkpointing", False)
    if method in ("redi", "sft"):
        assert len(trainer.train_dataset) > 0
        if method == "redi":
            assert trainer.ref_model is None  # REDI is reference-free
    else:  # the GRPO family: the trainer uses the recipe's group size, KL, loss and episode
        assert trainer.num_generations == args.num_generations and trainer.loss_type == args.loss_type
        assert trainer.beta == args.beta and (trainer.ref_model is None) == (args.beta == 0.0)
        if hasattr(trainer, "episode_spec"):
            assert trainer.episode_spec.max_attempts == args.max_attempts
            assert trainer.episode_spec.max_attempt_tokens == args.max_attempt_length
            assert trainer.episode_spec.stop_on_correct == args.stop_on_correct
        if hasattr(args, "score_stage"):
            assert trainer.stage == args.score_stage
        assert trainer.reward_func_names == values.get("reward_funcs", ["accuracy", "format"])
        # TRL's batch arithmetic holds on one process (a group of num_generations fits in a generation batch)
        assert args.generation_batch_size % args.num_generations == 0
    if test_ds is not None:
        assert len(test_ds) == len(PROBLEMS) and set(test_ds["solution"]) == {a for _, a in PROBLEMS}
