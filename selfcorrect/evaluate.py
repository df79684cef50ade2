"""Self-correction evaluation: K attempts per problem with feedback in between, and the SCoRe table.

    selfcorrect eval --config recipes/demo/score.yaml [--model_name_or_path outputs/demo-score] [--eval_attempts 3]
    selfcorrect eval --config recipes/demo/nsr.yaml --eval_num_samples 16 --eval_pass_k 1 4 16

Prints and saves (JSON + Markdown, in `output_dir/eval/`) acc@t1..acc@tK, Δ(t1, tK), Δ^{i→c} and Δ^{c→i} as fractions of
all problems (Kumar et al. 2024, table 1); a one-attempt table shows acc@t1 alone. Greedy by default, as in the papers.
With `eval_num_samples` = n > 0 it also samples n answers per problem and reports pass@k (unbiased estimator) for each k
in `eval_pass_k`. While it runs it logs a progress line after each generation batch of each attempt round (problems
done, tokens/s, ETA; `EvalProgress`), here and in the evaluations during training; `--quiet` turns them off.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .episodes import ChatTurns, EpisodeSpec, GenerateFn, HFGenerate, run_episodes
from .feedback import get_feedback_provider
from .metrics import attempt_accuracy, carry_forward, mean_pass_at_k

logger = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """`42s`, `5m03s`, `2h07m`."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class EvalProgress:
    """A `GenerateFn` wrapper that logs one line per generation batch of each attempt round, e.g.

        eval attempt 1/2: 16/32 problems | 2048 tokens, 12.3 tok/s | 2m46s elapsed, ETA 8m20s

    With `chunk` (the evaluation's own `HFGenerate`, which batches by the same size) it calls `generate` one batch at
    a time so that a long round reports as it goes; without it (a caller's generator, e.g. one that batches a whole
    round), one line per round. The ETA assumes every later round runs on as many problems as this one: an upper
    bound when episodes stop early. Lines go to `report` (default: this module's logger at INFO).
    """

    def __init__(
        self,
        generate: GenerateFn,
        problems: int,
        attempts: int,
        chunk: int | None = None,
        label: str = "eval",
        report: Callable[[str], None] | None = None,
        unit: str = "problems",
    ):
        self.generate, self.problems, self.attempts, self.chunk = generate, problems, attempts, chunk
        self.label, self.unit = label, unit
        self.report = report or logger.info
        self.start = time.perf_counter()
        self.tokens = 0
        self.contexts_done = 0  # over all rounds

    def __call__(self, contexts, max_new_tokens, attempt):
        size = self.chunk or len(contexts) or 1
        samples: list[list[int]] = []
        logprobs: list[list[float]] | None = []
        for start in range(0, len(contexts), size):
            batch_samples, batch_logprobs = self.generate(contexts[start : start + size], max_new_tokens, attempt)
            samples += batch_samples
            logprobs = None if batch_logprobs is None or logprobs is None else logprobs + list(batch_logprobs)
            self.tokens += sum(len(ids) for ids in batch_samples)
            self.contexts_done += len(batch_samples)
            self.report(self.line(attempt, start + len(batch_samples), len(contexts)))
        return samples, logprobs

    def line(self, attempt: int, done: int, in_round: int) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.tokens / elapsed if elapsed > 0 else 0.0
        remaining = (in_round - done) + (self.attempts - attempt - 1) * in_round  # contexts still to generate
        eta = elapsed / self.contexts_done * remaining if self.contexts_done else 0.0
        what = f"{done}/{in_round} {self.unit}"
        if in_round < self.problems:  # later rounds: only the episodes still going (others stopped at a right answer)
            what += f" still going (of {self.problems})"
        head = f"{self.label} attempt {attempt + 1}/{self.attempts}" if self.attempts > 1 else self.label
        return (
            f"{head}: {what} | {self.tokens} tokens, {rate:.1f} tok/s | "
            f"{format_duration(elapsed)} elapsed, ETA {format_duration(eta)}"
        )


def evaluate_self_correction(
    model,
    tokenizer,
    dataset,
    attempts: int = 2,
    feedback: str = "score_instruction",
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    batch_size: int = 16,
    generate: GenerateFn | None = None,
    feedback_template: str | None = None,
    stop_on_correct: bool = False,
    chat_template_kwargs: dict | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run K-attempt episodes on every row of `dataset` (columns `prompt`, `solution`) and return the table.

    Contexts are built as in training: the same chat-template kwargs for the prompt, the same feedback provider and
    template between attempts, every EOS id of the model's generation config ending an attempt.
    An episode that ends early (a stop-on-correct feedback such as UFO's unary message, or `stop_on_correct`) keeps its
    last outcome for the attempts it did not make, as the training metrics do: acc@tk is then success within k turns.
    `succ_tk` (right at any of the first k attempts) is reported for every k, `attempts_mean` is the turns used.
    `generate` replaces the model's sampling (e.g. a scripted generator in tests); by default `HFGenerate(model)`.
    `progress`: log a line per generation batch of each attempt round (`EvalProgress`).
    """
    if len(dataset) == 0:
        raise ValueError("the evaluation dataset is empty.")
    if attempts < 1:
        raise ValueError(f"`eval_attempts` must be at least 1; got {attempts}.")
    rows = [dict(row) for row in dataset]
    turns = ChatTurns.for_model(tokenizer, model, chat_template_kwargs, multi_turn=attempts > 1)
    prompt_ids = [turns.prompt_ids(row["prompt"]) for row in rows]
    was_training = model is not None and model.training
    if model is not None:
        model.eval()
    start = time.perf_counter()
    sampler = generate or HFGenerate(model, tokenizer, temperature=temperature, batch_size=batch_size)
    if progress:
        logger.info(
            "evaluating %d problems, up to %d attempt%s of <= %d tokens each, batches of %d",
            len(rows),
            attempts,
            "s" * (attempts > 1),
            max_new_tokens,
            batch_size,
        )
        sampler = EvalProgress(sampler, len(rows), attempts, chunk=None if generate else batch_size)
    episodes = run_episodes(
        prompt_ids,
        rows,
        generate=sampler,
        decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        feedback=get_feedback_provider(feedback, feedback_template),
        turns=turns,
        spec=EpisodeSpec(max_attempts=attempts, max_attempt_tokens=max_new_tokens, stop_on_correct=stop_on_correct),
    )
    if model is not None:
        model.train(was_training)
    filled = carry_forward([ep.attempt_correct for ep in episodes], attempts)  # per episode, per attempt
    correct_by_attempt = [list(column) for column in zip(*filled)]  # per attempt, per episode
    table = attempt_accuracy(correct_by_attempt)
    for k in range(1, attempts + 1):
        table[f"succ_t{k}"] = sum(any(ep.attempt_correct[:k]) for ep in episodes) / len(episodes)
    table["attempts_mean"] = sum(ep.num_attempts for ep in episodes) / len(episodes)
    # 1.0 when the feedback ends an episode at its first correct answer (UFO): the table then shows succ@k
    table["stops_on_correct"] = float(stop_on_correct or feedback == "unary")
    table["stopped_early"] = sum(ep.num_attempts < attempts for ep in episodes) / len(episodes)
    if attempts > 1:  # how often a later attempt repeats the previous answer (SCoRe's collapse mode)
        pairs = [
            (ep.attempt_answers[t - 1], ep.attempt_answers[t]) for ep in episodes for t in range(1, ep.num_attempts)
        ]
        table["repeat_answer_frac"] = sum(a == b for a, b in pairs) / len(pairs) if pairs else 0.0
    table["num_problems"] = len(rows)
    table["truncated_t1"] = sum(ep.attempt_truncated[0] for ep in episodes) / len(episodes)
    table["boxed_t1"] = sum(bool(ep.attempt_answers[0]) for ep in episodes) / len(episodes)
    if all("level" in row for row in rows):  # per-difficulty accuracy of the first and last attempt
        for level in sorted({row["level"] for row in rows}):
            index = [i for i, row in enumerate(rows) if row["level"] == level]
            table[f"level_{level}/acc_t1"] = sum(correct_by_attempt[0][i] for i in index) / len(index)
            table[f"level_{level}/acc_t{attempts}"] = sum(correct_by_attempt[-1][i] for i in index) / len(index)
    table["seconds"] = round(time.perf_counter() - start, 1)
    samples = [
        {
            "solution": row["solution"],
            "attempts": ep.attempt_texts,
            "answers": ep.attempt_answers,
            "correct": ep.attempt_correct,
            "feedback": ep.feedback_texts,
        }
        for row, ep in zip(rows, episodes)
    ]
    config = dict(
        attempts=attempts,
        feedback=feedback,
        feedback_template=feedback_template,
        stop_on_correct=stop_on_correct,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
    )
    return {"metrics": table, "samples": samples, "config": config}


def evaluate_pass_at_k(
    model,
    tokenizer,
    dataset,
    num_samples: int,
    ks: list[int],
    temperature: float = 1.0,
    max_new_tokens: int = 128,
    batch_size: int = 16,
    generate: GenerateFn | None = None,
    chat_template_kwargs: dict | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """pass@k for each k from `num_samples` sampled answers per problem (unbiased estimator, Chen et al. 2021).
    `progress`: log a line per generation batch (`EvalProgress`)."""
    bad = [k for k in ks if not 1 <= k <= num_samples]
    if bad:
        raise ValueError(f"`eval_pass_k` values must be in 1..eval_num_samples ({num_samples}); got {bad}.")
    if temperature <= 0:
        raise ValueError(f"pass@k needs sampling: `eval_sample_temperature` must be > 0; got {temperature}.")
    rows = [dict(row) for row in dataset]
    turns = ChatTurns.for_model(tokenizer, model, chat_template_kwargs)
    contexts = [turns.prompt_ids(row["prompt"]) for row in rows for _ in range(num_samples)]
    sampler = generate or HFGenerate(model, tokenizer, temperature=temperature, batch_size=batch_size)
    if progress:
        sampler = EvalProgress(
            sampler, len(contexts), 1, chunk=None if generate else batch_size, label="pass@k", unit="samples"
        )
    generate = sampler
    if model is not None:
        model.eval()
    # one-attempt episodes: the engine's rule (an attempt cut off by the cap is wrong, else the judge) as in training
    episodes = run_episodes(
        contexts,
        [row for row in rows for _ in range(num_samples)],
        generate,
        decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        feedback=get_feedback_provider("unary"),  # never used with a single attempt
        turns=turns,
        spec=EpisodeSpec(max_attempts=1, max_attempt_tokens=max_new_tokens),
    )
    correct_counts = [
        sum(bool(ep.attempt_correct[0]) for ep in episodes[i * num_samples : (i + 1) * num_samples])
        for i in range(len(rows))
    ]
    metrics = {f"pass@{k}": mean_pass_at_k([num_samples] * len(rows), correct_counts, k) for k in ks}
    metrics["pass_samples"] = num_samples
    return metrics


def evaluate_with_script_args(model, tokenizer, dataset, script_args) -> dict[str, Any]:
    """`evaluate_self_correction`, plus pass@k when `eval_num_samples` > 0, with the recipe's `eval_*` fields.

    Eval fields left null are filled from the training config (`configs.resolve_eval_settings`) when the recipe is
    parsed; filled here with their stand-alone defaults for script args built by hand. Generation runs in the recipe's
    resolved `precision` (bf16: one autocast region around the whole evaluation; the weights stay as loaded).
    """
    from .configs import resolve_eval_settings
    from .precision import autocast_context

    resolve_eval_settings(script_args, None)
    device_type = next(model.parameters()).device.type if model is not None else "cpu"
    with autocast_context(getattr(script_args, "precision", None), device_type):  # one region: weights cast once
        return _evaluate_with_script_args(model, tokenizer, dataset, script_args)


def _evaluate_with_script_args(model, tokenizer, dataset, script_args) -> dict[str, Any]:
    result = evaluate_self_correction(
        model,
        tokenizer,
        dataset,
        attempts=script_args.eval_attempts,
        feedback=script_args.eval_feedback,
        max_new_tokens=script_args.eval_max_new_tokens,
        temperature=script_args.eval_temperature,
        batch_size=script_args.eval_batch_size,
        feedback_template=script_args.eval_feedback_template,
        stop_on_correct=script_args.eval_stop_on_correct,
        chat_template_kwargs=script_args.eval_chat_template_kwargs,
        progress=not getattr(script_args, "quiet", False),
    )
    if script_args.eval_num_samples > 0:
        result["metrics"].update(
            evaluate_pass_at_k(
                model,
                tokenizer,
                dataset,
                num_samples=script_args.eval_num_samples,
                ks=script_args.eval_pass_k,
                temperature=script_args.eval_sample_temperature,
                max_new_tokens=script_args.eval_max_new_tokens,
                batch_size=script_args.eval_batch_size,
                chat_template_kwargs=script_args.eval_chat_template_kwargs,
                progress=not getattr(script_args, "quiet", False),
            )
        )
    if getattr(script_args, "eval_verify_samples", 0) > 0:  # RISE: verification-weighted majority voting
        from .verification import evaluate_vote_with_script_args as evaluate_verification

        result["metrics"].update(evaluate_verification(model, tokenizer, dataset, script_args))
    return result


def _cell(head: str, value: float) -> str:
    if head == "turns":
        return f"{value:.2f}"
    return f"{100 * value:+.1f}" if "Δ" in head or "−" in head else f"{100 * value:.1f}"


def markdown_table(metrics: dict[str, float], title: str = "") -> str:
    """The table of `evaluate_self_correction`'s metrics: acc@t1..acc@tK, then (more than one attempt) Δ(t1,tK),
    Δ i→c and Δ c→i, UFO's succ@K − acc@1 and turns, and the pass@k / verification tables when measured."""
    attempts = sorted((k for k in metrics if k.startswith("acc_t") and k[5:].isdigit()), key=lambda k: int(k[5:]))
    heads = [f"acc@t{k[5:]}" for k in attempts]
    values = [metrics[k] for k in attempts]
    if len(attempts) > 1:  # one attempt: no change between attempts to show
        heads += ["Δ(t1,tK)", "Δ i→c", "Δ c→i"]
        values += [metrics["delta"], metrics["delta_i2c"], metrics["delta_c2i"]]
    if metrics.get("stops_on_correct") and len(attempts) > 1:  # UFO's table: success within K turns, turns used
        last = attempts[-1][5:]
        heads += [f"succ@{last} − acc@1", "turns"]
        values += [metrics[f"succ_t{last}"] - metrics["acc_t1"], metrics["attempts_mean"]]
    lines = [f"| {title or 'model'} | " + " | ".join(heads) + " |", "|" + "---|" * (len(heads) + 1)]
    lines.append(
        f"| n={metrics.get('num_problems', '?')} | " + " | ".join(_cell(h, v) for h, v in zip(heads, values)) + " |"
    )
    passes = sorted((k for k in metrics if k.startswith("pass@")), key=lambda k: int(k[5:]))
    if passes:
        lines += [
            "",
            f"| n={metrics.get('pass_samples')} samples | " + " | ".join(passes) + " |",
            "|" + "---|" * (len(passes) + 1),
            "| | " + " | ".join(f"{100 * metrics[k]:.1f}" for k in passes) + " |",
        ]
    from .verification import markdown_lines as verification_lines

    lines += verification_lines(metrics)
    return "\n".join(lines)


def save_results(result: dict[str, Any], out_dir: str | Path, name: str) -> Path:
    """`name.json` (metrics, samples, config), `name.md` (the table) and `name.png` (the plot) in `out_dir`."""
    from .plots import save_eval_plot

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2))
    (out_dir / f"{name}.md").write_text(markdown_table(result["metrics"], title=name) + "\n")
    save_eval_plot({name: result["metrics"]}, out_dir / f"{name}.png", title=name)
    return out_dir / f"{name}.json"


def markdown_comparison(named_metrics: dict[str, dict[str, float]]) -> str:
    """One row per evaluated model (e.g. before / after training), with the columns of `markdown_table`."""
    lines: list[str] = []
    pass_lines: list[str] = []
    for name, metrics in named_metrics.items():
        table = markdown_table(metrics).split("\n")
        if not lines:
            lines = ["| model |" + table[0].split("|", 2)[2], table[1]]
        lines.append(f"| {name} (n={metrics.get('num_problems', '?')}) |" + table[2].split("|", 2)[2])
        if len(table) >= 7 and table[4].startswith("| n=") and table[4].split("|", 2)[1].endswith("samples "):
            if not pass_lines:
                pass_lines = ["", "| model |" + table[4].split("|", 2)[2], table[5]]
            pass_lines.append(f"| {name} (n={metrics.get('pass_samples')} samples) |" + table[6].split("|", 2)[2])
    return "\n".join(lines + pass_lines)


def save_comparison(
    named_metrics: dict[str, dict[str, float]], out_dir: str | Path, name: str, footer: str | None = None
) -> str:
    """The comparison table (`name.md`, `footer` under it) and one plot of every model (`name.png`) in `out_dir`;
    returns the table."""
    from .plots import save_eval_plot

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = markdown_comparison(named_metrics) + (f"\n\n{footer}" if footer else "")
    (out_dir / f"{name}.md").write_text(table + "\n")
    save_eval_plot(named_metrics, out_dir / f"{name}.png", title=" vs ".join(named_metrics))
    return table


def load_model_for_eval(model_args):
    """(model, tokenizer) for `model_name_or_path`: a model, a training checkpoint, or a LoRA adapter folder.

    An adapter folder (`adapter_config.json`, what a `use_peft` run saves) is loaded onto its base model
    (`base_model_name_or_path` in that file) and merged. Fails with a `ModelLoadError` naming the path when a local
    checkpoint does not exist (listing the checkpoints next to it), when an adapter does not fit its base model, or when
    the tokenizer's vocabulary does not fit the model's embeddings.
    """
    import dataclasses

    from .models import ModelLoadError, is_embedded, load_model, load_tokenizer

    name = model_args.model_name_or_path
    path = Path(name).expanduser() if name else None
    if (
        path is not None
        and not is_embedded(name)
        and not path.exists()
        and path.parent.is_dir()
        and path.parent != Path(".")
    ):
        nearby = sorted(
            p.name
            for p in path.parent.iterdir()
            if (p / "config.json").is_file() or (p / "adapter_config.json").is_file()
        )
        listing = f"model folders there: {', '.join(nearby)}" if nearby else "no model folder there"
        raise ModelLoadError(f"`model_name_or_path`: the checkpoint {path} does not exist ({listing}).")
    if path is not None and (path / "adapter_config.json").is_file():
        from peft import PeftModel

        adapter = json.loads((path / "adapter_config.json").read_text())
        base = adapter.get("base_model_name_or_path")
        if not base:
            raise ModelLoadError(
                f"{path}/adapter_config.json names no `base_model_name_or_path`, so the base model is unknown."
            )
        model = load_model(dataclasses.replace(model_args, model_name_or_path=base))
        try:
            model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"the LoRA adapter {path} does not match its base model {base}: {first}") from exc
        tokenizer = load_tokenizer(str(path) if (path / "tokenizer_config.json").is_file() else base)
    else:
        tokenizer = load_tokenizer(name)
        model = load_model(model_args)
    embeddings = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > embeddings:
        raise ModelLoadError(
            f"`model_name_or_path` {name}: the tokenizer has {len(tokenizer)} tokens but the model's embedding table "
            f"has {embeddings} rows; the checkpoint and the tokenizer come from different models."
        )
    return model, tokenizer


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point of `selfcorrect eval`: evaluate the recipe's model on the recipe's test split."""
    from transformers import set_seed

    from .configs import parse_recipe
    from .data import eval_split_summary, load_datasets

    model_args, data_args, script_args, training_args = parse_recipe(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    set_seed(training_args.seed)  # sampled evaluation (eval_temperature > 0) is reproducible
    _, test_ds = load_datasets(data_args, train=False, test=True)
    model, tokenizer = load_model_for_eval(model_args)
    result = evaluate_with_script_args(model, tokenizer, test_ds, script_args)
    result["config"]["eval_split"] = eval_split_summary(data_args)  # held_out: false when evaluating training rows
    path = save_results(result, Path(training_args.output_dir) / "eval", "eval")
    print(markdown_table(result["metrics"], title=str(model_args.model_name_or_path)))
    print(f"saved {path} (and .md, .png)")
    if "wandb" in (training_args.report_to or []):  # the table, its metrics and the plot in a W&B run of its own
        from .tracking import log_eval_to_wandb

        log_eval_to_wandb(result, None, path.with_suffix(".png"), model_args, data_args, script_args, training_args)
    return result


if __name__ == "__main__":
    import sys

    from .exit_codes import run_reporting_errors
    from .launch_utils import prepare_command

    prepare_command(sys.argv[1:])  # CPU threads, OMP_WAIT_POLICY and third-party noise
    sys.exit(run_reporting_errors(main, sys.argv[1:]))
