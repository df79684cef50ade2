"""Training callbacks: a preemption-safe stop, and the self-correction evaluation every N steps.

What a run reports and how it stops when asked lives here; what refuses bad work (non-finite steps, unscored
batches, incomplete checkpoints) lives in `selfcorrect.guards`, whether it is a callback or a trainer mixin, so that
every fault the README's fault table lists has one home.

On SIGTERM (Slurm preemption, `kill`) or SIGINT (Ctrl-C) the run finishes the optimizer step in flight, saves a
resumable checkpoint (model, optimizer, scheduler, RNG, trainer state, hence the SCoRe stage) and stops; the next
`python -m selfcorrect.train` with the same `output_dir` resumes from it. The ranks agree on the step to stop at (the
flag is reduced across processes), so a DeepSpeed save, which is collective, happens on every rank together. A second
signal while the first is handled restores the default behaviour (stop at once).

`SelfCorrectionEvalCallback` (recipe field `selfcorrect_eval_steps: N`) runs the same evaluation as
`selfcorrect eval` every N optimizer steps on the main process (the other ranks wait), saves it as
`output_dir/eval/step_<N>.{json,md,png}` and logs its numbers as `selfcorrect/eval/<metric>` with that step's logs
(W&B, TensorBoard, the console).

`LogHistoryCallback` appends every log (step + metrics) to `output_dir/log_history.jsonl` as training goes (main
process, one flushed JSON line per log), so an interrupted run keeps its curves; a resumed run keeps the lines up to
the step it resumes from and drops the ones it will redo. `selfcorrect plot RUN_DIR` draws them.

`CompactProgressCallback` replaces transformers' progress bar / printer: instead of TRL's raw metric dict it prints
one line per log with the self-correction numbers and the wall time per step (`format_log_line`), above the tqdm bar
(none with `disable_tqdm`), on the main process only. `use_compact_console(trainer)` swaps it in.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from .collective import any_rank
from .guards import zero_signal_reason

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
        if any_rank(self.accelerator, self.requested):
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


class LogHistoryCallback(TrainerCallback):
    """Append each log as one JSON line `{**metrics, "step": N}` to `output_dir/log_history.jsonl` (main process)."""

    def __init__(self, output_dir: str | Path):
        from .plots import LOG_HISTORY_FILE

        self.path = Path(output_dir) / LOG_HISTORY_FILE

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from .plots import read_jsonl_records

        # Resuming at step N: steps after N ran before the interruption but will run again; a fresh run (N = 0)
        # starts an empty file.
        kept = []
        if self.path.is_file():
            kept = [r for r in read_jsonl_records(self.path) if _number(r.get("step"), 0) <= state.global_step]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".tmp")
        partial.write_text("".join(_json_line(r) for r in kept), encoding="utf-8")
        os.replace(partial, self.path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(_json_line({**logs, "step": state.global_step}))
            f.flush()


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _json_line(record: dict[str, Any]) -> str:
    def fallback(value):  # tensors, numpy scalars
        try:
            return value.item() if hasattr(value, "item") else float(value)
        except (TypeError, ValueError):
            return str(value)

    return json.dumps(record, default=fallback) + "\n"


def _percents(logs: dict[str, Any], prefix: str) -> str:
    """`acc@t1 25.0 acc@t2 31.2 Δ +6.2 (i→c 6.2, c→i 0.0)` from `prefix`acc_t{k} / delta / delta_i2c / delta_c2i."""
    pattern = re.compile(re.escape(prefix) + r"acc_t(\d+)")
    attempts = sorted(int(m.group(1)) for key in logs if (m := pattern.fullmatch(key)))
    words = [f"acc@t{k} {100 * logs[f'{prefix}acc_t{k}']:.1f}" for k in attempts]
    if f"{prefix}delta" in logs:
        words.append(f"Δ {100 * logs[f'{prefix}delta']:+.1f}")
        if f"{prefix}delta_i2c" in logs and f"{prefix}delta_c2i" in logs:
            i2c, c2i = 100 * logs[f"{prefix}delta_i2c"], 100 * logs[f"{prefix}delta_c2i"]
            words.append(f"(i→c {i2c:.1f}, c→i {c2i:.1f})")
    return " ".join(words)


def format_log_line(
    logs: dict[str, Any], step: int, max_steps: int | None = None, seconds_per_step: float | None = None
) -> str | None:
    """One console line for a log: `step 3/8 | acc@t1 25.0 acc@t2 31.2 Δ +6.2 (i→c 6.2, c→i 0.0) | reward 0.41 |
    loss 0.012 | 12.3 s/step` (accuracies and Δ in %), each part only when logged, the periodic eval as
    `| eval acc@t1 ...`; a step whose groups all had zero advantage adds `| no signal: all wrong, 75 % truncated`
    (`guards.zero_signal_reason`). Without `seconds_per_step`, TRL's `step_time` is used. The end-of-training summary becomes
    `done | step 8/8 in 98.4 s | train loss 0.012`. None for a log with none of these."""
    head = f"step {step}/{max_steps}" if max_steps else f"step {step}"
    if "train_runtime" in logs:
        parts = ["done", f"{head} in {logs['train_runtime']:.1f} s"]
        if "train_loss" in logs:
            parts.append(f"train loss {logs['train_loss']:.3g}")
        return " | ".join(parts)
    parts = [head]
    if train := _percents(logs, "selfcorrect/"):
        parts.append(train)
    if "reward" in logs:
        parts.append(f"reward {logs['reward']:.2f}")
    if "redi/margin" in logs:  # REDI: how much likelier (per token) correct traces are than incorrect ones
        parts.append(f"margin {logs['redi/margin']:+.3g}")
    if "loss" in logs:
        parts.append(f"loss {logs['loss']:.3g}")
    if "eval_loss" in logs:
        parts.append(f"eval loss {logs['eval_loss']:.3g}")
    if reason := zero_signal_reason(logs):  # every group had zero advantage: this step trained nothing
        parts.append(f"no signal: {reason}")
    if evals := _percents(logs, "selfcorrect/eval/"):
        parts.append(f"eval {evals}")
    if len(parts) == 1:
        return None
    if seconds_per_step is None and isinstance(logs.get("step_time"), int | float):
        seconds_per_step = logs["step_time"]
    if seconds_per_step is not None and math.isfinite(seconds_per_step):
        parts.append(f"{seconds_per_step:.1f} s/step")
    return " | ".join(parts)


class CompactProgressCallback(ProgressCallback):
    """transformers' progress bar (`bar=False`: none, as with `disable_tqdm`), with `format_log_line`'s one line
    per log instead of the raw metric dict; main process only."""

    def __init__(self, bar: bool = True):
        super().__init__()
        self.bar = bar
        self.current_step = 0
        self._last: tuple[float, int] | None = None  # (wall time, step) of the last log that advanced the step

    def on_train_begin(self, args, state, control, **kwargs):
        self.current_step = state.global_step  # a resumed run's bar starts where the run is
        self._last = (time.perf_counter(), state.global_step)
        if state.is_world_process_zero and self.bar:
            from tqdm.auto import tqdm

            self.training_bar = tqdm(total=state.max_steps, initial=state.global_step, dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            self.training_bar.update(state.global_step - self.current_step)
        self.current_step = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        seconds = None
        now = time.perf_counter()
        if self._last is not None and state.global_step > self._last[1] and "train_runtime" not in logs:
            seconds = (now - self._last[0]) / (state.global_step - self._last[1])
            self._last = (now, state.global_step)
        try:
            line = format_log_line(logs, state.global_step, state.max_steps, seconds)
        except (TypeError, ValueError):  # a value that is not a number: the console line must never stop training
            line = f"step {state.global_step}/{state.max_steps}"
        if line is None:
            return
        if self.training_bar is not None:
            self.training_bar.write(line)
        else:
            print(line, flush=True)

    def on_train_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            self.training_bar.close()
            self.training_bar = None


def use_compact_console(trainer) -> None:
    """Swap transformers' ProgressCallback (or, with `disable_tqdm`, PrinterCallback) for `CompactProgressCallback`."""
    callbacks = trainer.callback_handler.callbacks
    for i, callback in enumerate(callbacks):
        if type(callback) is ProgressCallback:
            callbacks[i] = CompactProgressCallback(bar=True)
        elif type(callback) is PrinterCallback:
            callbacks[i] = CompactProgressCallback(bar=False)
