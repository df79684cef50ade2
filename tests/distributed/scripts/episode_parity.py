"""Run under `accelerate launch`: one scored batch of 2-attempt episodes with scripted generation, per-rank results.

    accelerate launch --num_processes 2 --multi_gpu tests/distributed/scripts/episode_parity.py RECIPE OUT_DIR

The global batch is 8 episodes forming ONE group (num_generations 8), so with 2 ranks the group spans both. Generation
is a deterministic function of the context, so advantages must be identical to a 1-rank run of the same batch.
"""

import json
import sys
from pathlib import Path

from selfcorrect.launch_utils import destroy_process_group
from selfcorrect.trainers import SCoReTrainer
from tests.helpers import build_trainer


class ScriptedSCoRe(SCoReTrainer):
    def _generate_attempt(self, contexts, max_new_tokens, attempt):
        eos = self.processing_class.eos_token_id
        answers = [(sum(context) * 7 + attempt) % 3 for context in contexts]
        ids = [
            self.processing_class.encode(f"It is \\boxed{{{a}}}.", add_special_tokens=False) + [eos] for a in answers
        ]
        return ids, None


def main():
    recipe, out_dir = sys.argv[1], Path(sys.argv[2])
    trainer = build_trainer(Path(recipe), ScriptedSCoRe)
    world, rank = trainer.accelerator.num_processes, trainer.accelerator.process_index
    dataset = trainer.train_dataset
    # 8 episodes of one problem; the prompts differ by the problem text's position so that answers vary
    rows = [dict(dataset[i % 4], solution=str(i % 3)) for i in range(8)]
    local = rows[rank * 8 // world : (rank + 1) * 8 // world]
    trainer.model.train()
    out = trainer._generate_and_score_completions(local)
    advantages = [
        [out["advantages"][b, start].item() for start, _ in row["attempt_spans"]] for b, row in enumerate(local)
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"rank{rank}.json").write_text(
        json.dumps(
            {"world": world, "rank": rank, "advantages": advantages, "answers": [r["attempt_answers"] for r in local]}
        )
    )


if __name__ == "__main__":
    main()
    destroy_process_group()
