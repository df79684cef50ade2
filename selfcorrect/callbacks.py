"""Training callbacks: a preemption-safe stop.

On SIGTERM (Slurm preemption, `kill`) or SIGINT (Ctrl-C) the run finishes the optimizer step in flight, saves a
resumable checkpoint (model, optimizer, scheduler, RNG, trainer state, hence the SCoRe stage) and stops; the next
`python -m selfcorrect.train` with the same `output_dir` resumes from it. The ranks agree on the step to stop at (the
flag is reduced across processes), so a DeepSpeed save, which is collective, happens on every rank together. A second
signal while the first is handled restores the default behaviour (stop at once).
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
