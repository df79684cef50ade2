"""selfcorrect: RL post-training that teaches LLMs to correct, critique and verify their own reasoning.

Trainers are thin subclasses of TRL's `GRPOTrainer`; recipes are flat YAML files run with
`python -m selfcorrect.train --config recipes/demo/score.yaml` (or `accelerate launch ... -m selfcorrect.train`).
"""

__version__ = "0.1.0"
