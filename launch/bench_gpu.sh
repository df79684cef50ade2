#!/usr/bin/env bash
# The bench on one NVIDIA GPU with no network, in under 8 minutes: every arm of `python -m selfcorrect.bench` (plain TRL,
# TRL at the episode's length, and our trainers) on a randomly initialised model of the embedded SmolLM2-135M's
# architecture (throughput does not depend on the weights, and 500 MB of weights need not travel), bf16.
#
# Prepare on a machine that has the package and network (a few MiB travel):
#   python -m selfcorrect.models --architecture shared/smollm2-arch          # config + tokenizer, no weights
#   pip download --no-deps -d shared/wheels "trl==1.16.*" math-verify latex2sympy2_extended \
#       "antlr4-python3-runtime==4.13.2" datasets dill multiprocess xxhash pyarrow sympy mpmath
# Run on the GPU machine (torch, transformers, accelerate present), from the repository root:
#   bash launch/bench_gpu.sh [ARCH_DIR] [WHEELS_DIR] [extra bench args ...]
# The table (GPU name, versions, command) is printed and saved under outputs/bench-gpu/; add --append-results to
# put it in recipes/RESULTS.md.
set -euo pipefail
ARCH=${1:-shared/smollm2-arch}
WHEELS=${2:-shared/wheels}
shift $(( $# > 2 ? 2 : $# ))
python - <<'PY' || pip install --no-index --find-links "$WHEELS" "trl==1.16.*" math-verify
import trl, math_verify  # noqa: F401
PY
pip install --no-index --no-deps --no-build-isolation -e . >/dev/null
export OMP_WAIT_POLICY=PASSIVE TOKENIZERS_PARALLELISM=false WANDB_MODE=disabled HF_HUB_OFFLINE=1
python -m selfcorrect.bench --model "$ARCH" --random-init --dtype bfloat16 \
    --methods trl,trl_equal,grpo,score,ufo,nsr,critique_grpo,rise \
    --batch-size 16 --num-generations 4 --max-new-tokens 256 --steps 3 --warmup-steps 1 --repeats 1 \
    --output-dir outputs/bench-gpu "$@"
