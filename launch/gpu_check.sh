#!/usr/bin/env bash
# The GPU check in one call: install what travelled, the `-m gpu` test tier, the bench, one results file.
#
#   make gpu-check-prepare                 # here (PyPI reachable): wheels + model config into .gpu-check/, size check
#   bash launch/gpu_check.sh run           # on the GPU machine (no network), from the repository root; = make gpu-check
#   bash launch/gpu_check.sh install       # there: only the offline install (launch/bench_gpu.sh calls it)
#
# With the device tool: prepare in the checkout the tool sends, then
#   run(command="bash launch/gpu_check.sh run", carry=[".gpu-check"], timeout_s=540)
# Phases, under one deadline (GPU_CHECK_BUDGET_S, default 450 s, so that it ends inside 8 minutes):
#   1. install: the carried wheels (--no-deps, offline), DeepSpeed built from its source without CUDA ops (its failure
#      only skips the ZeRO-2 test), then `pip install --no-deps -e .`;
#   2. tests/gpu -m gpu: every trainer 2 steps on a random ~0.4B Qwen2 (bf16, SDPA, gradient checkpointing, LoRA),
#      ZeRO-2 on one GPU;
#   3. the bench (launch/bench_gpu.sh): every arm, fixed length, on the same architecture;
#   4. the results file gpu-check.md (GPU, versions, each phase's status and seconds, test outcomes, per-trainer
#      seconds and peak memory, the bench table) with the log, junit.xml and bench.json, under $OUT (the device tool
#      brings back what is written there) or outputs/gpu-check/ without one.
set -uo pipefail
DIR=${GPU_CHECK_DIR:-.gpu-check}
PY=${PYTHON:-python3}  # the GPU machine's python3 holds torch
WORK=${GPU_CHECK_WORK:-outputs/gpu-check}  # scratch: junit.xml, metrics, the bench folder
export OMP_WAIT_POLICY=PASSIVE TOKENIZERS_PARALLELISM=false WANDB_MODE=disabled HF_HUB_OFFLINE=1
export TRL_EXPERIMENTAL_SILENCE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

install() {
    local wheels=$DIR/wheels
    ls "$wheels"/*.whl >/dev/null 2>&1 || { echo "no wheels in $wheels: run \`make gpu-check-prepare\` first"; return 1; }
    local needed  # all but the packages the machine already has at that version or newer
    needed=$("$PY" launch/gpu_check.py wheels --dir "$DIR") || return 1
    [ -z "$needed" ] || "$PY" -m pip install -q --no-index --no-deps --no-compile $needed || return 1
    if ls "$wheels"/deepspeed-*.tar.gz >/dev/null 2>&1; then  # source only on PyPI; no CUDA op is compiled ahead
        DS_BUILD_OPS=0 timeout 90 "$PY" -m pip install -q --no-index --no-deps --no-build-isolation \
            "$wheels"/deepspeed-*.tar.gz || echo "DeepSpeed did not install: the ZeRO-2 test will skip"
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . \
        || echo "pip install -e . failed: selfcorrect runs from PYTHONPATH=$PWD"
    "$PY" -c "import trl, math_verify, datasets, selfcorrect.trainers; print('installed: trl', trl.__version__)"
}

case "${1:-run}" in
    prepare) shift; exec "${PYTHON:-.venv/bin/python}" launch/gpu_check.py prepare --dir "$DIR" "$@" ;;
    install) export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}; install; exit ;;
    run) ;;
    *) echo "usage: bash launch/gpu_check.sh [prepare|install|run]"; exit 2 ;;
esac

RESULTS=${OUT:-$WORK}
mkdir -p "$RESULTS" "$WORK"
rm -f "$WORK/metrics.jsonl" "$WORK/junit.xml"
exec > >(tee "$RESULTS/gpu-check.log") 2>&1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
BUDGET=${GPU_CHECK_BUDGET_S:-450}
PHASES=()
FAILED=0
left() { echo $(( BUDGET - SECONDS )); }
phase() {  # phase NAME SECONDS COMMAND...: run under `timeout`, record "exit N, T s"
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "=== $name (at most ${limit} s; $(left) s left of ${BUDGET})"
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    [ "$rc" -eq 124 ] && echo "=== $name stopped at its time limit"
    PHASES+=(--phase "$name=exit $rc, $(( SECONDS - start )) s")
    [ "$rc" -eq 0 ] || FAILED=1
    return 0
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
phase install 120 bash launch/gpu_check.sh install
export SELFCORRECT_GPU_CHECK_MODEL=$DIR/model SELFCORRECT_GPU_CHECK_METRICS=$WORK/metrics.jsonl
phase "gpu tests" $(( $(left) - 190 > 60 ? $(left) - 190 : 60 )) \
    "$PY" -m pytest -q tests/gpu -m gpu -p no:cacheprovider -rs --junitxml "$WORK/junit.xml"
# The bench at equal length (every attempt exactly --max-new-tokens; trl_equal: TRL at the episode's length), sized to
# the time left: each arm is a fresh process (startup + model load), 1 warm-up and 1 timed step. Stopped at its limit,
# it leaves no table, and the results file lists the arms that finished (their result.json) instead.
phase bench $(( $(left) - 15 > 30 ? $(left) - 15 : 30 )) \
    bash launch/bench_gpu.sh "$DIR/model" "$DIR/wheels" --steps 1 --warmup-steps 1 --max-new-tokens 64 \
    --output-dir "$WORK/bench"
"$PY" launch/gpu_check.py report --junit "$WORK/junit.xml" --bench "$WORK/bench" \
    --metrics "$WORK/metrics.jsonl" "${PHASES[@]}" --phase "total=$SECONDS s" --out "$RESULTS/gpu-check.md"
for f in junit.xml bench/bench.json; do [ -f "$WORK/$f" ] && [ "$RESULTS" != "$WORK" ] && cp "$WORK/$f" "$RESULTS/"; done
[ "$RESULTS" != "$WORK" ] && cp "$RESULTS/gpu-check.md" "$WORK/" 2>/dev/null
echo "results: $RESULTS/gpu-check.md"
exit $FAILED
