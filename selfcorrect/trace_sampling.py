"""What the data commands (`selfcorrect redi-data`, `selfcorrect revision-data`) share: their command line's common
part and sampling traces from the recipe's model. A command module: it loads models; the rows built from the traces
are data preparation (`selfcorrect.data.redi`, `selfcorrect.data.revision`), which runs none.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from .errors import RecipeError

logger = logging.getLogger(__name__)


def command_parser(command: str, usage: str, outputs: str) -> argparse.ArgumentParser:
    """The parser of `selfcorrect COMMAND`, with its `--output_dir` (`outputs`: the files it holds). Logging is set up
    here too, as every data command prints its progress."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog=f"selfcorrect {command}", usage=usage, allow_abbrev=False)
    parser.add_argument("--output_dir", required=True, help=f"Folder for {outputs}.")
    return parser


def add_sampling_options(parser: argparse.ArgumentParser, prefix: str, samples: int, samples_help: str) -> None:
    """`--PREFIX_samples` (default `samples`), `--PREFIX_max_new_tokens`, `--PREFIX_temperature`, `--PREFIX_top_p`:
    how traces are sampled from the recipe's model."""
    parser.add_argument(f"--{prefix}_samples", type=int, default=samples, help=samples_help)
    parser.add_argument(
        f"--{prefix}_max_new_tokens", type=int, default=None, help="Token cap (default eval_max_new_tokens)."
    )
    parser.add_argument(f"--{prefix}_temperature", type=float, default=1.0, help="Sampling temperature (> 0).")
    parser.add_argument(f"--{prefix}_top_p", type=float, default=1.0, help="Nucleus sampling threshold.")


def parse_command_line(
    parser: argparse.ArgumentParser, argv: list[str] | None, usage: str
) -> tuple[argparse.Namespace, list[str]]:
    """(the command's options, the rest: the recipe's `--config` and field overrides). `--help` exits 0 after
    printing the options; invalid options are a `RecipeError` naming the usage."""
    try:
        return parser.parse_known_args(argv)
    except SystemExit as exc:
        if exc.code == 0:  # --help printed the options
            raise
        raise RecipeError(f"{parser.prog.split()[-1]}: invalid arguments; usage: {usage}") from exc


def write_jsonl(rows: list[dict], path: Path) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def sample_traces(
    model,
    tokenizer,
    dataset,
    samples: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    batch_size: int,
    chat_template_kwargs: dict | None = None,
) -> list[dict[str, Any]]:
    """`samples` sampled completions per problem of `dataset` (columns `prompt`, `solution`), one row per trace.

    Prompts are rendered and attempts ended as in training and evaluation (`ChatTurns.for_model`): a trace is
    `truncated` when it does not end in one of the model's EOS ids."""
    from .episodes import ChatTurns, HFGenerate

    rows = [dict(row) for row in dataset]
    turns = ChatTurns.for_model(tokenizer, model, chat_template_kwargs)
    contexts = [turns.prompt_ids(row["prompt"]) for row in rows for _ in range(samples)]
    model.eval()
    generate = HFGenerate(model, tokenizer, temperature=temperature, top_p=top_p, batch_size=batch_size)
    outputs: list[list[int]] = []
    for start in range(0, len(contexts), batch_size):
        outputs += generate(contexts[start : start + batch_size], max_new_tokens, 0)[0]
        logger.info("sampled %d / %d traces", len(outputs), len(contexts))
    return [
        {
            "prompt": rows[i // samples]["prompt"],
            "completion": tokenizer.decode(ids, skip_special_tokens=True),
            "solution": rows[i // samples]["solution"],
            "truncated": not turns.ends_attempt(ids),
        }
        for i, ids in enumerate(outputs)
    ]


def sample_from_recipe_model(
    model_args, script_args, seed: int, problems, options: argparse.Namespace, prefix: str, what: str
) -> list[dict[str, Any]]:
    """Seed, load the recipe's model and tokenizer, and sample `--PREFIX_samples` traces per problem with the
    `--PREFIX_*` sampling options (`what`: the word the progress line uses for them), in the recipe's precision."""
    from transformers import set_seed

    from .models import load_model, load_tokenizer
    from .precision import autocast_context

    samples = getattr(options, f"{prefix}_samples")
    max_new_tokens = getattr(options, f"{prefix}_max_new_tokens") or script_args.eval_max_new_tokens
    set_seed(seed)
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    model = load_model(model_args)
    logger.info("sampling %d %s for each of %d problems (<= %d tokens)", samples, what, len(problems), max_new_tokens)
    with autocast_context(script_args.precision):  # bf16 recipes sample in bf16 (fp32 weights)
        return sample_traces(
            model,
            tokenizer,
            problems,
            samples,
            max_new_tokens,
            getattr(options, f"{prefix}_temperature"),
            getattr(options, f"{prefix}_top_p"),
            script_args.eval_batch_size,
            script_args.eval_chat_template_kwargs,
        )
