"""What every command does at launch: batch arithmetic, the CPU threads, the third-party noise.

    python -m selfcorrect.launch_utils gradient-accumulation RECIPE.yaml GLOBAL_BATCH NUM_PROCESSES [--field value ...]

`prepare_command(argv)` runs first in every entry point (`selfcorrect train / eval / redi-data / revision-data`,
`python -m selfcorrect.train / .evaluate`), before torch is imported: it sets the CPU threads from the cores actually
free (`choose_num_threads`; `--num_threads N` or an explicit OMP_NUM_THREADS win) and prints its choice, sets
`OMP_WAIT_POLICY=PASSIVE` unless set (busy-waiting OpenMP threads made generation ~20x slower beside another
process), and hides known third-party messages that tell a user nothing (`silence_known_noise`). Importing the
library changes none of this.

TRL's GRPO batch: every optimizer step consumes `per_device_train_batch_size * num_processes *
gradient_accumulation_steps` completions (the global batch), i.e. that number divided by `num_generations` prompts.
To keep a recipe's global batch when the GPU count changes, change `gradient_accumulation_steps`; `launch/train.sh
--global_batch B` does it with `gradient_accumulation_for`. TRL also requires the generation batch to split into whole
groups (`num_generations` must divide it); a group may span ranks (rewards are gathered before group statistics).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from collections.abc import MutableMapping

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


def destroy_process_group() -> None:
    """End this rank's process group, if there is one, once its run has finished cleanly.

    Without it a rank can abort at exit after a run that succeeded: gloo's worker threads still hold tensors while
    the interpreter tears down ("terminate called without an active exception", SIGABRT; pytorch#190489). Measured
    here: a 2-rank gloo script that exits without it aborted in 8 of 30 launches, 0 of 30 with it. Called only after
    success, as torchtitan does: a rank that raised may leave others inside a collective, where tearing down hangs.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_launch_matches_recipe(training_args, environ: dict[str, str] | None = None) -> None:
    """Under `accelerate launch`, the launch config's precision must be the recipe's; otherwise one silently wins.

    `accelerate launch` exports the config's `mixed_precision` as ACCELERATE_MIXED_PRECISION; the recipe says `bf16` /
    `fp16` (set by `precision` when the recipe uses it, resolved for this machine before this check). A mismatch (e.g.
    a GPU config's bf16 with a CPU recipe's fp32, or a CPU config's 'no' with `precision: auto` on a bf16 CPU) is an
    error naming both values: transformers would silently let the recipe win.
    """
    environ = os.environ if environ is None else environ
    launched = environ.get("ACCELERATE_MIXED_PRECISION")
    if launched is None:  # plain `python -m selfcorrect.train`: the recipe alone decides
        return
    recipe = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no"
    if launched != recipe:
        raise RecipeError(
            f"the accelerate config says `mixed_precision: {launched}` but the recipe says "
            f"`bf16: {bool(training_args.bf16)}`, `fp16: {bool(training_args.fp16)}` (mixed precision '{recipe}'): "
            "make them agree: `precision: fp32` in the recipe for launch/cpu/*.yaml (`mixed_precision: 'no'`), or "
            "`--mixed_precision bf16` on the launch command for bf16 (`precision: auto` / `bf16` resolve to it on a "
            "GPU or a CPU with AVX512-BF16 / AMX; on CPU, DDP runs it as autocast over fp32 weights)."
        )


def choose_num_threads(
    usable_cores: int,
    load_average: float,
    omp_num_threads: str | None = None,
    requested: int | None = None,
    processes: int = 1,
) -> tuple[int, str]:
    """(threads, why) for torch's intra-op pool: `requested` (`--num_threads`) first, then an explicit
    OMP_NUM_THREADS, else the cores free now, `usable_cores - load_average` rounded, split among the `processes` of
    this machine (LOCAL_WORLD_SIZE), at least 1 and at most this process's share of `usable_cores`.

    More threads than free cores is the costly mistake: measured here, an evaluation beside one busy process ran 12x
    slower with 2 threads on 2 cores than with 1.
    """
    if requested is not None:
        if requested < 1:
            raise RecipeError(f"`num_threads` must be a positive integer; got {requested}.")
        return requested, "--num_threads"
    if omp_num_threads and omp_num_threads.strip().isdigit() and int(omp_num_threads) > 0:
        return int(omp_num_threads), "OMP_NUM_THREADS"
    processes = max(processes, 1)
    share = max(1, usable_cores // processes)
    free = max(0.0, usable_cores - load_average) / processes
    threads = max(1, min(share, int(free + 0.5)))
    why = f"{usable_cores} usable cores, load average {load_average:.1f}"
    return threads, why + (f", {processes} processes on this machine" if processes > 1 else "")


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota when there is one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def configure_threads(
    requested: int | None = None, environ: MutableMapping[str, str] | None = None, quiet: bool = False
) -> int:
    """Choose the CPU threads (`choose_num_threads` from this machine's cores and load) and apply them: exported as
    OMP_NUM_THREADS (read when torch starts; child processes inherit it), set in torch when it is already imported,
    and printed as one line (rank 0 only; none when `quiet`). Sets OMP_WAIT_POLICY=PASSIVE unless it is set."""
    environ = os.environ if environ is None else environ
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    threads, why = choose_num_threads(
        usable_cores(),
        load,
        environ.get("OMP_NUM_THREADS"),
        requested,
        int(environ.get("LOCAL_WORLD_SIZE", "1") or 1),
    )
    environ["OMP_NUM_THREADS"] = str(threads)
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if not quiet and environ.get("RANK", "0") == "0":
        print(f"selfcorrect: {threads} CPU thread{'s' * (threads != 1)} ({why})", file=sys.stderr, flush=True)
    return threads


# Third-party messages that tell a user nothing they can act on. Each is (module that warns, message pattern).
NOISY_WARNINGS = (
    # transformers 5 renamed gradient checkpointing; TRL's configs and trainers still use the old names.
    (FutureWarning, r"`\w*gradient_checkpointing\w*` is deprecated and will be removed in v6"),
)
NOISY_LOG_LINES = {"DeepSpeed": ("Setting accelerator to CPU",)}  # logger name -> message prefixes


class _DropMessages(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def silence_known_noise() -> None:
    """Hide `NOISY_WARNINGS` and `NOISY_LOG_LINES` in this process (called by the entry points, not on import)."""
    for category, pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    for name, prefixes in NOISY_LOG_LINES.items():
        target = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in target.filters):
            target.addFilter(_DropMessages(prefixes))


def _recipe_value(argv: list[str], name: str) -> str | None:
    """A field's value from the command line, else from the `--config` file, without parsing the whole recipe."""
    value = _peek(argv, name)
    if value is None and (path := _peek(argv, "config")):
        try:
            found = load_recipe_file(path).get(name)
        except RecipeError:  # the recipe's own parse reports it
            return None
        value = None if found is None else str(found)
    return value


TRUE_WORDS, FALSE_WORDS = ("true", "yes", "y", "t", "1"), ("false", "no", "n", "f", "0")  # transformers' bools


def prepare_command(argv: list[str], environ: MutableMapping[str, str] | None = None) -> None:
    """What every entry point does before importing torch: `silence_known_noise` and `configure_threads` with the
    recipe's `num_threads` / `quiet` (command line or `--config` file)."""
    environ = os.environ if environ is None else environ
    silence_known_noise()
    requested = _recipe_value(argv, "num_threads")
    if "--quiet" in argv:  # a bare `--quiet`, or `--quiet true/false`
        following = argv[argv.index("--quiet") + 1 :][:1]
        quiet = not following or following[0].lower() not in FALSE_WORDS
    else:
        quiet = str(_recipe_value(argv, "quiet")).lower() in TRUE_WORDS
    try:
        threads = int(requested) if requested not in (None, "None", "null") else None
    except ValueError:
        threads = None  # not a number: the recipe's own parse names the field
    configure_threads(threads, environ, quiet)


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
