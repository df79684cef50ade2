"""Batch arithmetic for launching a recipe on a different number of processes.

    python -m selfcorrect.launch_utils gradient-accumulation RECIPE.yaml GLOBAL_BATCH NUM_PROCESSES [--field value ...]

TRL's GRPO batch: every optimizer step consumes `per_device_train_batch_size * num_processes *
gradient_accumulation_steps` completions (the global batch), i.e. that number divided by `num_generations` prompts.
To keep a recipe's global batch when the GPU count changes, change `gradient_accumulation_steps`; `launch/train.sh
--global_batch B` does it with `gradient_accumulation_for`. TRL also requires the generation batch to split into whole
groups (`num_generations` must divide it); a group may span ranks (rewards are gathered before group statistics).
"""

from __future__ import annotations

import sys

from .configs import RecipeError, _peek, load_recipe_file

TRL_DEFAULT_PER_DEVICE_BATCH = 8  # GRPOConfig.per_device_train_batch_size


def gradient_accumulation_for(global_batch: int, per_device_batch: int, num_processes: int) -> int:
    """The `gradient_accumulation_steps` that makes `per_device * processes * accumulation == global_batch`."""
    if min(global_batch, per_device_batch, num_processes) < 1:
        raise RecipeError(
            f"global batch ({global_batch}), `per_device_train_batch_size` ({per_device_batch}) and the number of "
            f"processes ({num_processes}) must be positive."
        )
    per_step = per_device_batch * num_processes
    if global_batch % per_step:
        raise RecipeError(
            f"a global batch of {global_batch} completions cannot be split over {num_processes} processes x "
            f"`per_device_train_batch_size` = {per_device_batch} ({per_step} per micro-step): choose a global batch "
            f"divisible by {per_step}, or change `per_device_train_batch_size`."
        )
    return global_batch // per_step


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 4 or argv[0] != "gradient-accumulation":
        print(__doc__.strip().splitlines()[0].strip(), file=sys.stderr)
        return 2
    recipe, global_batch, num_processes, overrides = argv[1], int(argv[2]), int(argv[3]), argv[4:]
    try:
        values = load_recipe_file(recipe)
        per_device = _peek(overrides, "per_device_train_batch_size") or values.get(
            "per_device_train_batch_size", TRL_DEFAULT_PER_DEVICE_BATCH
        )
        print(gradient_accumulation_for(global_batch, int(per_device), num_processes))
    except RecipeError as exc:
        print(f"selfcorrect: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
