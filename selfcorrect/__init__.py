"""selfcorrect: RL post-training that teaches LLMs to correct, critique and verify their own reasoning.

Trainers are thin subclasses of TRL's `GRPOTrainer`; recipes are flat YAML files run with
`python -m selfcorrect.train --config recipes/demo/score.yaml` (or `accelerate launch ... -m selfcorrect.train`).

Layout: `trainers/` (one file per method family, the method registry), `data/` (datasets and the offline data
builders); the flat modules are the entry points (`train`, `evaluate`, `cli`, `bench`), pure math (`algos`,
`metrics`), the episode engine (`episodes`, `feedback`, `critics`, `verification`, `rewards`) and run services
(`configs`, `registry`, `models`, `callbacks`, `guards`, `tracking`, `collective`, `errors`). They stay flat because
users import them by these paths (`selfcorrect.rewards`, `selfcorrect.feedback`, ...). The import graph has no cycle
(`tests/unit/test_layout.py`); the entry points import heavy libraries inside functions, so `selfcorrect --help` answers
without loading torch.
"""

__version__ = "0.1.0"
