"""What the tests share, written once: reward functions (importable by dotted path: `tests.helpers:...`), recipe
builders, the "every parameter changed" check, a scripted generation function, and `accelerate launch` on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]  # the repository
SCRIPTS = ROOT / "tests" / "distributed" / "scripts"  # what each rank of a launched test runs


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


def dump_recipe(tmp_path: Path, values: dict) -> Path:
    """`values` as tmp_path/recipe.yaml."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def write_recipe(tmp_path: Path, model_dir: Path, **fields) -> Path:
    """A training recipe on the tiny model: TINY_TRAINING's settings, `fields` over them."""
    values = dict(model_name_or_path=str(model_dir), output_dir=str(tmp_path / "out"), **TINY_TRAINING)
    return dump_recipe(tmp_path, values | fields)


def build_trainer(recipe: Path, trainer_cls=None):
    """The trainer `selfcorrect.train` would build from a recipe (optionally a subclass), without training."""
    from selfcorrect.train import build_trainer as build

    return build(["--config", str(recipe)], trainer_cls)[0]


def parity_judge(text, row):
    """A scripted judge for random models: 'correct' when the attempt has an even number of distinct characters."""
    return len(set(text)) % 2 == 0


def scripted_rating(text: str) -> float:
    """RISE's rating for random models, which never write a boxed one: by the number of distinct characters, so that
    the verification rewards vary (the role `parity_judge` plays for answers)."""
    return (1.0, -0.5, -1.0, float("nan"))[len(set(text)) % 4]


def tiny_llama_config(tokenizer, hidden: int = 32, layers: int = 2, tie_word_embeddings: bool = True):
    """A Llama config of `layers` layers, `hidden` wide, over the tokenizer's vocabulary and special ids: the tests'
    stand-in for the embedded model (random weights: seed torch before building it)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def load_script(name: str, folder: str = "recipes"):
    """A script under recipes/ (e.g. "reproduce") or another folder (launch/) imported as a module, for testing."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """Rows as a JSON-lines file (parent folders made); returns the path."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def unchanged_parameters(before: Path, after: Path) -> list[str]:
    """Names of the weights of the model saved in `before` that are equal (or missing) in the one saved in `after`
    (`model.safetensors` in each folder): a training step that reached every parameter leaves none. `after` may hold
    more names (a DeepSpeed save writes a tied `lm_head.weight` out)."""
    import torch
    from safetensors.torch import load_file

    old, new = load_file(str(before / "model.safetensors")), load_file(str(after / "model.safetensors"))
    return [name for name in old if name not in new or torch.equal(old[name], new[name])]


class ScriptedGenerate:
    """A generation function for the episode engine, `(contexts, max_new_tokens, attempt) -> (ids, None)`, whose
    attempt `k` of episode `i` is `answer(i, k)`, tokenized and cut at the cap, then ended by `stop_id` (default:
    EOS) when it fits, unless `(i, k)` is in `truncated`. Episodes are found by their prompt's ids (`prompts`) at the
    start of a context, or by position in the call without them. `calls` records (attempt, contexts) per call."""

    def __init__(
        self,
        tokenizer,
        answer: Callable[[int, int], str],
        prompts: Sequence[Sequence[int]] | None = None,
        truncated: Sequence[tuple[int, int]] = (),
        stop_id: int | None = None,
    ):
        self.tokenizer, self.answer, self.prompts, self.truncated = tokenizer, answer, prompts, set(truncated)
        self.stop_id = tokenizer.eos_token_id if stop_id is None else stop_id
        self.calls: list[tuple[int, list[list[int]]]] = []

    def episode_of(self, context: Sequence[int], position: int) -> int:
        if self.prompts is None:
            return position
        for i, prompt in enumerate(self.prompts):
            if list(context[: len(prompt)]) == list(prompt):
                return i
        raise AssertionError("a context that starts with no known prompt")

    def __call__(self, contexts, max_new_tokens, attempt):
        self.calls.append((attempt, [list(c) for c in contexts]))
        out = []
        for position, context in enumerate(contexts):
            i = self.episode_of(context, position)
            ids = self.tokenizer.encode(self.answer(i, attempt), add_special_tokens=False)[:max_new_tokens]
            if (i, attempt) not in self.truncated and len(ids) < max_new_tokens:
                ids = ids + [self.stop_id]
            out.append(ids)
        return out, None


def boxed_plan(golds: Sequence[str], plan: Sequence[Sequence[bool]]) -> Callable[[int, int], str]:
    """`answer` for `ScriptedGenerate`: "So \\boxed{gold}." where `plan[i][k]`, else a wrong answer (-999)."""
    return lambda i, k: f"So \\boxed{{{golds[i] if plan[i][k] else '-999'}}}."


def launch(
    script: Path | str, *args: str, num_processes: int = 2, config: str | None = None, timeout: int = 600
) -> str:
    """`accelerate launch` a test script (or `"-m", "module"`) on CPU, as users launch training: `config` a
    launch/cpu/*.yaml (DDP or DeepSpeed), else DDP over gloo with `num_processes` ranks. Returns the output; fails
    the test with its end on a non-zero exit."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if config:
        command += ["--config_file", str(ROOT / "launch" / "cpu" / config)]
    else:  # --multi_gpu with use_cpu in the training args starts real processes
        command += ["--num_processes", str(num_processes)] + (["--multi_gpu"] if num_processes > 1 else [])
        command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [*command, str(script), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output
