#!/usr/bin/env bash
# The bench on one NVIDIA GPU with no network: every arm of `python -m selfcorrect.bench` (plain TRL, TRL at the
# episode's length, and our trainers) on a randomly initialised model of a carried architecture (throughput does not
# depend on the weights, and the weights need not travel), bf16. launch/gpu_check.sh runs it as its last phase.
#
# Prepare on a machine that has the package and network (a few MiB travel; see launch/gpu_check.py):
#   make gpu-check-prepare      # .gpu-check/model: Qwen2.5-0.5B's shape over the embedded tokenizer, no weights;
#                               # .gpu-check/wheels: TRL, math-verify, DeepSpeed and the small packages the GPU lacks
#   (the embedded SmolLM2-135M's own architecture: python -m selfcorrect.models --architecture DIR)
# Run on the GPU machine (torch, transformers, accelerate present), from the repository root:
#   bash launch/bench_gpu.sh [ARCH_DIR] [WHEELS_DIR] [extra bench args ...]      # later options win
# The table (GPU name, versions, command) is printed and saved under outputs/bench-gpu/ (or --output-dir); add
# --append-results to put it in recipes/RESULTS.md.
set -euo pipefail
ARCH=${1:-.gpu-check/model}
WHEELS=${2:-.gpu-check/wheels}
shift $(( $# > 2 ? 2 : $# ))
PY=${PYTHON:-python3}
if ! "$PY" -c "import trl, math_verify, selfcorrect.trainers" 2>/dev/null; then  # not installed yet: offline install
    GPU_CHECK_DIR=$(dirname "$WHEELS") bash launch/gpu_check.sh install
fi
export OMP_WAIT_POLICY=PASSIVE TOKENIZERS_PARALLELISM=false WANDB_MODE=disabled HF_HUB_OFFLINE=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
"$PY" -m selfcorrect.bench --model "$ARCH" --random-init --dtype bfloat16 \
    --methods trl,trl_equal,grpo,score,ufo,nsr,critique_grpo,rise \
    --batch-size 16 --num-generations 4 --max-new-tokens 256 --steps 3 --warmup-steps 1 --repeats 1 \
    --output-dir outputs/bench-gpu "$@"
