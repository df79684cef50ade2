"""Train from a recipe.

    python -m selfcorrect.train --config recipes/demo/grpo.yaml [--field value ...]
    accelerate launch --config_file launch/accelerate/zero2.yaml -m selfcorrect.train --config recipes/<model>/<method>.yaml

Parses the recipe (model, data, script and trainer fields in one flat YAML), loads the data and the model, builds the
reward functions and the trainer named by `method`, optionally evaluates before and after training, trains, and saves
the final model to `output_dir`. As a command it first sets the CPU threads (`--num_threads`, printed) and hides
known third-party noise (`launch_utils.prepare_command`); `--help` lists the fields without loading torch.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger("selfcorrect")


def run_eval(
    trainer_or_model, tokenizer, test_ds, script_args, output_dir: str, name: str, accelerator=None, eval_split=None
):
    """The self-correction table on the main process (others wait), saved under `output_dir/eval/name.*`, with
    `eval_split` (which rows were evaluated; `held_out: false` when they are training rows) in its config."""
    from .evaluate import evaluate_with_script_args, markdown_table, save_results

    if accelerator is not None and not accelerator.is_main_process:
        accelerator.wait_for_everyone()
        return None
    model = trainer_or_model
    if accelerator is not None:
        model = accelerator.unwrap_model(model)
    result = evaluate_with_script_args(model, tokenizer, test_ds, script_args)
    if eval_split is not None:
        result["config"]["eval_split"] = eval_split
    path = save_results(result, Path(output_dir) / "eval", name)
    print(f"\n{markdown_table(result['metrics'], title=name)}\n", flush=True)
    from .tracking import log_eval

    log_eval(result, name, path.with_suffix(".png"))  # no-op without an active W&B run
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return result


def save_learning_curves_after_training(output_dir: str) -> None:
    """`output_dir/eval/learning_curves.png` from the run's logs; a failed plot only costs a warning."""
    from .plots import save_run_learning_curves

    try:
        path = save_run_learning_curves(output_dir)
    except Exception as exc:  # noqa: BLE001 - the trained model matters more than its picture
        logger.warning("could not draw the learning curves of %s: %s", output_dir, exc)
        return
    if path is not None:
        print(f"saved {path} (redraw with `selfcorrect plot {output_dir}`)", flush=True)


def build_trainer(argv: list[str] | None, trainer_cls: type | None = None):
    """The trainer a recipe describes, built as `selfcorrect train` builds it: (trainer, (model_args, data_args,
    script_args, training_args), test split or None). The one place that turns a recipe into a trainer: training,
    the bench and the tests all use it. `trainer_cls`: a subclass of the `method`'s trainer to build instead. A config
    with `verification_solutions` > 0 builds `with_verification(trainer class)`: RISE's verification pass composed in.

    Everything that can fail on bad input (recipe, launch, data, reward functions) is checked before the model loads.
    """
    from transformers import set_seed
    from trl import get_peft_config

    from .configs import parse_recipe
    from .data import load_completion_dataset, load_datasets
    from .launch_utils import check_launch_matches_recipe
    from .models import load_model, load_tokenizer
    from .rewards import get_reward_funcs
    from .trainers import get_method

    model_args, data_args, script_args, training_args = parse_recipe(argv)
    check_launch_matches_recipe(training_args)
    method = get_method(script_args.method)
    offline_columns = method.offline_columns
    need_test = (
        script_args.eval_before_training or script_args.eval_after_training or script_args.selfcorrect_eval_steps > 0
    )
    if offline_columns:  # SFT / REDI: (prompt, traces) rows; no reward functions
        train_ds = load_completion_dataset(data_args, offline_columns)
        _, test_ds = load_datasets(data_args, train=False, test=need_test)
        rewards = {}
    else:
        rewards = {"reward_funcs": get_reward_funcs(script_args.reward_funcs)}
        train_ds, test_ds = load_datasets(data_args, train=True, test=need_test)
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    set_seed(training_args.seed)
    model = load_model(model_args, gradient_checkpointing=training_args.gradient_checkpointing)
    trainer_cls = trainer_cls or method.trainer
    if getattr(training_args, "verification_solutions", 0) > 0:  # RISE's verification pass, composed in when asked
        from .trainers.self_verification import with_verification

        trainer_cls = with_verification(trainer_cls)
    trainer = trainer_cls(
        model=model,
        **rewards,
        args=training_args,
        train_dataset=train_ds,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    return trainer, (model_args, data_args, script_args, training_args), test_ds


def main(argv: list[str] | None = None):
    from .callbacks import LogHistoryCallback, PreemptionCallback, use_compact_console
    from .guards import NonFiniteGradientGuard, ZeroSignalWarning, last_complete_checkpoint

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    trainer, recipe, test_ds = build_trainer(argv)
    model_args, data_args, script_args, training_args = recipe
    tokenizer = trainer.processing_class
    from .data import eval_split_summary

    eval_split = eval_split_summary(data_args)
    if "wandb" in (training_args.report_to or []) and trainer.accelerator.is_main_process:
        from .tracking import init_wandb_run

        init_wandb_run(model_args, data_args, script_args, training_args, argv)  # TRL's callback reuses this run
    if script_args.selfcorrect_eval_steps:
        from .callbacks import SelfCorrectionEvalCallback

        trainer.add_callback(
            SelfCorrectionEvalCallback(trainer, tokenizer, test_ds, script_args, script_args.selfcorrect_eval_steps)
        )
    before = None
    if script_args.eval_before_training:
        before = run_eval(
            trainer.model,
            tokenizer,
            test_ds,
            script_args,
            training_args.output_dir,
            "before",
            trainer.accelerator,
            eval_split,
        )

    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None:
        checkpoint = last_complete_checkpoint(training_args.output_dir)
        if checkpoint:
            logger.info("resuming from %s", checkpoint)
    preemption = PreemptionCallback(trainer.accelerator)
    trainer.add_callback(preemption)
    trainer.add_callback(NonFiniteGradientGuard(script_args.max_nonfinite_steps, trainer.accelerator))
    trainer.add_callback(ZeroSignalWarning(script_args.zero_signal_warn_steps))  # steps that train nothing, why
    trainer.add_callback(LogHistoryCallback(training_args.output_dir))  # output_dir/log_history.jsonl, as it goes
    use_compact_console(trainer)  # one line per logged step instead of the raw metric dict
    trainer.train(resume_from_checkpoint=checkpoint)
    if trainer.accelerator.is_main_process:
        save_learning_curves_after_training(training_args.output_dir)
    if preemption.stopped_at is not None:
        logger.warning(
            "stopped by a signal after step %d; checkpoint saved in %s, run the same command to resume",
            preemption.stopped_at,
            training_args.output_dir,
        )
        return trainer
    trainer.save_model(training_args.output_dir)

    if script_args.eval_after_training:
        after = run_eval(
            trainer.model,
            tokenizer,
            test_ds,
            script_args,
            training_args.output_dir,
            "after",
            trainer.accelerator,
            eval_split,
        )
        if before is not None and after is not None:  # main process: one table and one plot of both
            from .evaluate import save_comparison
            from .metrics import change_lines

            change = "; ".join(change_lines(before, after, script_args.eval_attempts))
            table = save_comparison(
                {"before": before["metrics"], "after": after["metrics"]},
                Path(training_args.output_dir) / "eval",
                "before_after",
                footer=f"change, after − before (95 % paired bootstrap over the {len(after['samples'])} problems; "
                f"one training seed, so problem noise only): {change}",
            )
            print(f"\n{table}\n\nsaved {Path(training_args.output_dir) / 'eval' / 'before_after'}.md/.png", flush=True)
    return trainer


if __name__ == "__main__":
    import sys

    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        from .configs import recipe_help

        print(recipe_help("train"))  # fast: no torch
        sys.exit(0)
    sys.argv[1:] = ["--help" if arg == "--help-all" else arg for arg in sys.argv[1:]]
    from .exit_codes import run_reporting_errors
    from .launch_utils import prepare_command

    prepare_command(sys.argv[1:])  # CPU threads, OMP_WAIT_POLICY and third-party noise, before torch loads
    sys.exit(run_reporting_errors(main, sys.argv[1:]))
