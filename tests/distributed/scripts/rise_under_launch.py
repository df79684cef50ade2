"""Train a RISE recipe under `accelerate launch` and record what each rank saw.

    accelerate launch --multi_gpu --num_processes 2 tests/distributed/scripts/rise_under_launch.py RECIPE OUT_DIR
    accelerate launch --config_file launch/cpu/zero3.yaml tests/distributed/scripts/rise_under_launch.py RECIPE OUT_DIR

With RISE_UNEVEN_PASSES set, the ranks ask for different numbers of verification rows per loss pass.
A random model never writes a boxed rating, so ratings are scripted (`tests.helpers.scripted_rating`) to give the
verification rows a varied reward.
"""

import json
import os
import sys
from pathlib import Path

import selfcorrect.trainers.self_verification as self_verification
from selfcorrect import verification
from selfcorrect.launch_utils import destroy_process_group
from tests.helpers import build_trainer, scripted_rating


def main():
    recipe, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    verification.parse_rating = scripted_rating
    asked, passes = [], []
    real_asks, real_passes = self_verification.verification_pass_rows, self_verification.loss_passes
    budget = None
    if os.environ.get("RISE_UNEVEN_PASSES"):  # rank 0: all verification rows in one pass; rank 1: one row a pass
        budget = 10**9 if os.environ.get("RANK", "0") == "0" else 1
    self_verification.verification_pass_rows = lambda *a, **k: asked.append(real_asks(*a, budget, **k)) or asked[-1]
    self_verification.loss_passes = lambda *a, **k: passes.append(real_passes(*a, **k)) or passes[-1]
    trainer = build_trainer(recipe)
    trainer.train()
    trainer.save_model(trainer.args.output_dir)
    logs = [log for log in trainer.state.log_history if "loss" in log]
    rows = trainer._last_verification_rows
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "world": trainer.accelerator.num_processes,
        "zero_stage": getattr(trainer.accelerator.state.deepspeed_plugin, "zero_stage", None),
        "steps": trainer.state.global_step,
        "losses": [log["loss"] for log in logs],
        "verify_reward": [log.get("selfcorrect/verify_reward") for log in logs],
        "verify_acc": [log.get("selfcorrect/verify_acc") for log in logs],
        "picked": [row["verify_solution_index"] for row in rows],
        "targets": [row["verify_target"] for row in rows],
        "asked_rows_per_pass": [rows for _, rows in asked],  # what this rank's micro-batches asked for
        "pass_sizes": [[len(rows) for rows in p] for p in passes],  # the passes it ran, per micro-batch
        "loss_passes": [len(p) for p in passes],
        "shares_prompt_forwards": trainer.shared_prefix_group() > 1,
        "parameter_sum": sum(p.detach().double().sum().item() for p in trainer.model.parameters()),
    }
    (out_dir / f"rank{trainer.accelerator.process_index}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
    destroy_process_group()
