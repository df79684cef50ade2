"""What attempt 2's prefill costs on the HF generation path (issue 14): is reusing attempt 1's KV cache worth it?

    python recipes/prefill_cost.py [--lengths 64,256,1024] [--batch 8] [--repeats 3] [--model embedded]

On the HF path, attempt k + 1 is generated from the whole episode so far (prompt, attempt k, feedback turn), encoded
again from scratch. Reusing the previous attempt's KV cache would skip encoding everything but the feedback turn, so
the time of one forward pass over that context (the *prefill*) bounds what reuse can save. For each attempt length L
this script renders `--batch` episodes the way the trainers do (chat template, an attempt of exactly L tokens, UFO's
feedback turn), then times, medians over `--repeats`:
- `prefill`: one forward pass over the attempt-2 context (no grad, with a cache: what `generate` does first);
- `attempt 2`: `generate` of L new tokens from that context (EOS suppressed, sampling as in training);
- `attempt 1`: `generate` of L new tokens from the prompt alone (the episode's other generation).
`saving bound` = prefill / (attempt 1 + attempt 2): the share of an episode's generation time that KV reuse could
remove at most. The issue's bar for adopting reuse is 10 % at some length. Writes prefill.json and prefill.md to
`--out`. Run it alone on the machine (timings beside another job are not comparable).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

QUESTION = "Tom has 12 apples and buys 7 bags of 8 apples each. How many apples does he have now?"
ATTEMPT_TEXT = "He buys 7 * 8 = 56 apples. Then 12 + 56 = 68. The answer is \\boxed{68}. "
FEEDBACK = "Incorrect. Please think again."


def episode_contexts(tokenizer, length: int, batch: int):
    """(prompt ids, attempt-2 context ids) for `batch` identical episodes whose first attempt has `length` tokens."""
    messages = [{"role": "user", "content": QUESTION}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    filler = tokenizer(ATTEMPT_TEXT, add_special_tokens=False)["input_ids"]
    attempt = (filler * (length // len(filler) + 1))[:length]
    attempt_text = tokenizer.decode(attempt)
    turn = [*messages, {"role": "assistant", "content": attempt_text}, {"role": "user", "content": FEEDBACK}]
    context = tokenizer.apply_chat_template(turn, add_generation_prompt=True, tokenize=True, return_dict=False)
    return [list(prompt)] * batch, [list(context)] * batch


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(model, tokenizer, length: int, batch: int, repeats: int) -> dict:
    import torch

    prompts, contexts = episode_contexts(tokenizer, length, batch)
    device = model.device

    def as_batch(rows):
        ids = torch.tensor(rows, device=device)  # identical rows: no padding needed
        return ids, torch.ones_like(ids)

    def generate(rows):
        ids, mask = as_batch(rows)
        with torch.no_grad():
            out = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=length, min_new_tokens=length, do_sample=True,
                temperature=1.0, top_k=0, top_p=1.0, pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        assert out.shape[1] - ids.shape[1] == length

    def prefill():
        ids, mask = as_batch(contexts)
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, use_cache=True)

    attempt1 = timed(lambda: generate(prompts), repeats)
    attempt2 = timed(lambda: generate(contexts), repeats)
    prefill_s = timed(prefill, repeats)
    return {
        "attempt_tokens": length,
        "prompt_tokens": len(prompts[0]),
        "context_tokens": len(contexts[0]),
        "batch": batch,
        "attempt1_s": attempt1,
        "attempt2_s": attempt2,
        "prefill_s": prefill_s,
        "prefill_share_of_attempt2": prefill_s / attempt2,
        "saving_bound": prefill_s / (attempt1 + attempt2),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="64,256,1024", help="Tokens per attempt, comma-separated.")
    parser.add_argument("--batch", type=int, default=8, help="Episodes generated together (one group).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="embedded", help="`embedded` or a local model folder.")
    parser.add_argument("--dtype", default=None, help="float32 on CPU, bfloat16 on CUDA by default.")
    parser.add_argument("--out", default="outputs/prefill")
    opts = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM

    from selfcorrect.bench import machine_description
    from selfcorrect.models import load_tokenizer, resolve_model_path, torch_dtype

    cuda = torch.cuda.is_available()
    path = resolve_model_path(opts.model)
    tokenizer = load_tokenizer(path)
    dtype = torch_dtype(opts.dtype or ("bfloat16" if cuda else "float32"))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to("cuda" if cuda else "cpu").eval()
    torch.manual_seed(0)
    rows = [measure(model, tokenizer, int(n), opts.batch, opts.repeats) for n in opts.lengths.split(",")]
    _, device = machine_description()
    lines = [
        f"Prefill of attempt 2 vs the episode's generation ({device}, {dtype}, batch {opts.batch}, median of "
        f"{opts.repeats}); `python recipes/prefill_cost.py --lengths {opts.lengths} --batch {opts.batch} "
        f"--repeats {opts.repeats}`",
        "",
        "| tokens per attempt | context tokens | attempt 1 s | attempt 2 s | prefill s | prefill / attempt 2 | "
        "saving bound (prefill / episode) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['attempt_tokens']} | {r['context_tokens']} | {r['attempt1_s']:.2f} | {r['attempt2_s']:.2f} | "
            f"{r['prefill_s']:.3f} | {r['prefill_share_of_attempt2']:.1%} | {r['saving_bound']:.1%} |"
        )
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "prefill.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "prefill.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


if __name__ == "__main__":
    main()
