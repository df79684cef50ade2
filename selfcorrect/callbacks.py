"""Training callbacks: a preemption-safe stop, and the self-correction evaluation every N steps.

On SIGTERM (Slurm preemption, `kill`) or SIGINT (Ctrl-C) the run finishes the optimizer step in flight, saves a
resumable checkpoint (model, optimizer, scheduler, RNG, trainer state, hence the SCoRe stage) and stops; the next
`python -m selfcorrect.train` with the same `output_dir` resumes from it. The ranks agree on the step to stop at (the
flag is reduced across processes), so a DeepSpeed save, which is collective, happens on every rank together. A second
signal while the first is handled restores the default behaviour (stop at once).

`SelfCorrectionEvalCallback` (recipe field `selfcorrect_eval_steps: N`) runs the same evaluation as
`selfcorrect eval` every N optimizer steps on the main process (the other ranks wait), saves it as
`output_dir/eval/step_<N>.{json,md,png}` and logs its numbers as `selfcorrect/eval/<metric>` with that step's logs
(W&B, TensorBoard, the console).
"""

from __future__ import annotations

import logging
import signal
import threading

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class PreemptionCallback(TrainerCallback):
    """Save a checkpoint and stop at the end of the current step when SIGTERM or SIGINT arrives."""

    signals = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, accelerator=None):
        self.accelerator = accelerator
        self.requested = False
        self.stopped_at: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.requested:  # second signal: give up waiting for the step to end
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("received %s: saving a checkpoint at the end of this step", signal.Signals(signum).name)

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is threading.main_thread():  # signal handlers can only be set there
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)

    def on_step_end(self, args, state, control, **kwargs):
        requested = self.requested
        if self.accelerator is not None and self.accelerator.num_processes > 1:
            flag = torch.tensor([float(requested)], device=self.accelerator.device)
            requested = bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)
        if requested:
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control

    def on_train_end(self, args, state, control, **kwargs):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


class SelfCorrectionEvalCallback(TrainerCallback):
    """The self-correction evaluation (`selfcorrect eval`'s table) every `every` optimizer steps, logged with the step."""

    def __init__(self, trainer, tokenizer, dataset, script_args, every: int):
        if every < 1:
            raise ValueError(f"`selfcorrect_eval_steps` must be positive to evaluate during training; got {every}.")
        plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
        if plugin is not None and plugin.zero_stage == 3:  # the main process alone cannot run a ZeRO-3 sharded model
            raise ValueError(
                "`selfcorrect_eval_steps` evaluates on the main process, which cannot generate with ZeRO-3 sharded "
                "weights; use ZeRO-2 / DDP, or evaluate saved checkpoints with `selfcorrect eval`."
            )
        self.trainer, self.tokenizer, self.dataset = trainer, tokenizer, dataset
        self.script_args, self.every = script_args, every
        self.history: list[tuple[int, dict]] = []  # (step, metrics) on the main process

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every:
            return control
        from .evaluate import evaluate_with_script_args, save_results

        accelerator = self.trainer.accelerator
        if accelerator.is_main_process:
            model = accelerator.unwrap_model(self.trainer.model)
            devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
            with torch.random.fork_rng(devices=devices):  # a sampled eval leaves training's random stream alone
                result = evaluate_with_script_args(model, self.tokenizer, self.dataset, self.script_args)
            save_results(result, f"{args.output_dir}/eval", f"step_{state.global_step}")
            numbers = {
                f"selfcorrect/eval/{key}": float(value)
                for key, value in result["metrics"].items()
                if isinstance(value, int | float) and not isinstance(value, bool)
            }
            self.history.append((state.global_step, numbers))
            metrics = getattr(self.trainer, "_metrics", None)
            if metrics is not None and "train" in metrics:  # TRL trainers: logged with this step's own metrics
                for key, value in numbers.items():
                    metrics["train"][key].append(value)
            else:
                self.trainer.log(numbers)
        accelerator.wait_for_everyone()
        control.should_log = True  # on every rank: logging reduces the loss across processes
        return control
