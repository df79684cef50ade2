"""Train a recipe under `accelerate launch` and record what each rank saw.

    accelerate launch --config_file launch/cpu/zero3.yaml tests/distributed/scripts/train_under_launch.py RECIPE OUT_DIR [ufo]

With `ufo`, a scripted judge and an EOS bias make episodes stop at different attempts on different ranks, which
exercises the collective generation calls (ranks that are done keep joining with padding).
"""

import json
import sys
from pathlib import Path

from selfcorrect.launch_utils import destroy_process_group
from selfcorrect.trainers import UFOTrainer
from tests.helpers import build_trainer, parity_judge


class ScriptedUFO(UFOTrainer):
    def judge(self, text, row):
        return parity_judge(text, row)


def main():
    recipe, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    scripted = len(sys.argv) > 3 and sys.argv[3] == "ufo"
    trainer = build_trainer(recipe, ScriptedUFO if scripted else None)
    if scripted:
        trainer.generation_config.sequence_bias = [[[trainer.processing_class.eos_token_id], 9.0]]
    trainer.train()
    trainer.save_model(trainer.args.output_dir)  # under ZeRO-3 this gathers the sharded weights
    plugin = trainer.accelerator.state.deepspeed_plugin
    logs = [log for log in trainer.state.log_history if "loss" in log]
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "world": trainer.accelerator.num_processes,
        "zero_stage": plugin.zero_stage if plugin is not None else None,
        "steps": trainer.state.global_step,
        "losses": [log["loss"] for log in logs],
        "attempts_mean": [log.get("selfcorrect/attempts_mean") for log in logs],
        "stages": [log.get("selfcorrect/score_stage") for log in logs],
    }
    (out_dir / f"rank{trainer.accelerator.process_index}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
    destroy_process_group()
