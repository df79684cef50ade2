"""Soak check: no memory growth over long runs (issue 14). Not part of the test suite (minutes per method).

    python recipes/soak.py [--methods score,ufo,critique_grpo] [--steps 300] [--out outputs/soak]

Each method trains `--steps` optimizer steps on a tiny random model (2 layers, 32 wide, the embedded tokenizer) with
bundled problems, in its own fresh process; every 10 steps the process's resident memory (RSS, /proc/self/statm), the
math-verify worker's restarts and the sizes of the trainer's logged-completion buffers are sampled. After the
warm-up (the first fifth of the run) RSS must not grow more than 2 %. Writes `soak.json` and `soak.md` (the curve)
to `--out`; exit status 1 if a method grew more.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EVERY = 10
GROWTH_LIMIT = 0.02
METHOD_FIELDS = {
    "score": dict(method="score", score_stage=1, stage1_steps=50, max_attempt_length=8, max_completion_length=96),
    "ufo": dict(method="ufo", max_attempts=3, max_attempt_length=8, max_completion_length=160),
    "critique_grpo": dict(method="critique_grpo", max_attempt_length=8, refine_groups="all"),
}  # fmt: skip


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def tiny_model(folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from selfcorrect.models import embedded_model_path, load_tokenizer

    tokenizer = load_tokenizer(str(embedded_model_path()))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def child(method: str, steps: int, result: Path) -> None:
    import yaml
    from transformers import TrainerCallback

    from selfcorrect.rewards import verify_stats
    from selfcorrect.train import build_trainer

    work = Path(tempfile.mkdtemp(prefix=f"soak-{method}-"))
    values = dict(
        model_name_or_path=str(tiny_model(work / "model")), output_dir=str(work / "out"), use_cpu=True, bf16=False,
        seed=0, max_steps=steps, learning_rate=1e-3, lr_scheduler_type="constant", per_device_train_batch_size=4,
        num_generations=4, temperature=1.0, logging_steps=SAMPLE_EVERY, save_strategy="no", report_to="none",
        arithmetic_train_size=4 * steps, arithmetic_eval_size=4, reward_funcs=["accuracy"],
        **METHOD_FIELDS[method],
    )  # fmt: skip
    recipe = work / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(values))
    trainer = build_trainer(["--config", str(recipe)])[0]
    trainer.generation_config.sequence_bias = [[[trainer.processing_class.eos_token_id], 9.0]]  # ends turns
    samples = []

    class Sampler(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % SAMPLE_EVERY == 0:
                logs = trainer._logs
                buffered = len(logs["prompt"]) + sum(len(v) for v in logs["extra"].values())
                samples.append(
                    dict(
                        step=state.global_step,
                        rss_mib=round(rss_mib(), 1),
                        verify_worker_restarts=verify_stats()["worker_restarts"],
                        logged_completion_entries=buffered,
                    )
                )

    trainer.add_callback(Sampler())
    trainer.train()
    result.write_text(json.dumps({"method": method, "steps": steps, "samples": samples}))


def growth(samples: list[dict]) -> float:
    """RSS growth from the end of the warm-up (first fifth of the samples) to the end of the run, as a fraction."""
    start = samples[max(len(samples) // 5, 1) - 1]["rss_mib"]
    return (samples[-1]["rss_mib"] - start) / start


def report(results: list[dict], command: str) -> str:
    lines = [
        "```",
        command,
        "```",
        "",
        "| method | steps | RSS after warm-up (MiB) | RSS at the end (MiB) | growth | worker restarts | logged entries |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["samples"]
        start = s[max(len(s) // 5, 1) - 1]
        lines.append(
            f"| {r['method']} | {r['steps']} | {start['rss_mib']:.0f} | {s[-1]['rss_mib']:.0f} | {100 * growth(s):+.2f} % "
            f"| {s[-1]['verify_worker_restarts']} | {s[-1]['logged_completion_entries']} |"
        )
    lines += ["", "RSS every 10 steps (MiB):", ""]
    for r in results:
        lines.append(f"- {r['method']}: " + ", ".join(f"{x['rss_mib']:.0f}" for x in r["samples"]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(METHOD_FIELDS))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default="outputs/soak")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.steps, Path(args.result))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled"}
    results = []
    for method in args.methods.split(","):
        result = out / f"{method}.json"
        command = [sys.executable, __file__, "--child", method, "--steps", str(args.steps), "--result", str(result)]
        with open(out / f"{method}.log", "w") as log:
            code = subprocess.call(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        if code:
            print(f"[soak] {method} failed (exit {code}); log: {out / f'{method}.log'}", flush=True)
            continue
        results.append(json.loads(result.read_text()))
        print(f"[soak] {method}: RSS growth after warm-up {100 * growth(results[-1]['samples']):+.2f} %", flush=True)
    text = report(results, "python recipes/soak.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    (out / "soak.md").write_text(text)
    (out / "soak.json").write_text(json.dumps(results, indent=1))
    print(text)
    grew = [r["method"] for r in results if growth(r["samples"]) > GROWTH_LIMIT]
    return 1 if grew or len(results) < len(args.methods.split(",")) else 0


if __name__ == "__main__":
    sys.exit(main())
