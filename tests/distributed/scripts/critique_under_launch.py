"""Train Critique-GRPO under `accelerate launch` and record what each rank saw.

    accelerate launch --multi_gpu --num_processes 2 tests/distributed/scripts/critique_under_launch.py RECIPE OUT_DIR

A scripted judge and an EOS bias give the ranks different numbers of wrong responses, hence different numbers of
critiques and refinements to generate: the collective generation calls must still line up.
"""

import json
import sys
from pathlib import Path

from selfcorrect.launch_utils import destroy_process_group
from selfcorrect.trainers import CritiqueGRPOTrainer
from tests.helpers import build_trainer, parity_judge


class ScriptedCritique(CritiqueGRPOTrainer):
    def judge(self, text, row):
        return parity_judge(text, row)


def main():
    recipe, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    trainer = build_trainer(recipe, ScriptedCritique)
    trainer.generation_config.sequence_bias = [[[trainer.processing_class.eos_token_id], 9.0]]
    local_counts = []
    original = trainer._generate_attempt

    def counting(contexts, max_new_tokens, attempt):
        local_counts.append(len(contexts))
        return original(contexts, max_new_tokens, attempt)

    trainer._generate_attempt = counting
    trainer.train()
    logs = [log for log in trainer.state.log_history if "loss" in log]
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "world": trainer.accelerator.num_processes,
        "steps": trainer.state.global_step,
        "losses": [log["loss"] for log in logs],
        "generate_calls": local_counts,
        "metrics": {k: [log.get(k) for log in logs] for k in logs[0] if k.startswith("selfcorrect/")},
    }
    (out_dir / f"rank{trainer.accelerator.process_index}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
    destroy_process_group()
