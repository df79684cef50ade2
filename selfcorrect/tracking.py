"""Weights & Biases runs named, tagged and configured from the recipe.

With `report_to: wandb`, `selfcorrect.train` opens the run itself before TRL does (transformers' `WandbCallback`
then reuses it and adds TRL's own config):
- config: every recipe field after command-line overrides (model, data, script and trainer fields), plus `recipe`
  (the YAML file's values as written), `recipe_file` and `command_line`;
- name: `run_name` when the recipe sets it, else `<method>-<model>-<dataset>`; tags: method, model, dataset and
  `selfcorrect`; project: `$WANDB_PROJECT` (default `selfcorrect`).
- Online mode without credentials (`WANDB_API_KEY` or a netrc entry for the W&B host) or without a route to the W&B
  host falls back to offline mode with a warning (`wandb sync <run folder>` uploads it later) instead of failing.
Evaluation tables are logged as numbers, a table and the plot: `selfcorrect eval` to a run of its own
(`selfcorrect/eval/<metric>`), the before / after evaluation of a training run to that run
(`selfcorrect/eval/before/<metric>`, `.../after/...`).
"""

from __future__ import annotations

import dataclasses
import logging
import netrc
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .network import host_resolves

logger = logging.getLogger(__name__)

DEFAULT_PROJECT = "selfcorrect"
_OFF_MODES = ("offline", "disabled", "dryrun")


def _short_model(name: str | None) -> str:
    from .models import EMBEDDED_MODEL_NAME, is_embedded

    if not name:
        return "model"
    if is_embedded(name):
        return EMBEDDED_MODEL_NAME
    return Path(name.rstrip("/")).name or name


def _short_dataset(name: str | None) -> str:
    if not name:
        return "data"
    if name.startswith("bundled:"):
        return name.split(":", 1)[1]
    return Path(name.rstrip("/")).stem or name


def run_name_and_tags(model_args, data_args, script_args, training_args) -> tuple[str, list[str]]:
    """`run_name` if set, else `<method>-<model>-<dataset>`; tags: method, model, dataset, selfcorrect."""
    method = script_args.method
    model = _short_model(model_args.model_name_or_path)
    dataset = _short_dataset(data_args.dataset_name)
    name = training_args.run_name or f"{method}-{model}-{dataset}"
    tags = list(dict.fromkeys(tag[:64] for tag in (method, model, dataset, "selfcorrect")))  # W&B: <= 64 chars
    return name, tags


def recipe_config(model_args, data_args, script_args, argv: list[str] | None = None) -> dict[str, Any]:
    """The recipe as the run used it: every model / data / script field, the YAML file's values, the command line."""
    from .configs import _peek, load_recipe_file

    argv = list(sys.argv[1:] if argv is None else argv)
    config: dict[str, Any] = {}
    for args in (model_args, data_args, script_args):
        config.update(dataclasses.asdict(args))
    path = _peek(argv, "config")
    if path:
        config["recipe_file"] = str(path)
        config["recipe"] = load_recipe_file(path)
    config["command_line"] = " ".join(argv)
    return config


def _wandb_host() -> str:
    return urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"


def _has_credentials(host: str) -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def ensure_wandb_mode() -> str:
    """The W&B mode to use: online only with credentials and a route to the host, else offline with a warning."""
    mode = os.environ.get("WANDB_MODE", "online").lower()
    if mode in _OFF_MODES:
        return mode
    host = _wandb_host()
    problem = None
    if not _has_credentials(host):
        problem = f"not logged in to W&B (no WANDB_API_KEY and no netrc entry for {host})"
    elif not host_resolves(host):
        problem = f"the W&B host {host} cannot be reached from this machine"
    if problem:
        logger.warning(
            "%s: logging to an offline run instead; upload it later with `wandb sync <run folder>`.", problem
        )
        os.environ["WANDB_MODE"] = "offline"
        return "offline"
    return mode


def init_wandb_run(
    model_args,
    data_args,
    script_args,
    training_args,
    argv: list[str] | None = None,
    name_prefix: str = "",
    **init_kwargs,
):
    """Open the W&B run for a recipe (name, tags, config as described above); returns the run, or None on failure."""
    import wandb

    if wandb.run is not None:
        return wandb.run
    mode = ensure_wandb_mode()
    name, tags = run_name_and_tags(model_args, data_args, script_args, training_args)
    if not training_args.run_name:
        name = name_prefix + name
    kwargs = dict(
        project=os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT),
        name=name,
        tags=tags,
        config=recipe_config(model_args, data_args, script_args, argv),
        mode=mode,
        **init_kwargs,
    )
    try:
        return wandb.init(**kwargs)
    except Exception as exc:  # any W&B failure must not stop training
        if mode in _OFF_MODES:
            logger.warning("could not start a W&B run (%s); training continues without it.", exc)
            return None
        logger.warning("could not start an online W&B run (%s); logging to an offline run instead.", exc)
        os.environ["WANDB_MODE"] = "offline"
        try:
            return wandb.init(**{**kwargs, "mode": "offline"})
        except Exception as exc2:
            logger.warning("could not start an offline W&B run either (%s); training continues without it.", exc2)
            return None


def eval_log_payload(result: dict[str, Any], name: str | None, plot_path: str | Path | None = None) -> dict[str, Any]:
    """`selfcorrect/eval[/<name>]/<metric>` for every number, the metrics as a table, and the plot if it exists."""
    import wandb

    prefix = "selfcorrect/eval" + (f"/{name}" if name else "")
    numbers = {k: v for k, v in result["metrics"].items() if isinstance(v, int | float) and not isinstance(v, bool)}
    payload: dict[str, Any] = {f"{prefix}/{k}": v for k, v in numbers.items()}
    payload[f"{prefix}/table"] = wandb.Table(columns=["metric", "value"], data=[[k, v] for k, v in numbers.items()])
    if plot_path is not None and Path(plot_path).is_file():
        payload[f"{prefix}/plot"] = wandb.Image(str(plot_path))
    return payload


def log_eval(result: dict[str, Any], name: str, plot_path: str | Path | None = None) -> bool:
    """Log an eval table to the active W&B run (if any); True if logged."""
    try:
        import wandb
    except ImportError:
        return False
    if wandb.run is None:
        return False
    wandb.run.log(eval_log_payload(result, name, plot_path))
    return True


def log_eval_to_wandb(result, name, plot_path, model_args, data_args, script_args, training_args) -> bool:
    """`selfcorrect eval`: log the table to a W&B run of its own (job type `eval`, keys `selfcorrect/eval/<metric>`
    when `name` is None), then finish it."""
    import wandb

    run = init_wandb_run(model_args, data_args, script_args, training_args, name_prefix="eval-", job_type="eval")
    if run is None:
        return False
    run.log(eval_log_payload(result, name, plot_path))
    wandb.finish()
    return True
