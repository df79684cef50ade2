"""Critique-GRPO and RISE on 2 ranks under `accelerate launch` (CPU): collective generation for self-critiques and
verifications, groups spanning ranks, metrics computed on gathered rows."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.helpers import SCRIPTS, launch, write_recipe
from tests.trainers.test_critique import CRITIQUE
from tests.trainers.test_rise import RISE


def _ranks(folder):
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.dist
def test_two_ranks_with_self_critique(tmp_path, tiny_model_dir):
    """DDP over gloo, groups spanning ranks, the policy critiquing itself: every rank makes the same generation calls
    with the same number of contexts, and the per-group metrics (computed on gathered rows) agree across ranks."""
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        refine_groups="all",
        critic="self",
        critic_max_tokens=6,
        per_device_train_batch_size=2,
        **CRITIQUE,
    )
    launch(SCRIPTS / "critique_under_launch.py", str(recipe), str(tmp_path / "ranks"))
    ranks = _ranks(tmp_path / "ranks")
    assert [r["world"] for r in ranks] == [2, 2]
    assert all(r["steps"] == 2 and all(math.isfinite(x) for x in r["losses"]) for r in ranks)
    # per step: responses, 2 critique rounds, refinements; padded to the same count on both ranks
    assert ranks[0]["generate_calls"] == ranks[1]["generate_calls"] and len(ranks[0]["generate_calls"]) == 8
    for key in ("selfcorrect/refined_group_frac", "selfcorrect/refinement_success", "selfcorrect/critique_fallback"):
        assert ranks[0]["metrics"][key] == ranks[1]["metrics"][key], key


@pytest.mark.dist
@pytest.mark.parametrize("config", [None, "zero3.yaml"], ids=["ddp", "zero3"])
def test_two_ranks_verify_disjoint_halves_of_one_selection(tmp_path, tiny_model_dir, config):
    """2 processes on CPU (DDP over gloo; DeepSpeed ZeRO-3, where generation gathers the sharded weights and must be a
    collective call): the B_v picks come from the gathered batch, each rank verifies its own half, both ranks log the
    same (gathered) verification metrics and train 2 steps. The verification rows' loss runs in passes of its own (all
    but the last without gradient sync); under DDP the ranks' weights still agree after the steps."""
    recipe = write_recipe(tmp_path, tiny_model_dir, **{**RISE, "per_device_train_batch_size": 4})
    launch(SCRIPTS / "rise_under_launch.py", str(recipe), str(tmp_path / "ranks"), config=config)
    ranks = _ranks(tmp_path / "ranks")
    assert [r["world"] for r in ranks] == [2, 2] and all(r["steps"] == 2 for r in ranks)
    assert [r["zero_stage"] for r in ranks] == [3 if config else None] * 2
    assert all(loss == loss for r in ranks for loss in r["losses"])  # finite
    assert ranks[0]["verify_reward"] == ranks[1]["verify_reward"] and None not in ranks[0]["verify_reward"]
    picked = [r["picked"][::2] for r in ranks]  # one entry per verified solution (n = 2 rows each)
    assert len(picked[0]) == len(picked[1]) == 2 and not set(picked[0]) & set(picked[1])
    assert sorted(p // 4 for p in picked[0] + picked[1]) == [0, 0, 1, 1]  # 4 of 2 groups, spread over both
    assert all(r["loss_passes"] and min(r["loss_passes"]) >= 2 for r in ranks)
    if config is None:  # ZeRO-3 shards the weights: each rank holds a different part
        assert ranks[0]["parameter_sum"] == pytest.approx(ranks[1]["parameter_sum"], rel=1e-6)


@pytest.mark.dist
def test_ranks_whose_rows_need_different_numbers_of_passes_run_as_many(tmp_path, tiny_model_dir, monkeypatch):
    """TRL's loss gathers per-row values, so pass k must hold as many rows on every rank: rank 0 asks for all its
    verification rows in one pass, rank 1 for one row a pass; both run rank 1's sizes, train 2 steps (instead of failing
    in a mismatched collective) and end with the same weights."""
    monkeypatch.setenv("RISE_UNEVEN_PASSES", "1")
    recipe = write_recipe(tmp_path, tiny_model_dir, **{**RISE, "per_device_train_batch_size": 4})
    launch(SCRIPTS / "rise_under_launch.py", str(recipe), str(tmp_path / "ranks"), timeout=420)
    ranks = _ranks(tmp_path / "ranks")
    assert all(r["steps"] == 2 for r in ranks)
    assert min(ranks[0]["asked_rows_per_pass"]) > 1 and set(ranks[1]["asked_rows_per_pass"]) == {1}
    assert ranks[0]["pass_sizes"] == ranks[1]["pass_sizes"] and max(map(len, ranks[0]["pass_sizes"])) > 2
    assert ranks[0]["parameter_sum"] == pytest.approx(ranks[1]["parameter_sum"], rel=1e-6)


@pytest.mark.dist
@pytest.mark.parametrize("config", ["zero2.yaml", None], ids=["zero2", "ddp"])
def test_verification_loss_passes_train_the_same_weights(tmp_path, tiny_model_dir, config):
    """DeepSpeed ZeRO-2 and DDP on 2 CPU ranks, 2 steps: with the verification rows' loss in passes of its own (early
    passes accumulate without an engine step / gradient sync; under DDP each solution's verifications also share one
    prompt forward, read by the DDP-wrapped model's completion forward) the trained weights equal those of one joined
    pass. SGD, so that the weights differ by the learning rate times the gradients' difference (Adam would magnify
    rounding on near-zero gradients)."""
    from safetensors.torch import load_file

    weights = {}
    for separate in (True, False):
        run = tmp_path / f"passes_{separate}"
        recipe = write_recipe(run, tiny_model_dir, **{**RISE, "per_device_train_batch_size": 4},
                              verification_loss_passes=separate, optim="sgd")  # fmt: skip
        launch(SCRIPTS / "rise_under_launch.py", str(recipe), str(run / "ranks"), config=config)
        ranks = _ranks(run / "ranks")
        assert all(bool(r["loss_passes"]) == separate for r in ranks)
        assert all(r["shares_prompt_forwards"] == (config is None) for r in ranks)  # off under DeepSpeed
        weights[separate] = load_file(str(run / "out" / "model.safetensors"))
    assert weights[True].keys() == weights[False].keys()
    for name, trained in weights[True].items():
        torch.testing.assert_close(trained, weights[False][name], atol=1e-5, rtol=1e-4)
    initial = load_file(str(tiny_model_dir / "model.safetensors"))
    assert any(not torch.equal(weights[True][name], initial[name]) for name in initial)  # the steps trained something
