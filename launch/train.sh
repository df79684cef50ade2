#!/usr/bin/env bash
# launch/train.sh --recipe demo/score --accelerate zero2 [--num_processes N] [--global_batch B] [-- --field value ...]
#
# Maps short names to files and runs `accelerate launch -m selfcorrect.train`:
#   --recipe NAME        recipes/NAME.yaml (or a path to a YAML file)
#   --accelerate NAME    launch/accelerate/NAME.yaml (single_gpu, ddp, zero2, zero3, zero3_offload) or a path
#   --num_processes N    processes (GPUs) in all, across nodes; default: the accelerate file's value
#   --global_batch B     keep the global batch (completions per optimizer step) at B whatever N is: sets
#                        gradient_accumulation_steps = B / (per_device_train_batch_size * N); B must divide exactly
#   --num_machines M --machine_rank R --main_process_ip IP --main_process_port P   multi-node (see slurm/train.slurm)
#   --dry_run            print the command instead of running it
# Everything after `--` is passed to the recipe as overrides (e.g. `-- --max_steps 10 --learning_rate 1e-6`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python}
recipe="" accel="" num_processes="" global_batch="" dry_run="" extra_launch=() overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --recipe) recipe=$2; shift 2 ;;
    --accelerate) accel=$2; shift 2 ;;
    --num_processes) num_processes=$2; shift 2 ;;
    --global_batch) global_batch=$2; shift 2 ;;
    --dry_run) dry_run=1; shift ;;
    --num_machines|--machine_rank|--main_process_ip|--main_process_port) extra_launch+=("$1" "$2"); shift 2 ;;
    --) shift; for arg in "$@"; do [ "$arg" = "--" ] || overrides+=("$arg"); done; break ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "launch/train.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$recipe" ] || { echo "launch/train.sh: --recipe is required (e.g. --recipe demo/score)" >&2; exit 2; }
[ -n "$accel" ] || accel=single_gpu
recipe_file=$recipe; [ -f "$recipe_file" ] || recipe_file=$root/recipes/$recipe.yaml
accel_file=$accel; [ -f "$accel_file" ] || accel_file=$root/launch/accelerate/$accel.yaml
[ -f "$recipe_file" ] || { echo "launch/train.sh: no recipe '$recipe' (looked for $recipe_file); see recipes/" >&2; exit 2; }
[ -f "$accel_file" ] || { echo "launch/train.sh: no accelerate config '$accel' (looked for $accel_file); see launch/accelerate/" >&2; exit 2; }
[ -n "$num_processes" ] || num_processes=$("$python" -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['num_processes'])" "$accel_file")
if [ -n "$global_batch" ]; then
  accumulation=$("$python" -m selfcorrect.launch_utils gradient-accumulation "$recipe_file" "$global_batch" "$num_processes" "${overrides[@]}")
  overrides+=(--gradient_accumulation_steps "$accumulation")
fi
command=("$python" -m accelerate.commands.launch --config_file "$accel_file" --num_processes "$num_processes"
  "${extra_launch[@]}" -m selfcorrect.train --config "$recipe_file" "${overrides[@]}")
if [ -n "$dry_run" ]; then echo "${command[@]}"; exit 0; fi
echo "+ ${command[*]}" >&2
exec "${command[@]}"
