"""The evidence table of recipes/reproduce.py: statistics match a hand count, intervals bracket the point estimate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import load_script


@pytest.fixture(scope="module")
def reproduce():
    return load_script("reproduce")


def test_outcomes_carry_the_last_attempt_forward(reproduce):
    assert reproduce._outcomes([[True], [False, True], [False, False, False]], 3) == [
        (True, True, True),
        (False, True, True),
        (False, False, False),
    ]


def test_no_feedback_statistics_match_a_hand_count(reproduce):
    rows = [(False, True), (True, False), (True, True), (False, False)]
    stats = reproduce._stats(rows, "nofb")
    assert stats == {"acc@t1": 0.5, "acc@t2": 0.5, "Δ": 0.0, "Δ i→c": 0.25, "Δ c→i": 0.25}
    fb = reproduce._stats([(False, True, True), (True, True, True), (False, False, False)], "fb")
    assert fb["acc@1"] == pytest.approx(1 / 3) and fb["succ@3 − acc@1"] == pytest.approx(1 / 3)
    assert fb["fixed / wrong@1"] == 0.5  # of the two wrong first answers, one is fixed by turn 3


def test_table_means_over_seeds_and_lists_missing_runs(reproduce, tmp_path):
    for seed, correct in ((0, [[False, True], [True, True]]), (1, [[False, False], [True, True]])):
        run = tmp_path / "score" / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "result_nofb.json").write_text(json.dumps({"seed": seed, "correct": correct, "train_seconds": 60.0}))
    table = reproduce.build_table(tmp_path)
    row = next(line for line in table.splitlines() if line.startswith("| score |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1] == "0,1" and cells[2].startswith("50.0 [")  # acc@t1 = 1/2 in both seeds
    assert cells[3].startswith("75.0 [") and cells[4].startswith("+25.0 [")  # acc@t2 = (1 + 1/2) / 2
    low, high = (float(x) for x in cells[4].split("[")[1].rstrip("]").split(","))
    assert low <= 25.0 <= high
    assert cells[-1] == "1.0"  # train minutes
    assert "Not yet run:" in table and "base/nofb" in table and "score/fb" in table


def test_result_files_name_the_code_that_produced_them(reproduce):
    import subprocess

    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    commit = reproduce._commit()
    assert commit is not None and commit.removesuffix("+dirty") == head


def test_compare_is_the_paired_difference_of_the_revision_gain(reproduce, tmp_path):
    # arm a: problem 0 fixed at turn 2, problem 1 right at once; arm b: nothing fixed -> gains 1/2 and 0
    for arm, correct in (("a", [[False, True], [True]]), ("b", [[False, False, False], [True]])):
        run = tmp_path / arm / "seed0"
        run.mkdir(parents=True)
        (run / "result_fb.json").write_text(json.dumps({"seed": 0, "correct": correct}))
    point, low, high = reproduce.compare_arms(tmp_path, "fb", "a", "b")
    assert point == 0.5 and low <= point <= high and low >= 0.0
    with pytest.raises(FileNotFoundError, match="arm 'c'"):
        reproduce.compare_arms(tmp_path, "fb", "a", "c")
    # first-attempt accuracy: both arms 1 of 2 -> 0; succ@3: 2 of 2 against 1 of 2
    assert reproduce.compare_arms(tmp_path, "fb", "a", "b", statistic="acc@1") == (0.0, 0.0, 0.0)
    assert reproduce.compare_arms(tmp_path, "fb", "a", "b", statistic="succ@3")[0] == 0.5
    with pytest.raises(ValueError, match="not a column of the fb table"):
        reproduce.compare_arms(tmp_path, "fb", "a", "b", statistic="acc@t1")


# Two problems, with-feedback outcomes per (arm, seed). Gains succ@3 - acc@1: a's seeds 1/2 and 0, b's 0 and 0, and one
# seed with gain 0 of `base` (seed-free) and of `c`.
SEED_RUNS = {
    ("a", 0): [[False, True], [True]],
    ("a", 1): [[False, False, False], [True]],
    ("b", 0): [[False, False, False], [True]],
    ("b", 1): [[True], [True]],
    ("base", 0): [[True], [True]],
    ("c", 0): [[True], [True]],
}


def _write_fb_results(root, runs=SEED_RUNS):
    for (arm, seed), correct in runs.items():
        run = root / arm / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "result_fb.json").write_text(json.dumps({"seed": seed, "correct": correct}))


def test_compare_over_seeds_is_welchs_interval_on_per_seed_values(reproduce, tmp_path, monkeypatch, capsys):
    _write_fb_results(tmp_path)
    result = reproduce.compare_over_seeds(tmp_path, "fb", "a", "b")
    assert result["per_seed"] == {"a": [0.5, 0.0], "b": [0.0, 0.0]}
    # mean difference 1/4; a's variance of the mean (1/8) / 2 = 1/16, b's 0: se 1/4, Welch df 1, t(0.975, 1) = 12.706
    assert result["difference"] == 0.25 and result["df"] == pytest.approx(1.0)
    assert result["high"] == pytest.approx(0.25 + 12.7062 * 0.25, abs=1e-3)
    assert result["low"] == pytest.approx(0.25 - 12.7062 * 0.25, abs=1e-3)
    assert reproduce._t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert reproduce.compare_over_seeds(tmp_path, "fb", "a", "base")["difference"] == 0.25  # base: one seed is enough
    monkeypatch.setattr(reproduce, "SEED_FREE", set())  # any other arm with one seed has no interval over seeds
    with pytest.raises(ValueError, match="arm 'base' has 1 seed"):
        reproduce.compare_over_seeds(tmp_path, "fb", "a", "base")
    with pytest.raises(ValueError, match="not a column of the fb table"):
        reproduce.compare_over_seeds(tmp_path, "fb", "a", "b", statistic="Δ")
    monkeypatch.setattr(reproduce, "results_dir", lambda: tmp_path)
    assert reproduce.main(["compare", "--compare", "fb:a,b", "--over", "seeds"]) == 0
    assert (
        "a − b = +25.0 [-292.7, +342.7] (secondary: 95 % Welch t-interval over seeds, df 1.0)"
        in capsys.readouterr().out
    )


def test_pairs_table_gives_both_intervals_and_lists_what_is_missing(reproduce, tmp_path):
    _write_fb_results(tmp_path)
    pairs = [("fb", "a", "b", None), ("fb", "a", "c", None), ("fb", "a", "d", None), ("fb", "a", "b", "succ@3")]
    table = reproduce.build_pairs_table(tmp_path, pairs).splitlines()
    assert table[0].startswith(
        "| comparison | statistic | **primary**: seeds, then problems (hierarchical bootstrap) |"
    )
    assert "| secondary: over problems, seeds fixed (paired bootstrap) | secondary: over seeds (Welch t) |" in table[0]
    assert table[2].startswith("| a (seeds 0,1) − b (seeds 0,1) | succ@3 − acc@1, with feedback | +25.0 [")
    assert table[2].endswith("| +25.0 [-292.7, +342.7] (df 1.0) |")  # the Welch interval of the test above
    assert table[3].startswith("| a (seeds 0,1) − c (seeds 0) |") and table[3].endswith("| - |")  # c: one seed
    # succ@3: a 1 and 1/2, b 1/2 and 1 -> 0; over seeds se = sqrt(2 * 1/8 / 2) = 0.354, df 2, t 4.303: +-152.1;
    # over problems 0 in every resample (each problem is right in one seed of each arm); with seeds resampled it is not
    assert table[4].startswith("| a (seeds 0,1) − b (seeds 0,1) | succ@3 (`--statistic succ@3`) | +0.0 [-")
    assert table[4].endswith("| +0.0 [+0.0, +0.0] | +0.0 [-152.1, +152.1] (df 2.0) |")
    assert table[-1] == "Not yet comparable (an arm has no results): fb:a,d"


def test_protocol_pairs_show_no_figure_before_every_planned_seed_is_in(reproduce, tmp_path, monkeypatch, capsys):
    _write_fb_results(tmp_path)  # a: seeds 0 and 1, b: seeds 0 and 1, c: seed 0
    pairs = [("fb", "a", "b", None), ("fb", "a", "c", None), ("fb", "a", "x", None)]
    table = reproduce.build_pairs_table(tmp_path, pairs, planned_seeds={"a": 2, "b": 2, "c": 3}).splitlines()
    assert len(table) == 7 and table[2].startswith("| a (seeds 0,1) − b (seeds 0,1) |")  # a and b hold seeds 0-1
    assert table[4] == "Not shown until every planned seed is in (seeds held of planned): fb:a,c (c 1 of 3)"
    assert table[6] == "Not in the plan (an arm cut or never planned): fb:a,x"
    # a seed outside the plan does not stand in for a planned one: b's seeds are 0 and 1, not 0-2
    table = reproduce.build_pairs_table(tmp_path, pairs[:1], planned_seeds={"a": 2, "b": 3}).splitlines()
    assert table[2:] == ["", "Not shown until every planned seed is in (seeds held of planned): fb:a,b (b 2 of 3)"]
    # the command: question 1 has 5 seeds an arm, question 2 has 3; Critique-GRPO is cut
    assert reproduce.PROTOCOL_SEEDS == {
        "warmup_fb": 5, "warmup_fb+grpo": 5, "warmup_fb+ufo": 5, "warmup": 3, "warmup+naive": 3, "warmup+score": 3
    }  # fmt: skip
    shutil.copytree(tmp_path / "a", tmp_path / "warmup_fb+ufo")
    monkeypatch.setattr(reproduce, "results_dir", lambda: tmp_path)
    assert reproduce.main(["pairs", "--pairs", "protocol"]) == 0
    out = capsys.readouterr().out
    assert "fb:warmup_fb+ufo,warmup_fb (warmup_fb+ufo 2 of 5; warmup_fb 0 of 5)" in out and "+25.0" not in out
    assert "Not in the plan (an arm cut or never planned): fb:warmup_fb+critique_grpo,warmup_fb," in out


def test_training_table_counts_groups_without_signal(reproduce, tmp_path):
    """Two seeds of an RL arm: 4 logged steps each (TRL's `frac_reward_zero_std`, our `selfcorrect/acc_t1`), plus the
    closing summary line TRL writes; an SFT arm (no groups) gets no row."""
    for seed, zero, acc in (
        (0, [1.0, 1.0, 0.5, 0.0], [0.0, 0.0, 0.25, 0.5]),
        (1, [1.0, 0.5, 0.5, 0.0], [0.0, 0.5, 0.5, 1.0]),
    ):
        run = tmp_path / "score" / f"seed{seed}"
        run.mkdir(parents=True)
        logs = [
            {"frac_reward_zero_std": z, "selfcorrect/acc_t1": a, "step": i + 1}
            for i, (z, a) in enumerate(zip(zero, acc))
        ]
        logs.append({"train_runtime": 10.0, "step": 4})
        (run / "log_history.jsonl").write_text("\n".join(json.dumps(log) for log in logs) + "\n")
        (run / "result_nofb.json").write_text(json.dumps({"metrics": {"repeat_answer_frac": 0.8 + 0.1 * seed}}))
    sft = tmp_path / "warmup" / "seed0"
    sft.mkdir(parents=True)
    (sft / "log_history.jsonl").write_text(json.dumps({"loss": 1.0, "mean_token_accuracy": 0.5}) + "\n")

    lines = reproduce.training_table(tmp_path)
    (row,) = [line for line in lines if line.startswith("| score")]
    # steps 4; acc (18.75 + 50) / 2; equal groups (62.5 + 50) / 2; dead steps (50 + 25) / 2; no right answer
    # (no attempt right): 2 of 4 and 1 of 4; repeats: seed 0 80 %, seed 1 90 % (no fb results: —)
    assert row == "| score | 0,1 | 4 | 34.4 | 56 | 38 | 38 | 85 | — |"
    assert not any(line.startswith("| warmup") for line in lines)
    assert reproduce.training_table(tmp_path / "nothing") == []


# --- the primary interval: hierarchical bootstrap (seeds, then problems) ----------------------------------------------


def test_hierarchical_bootstrap_on_hand_examples(reproduce):
    boot = reproduce.hierarchical_bootstrap
    # one seed, two problems worth 0 and 1: a resample's mean is 0, 1/2 or 1 with chances 1/4, 1/2, 1/4
    assert boot([[0.0, 1.0]]) == (0.5, 0.0, 1.0)
    # two seeds without problem noise (1 on every problem, 0 on every problem): only the seeds move the mean
    assert boot([[1.0, 1.0], [0.0, 0.0]]) == (0.5, 0.0, 1.0)
    assert boot([[1.0, 1.0], [0.0, 0.0]], resample_seeds=False) == (0.5, 0.5, 0.5)  # the interval over problems
    # two arms whose same seed differs by exactly 1/2 while the seeds differ by 1/2: paired by seed the start's effect
    # cancels; unpaired, a's mean (1, 3/4 or 1/2) minus b's (1/2, 1/4 or 0) spans 0 to 1
    a, b = [[1.0, 1.0], [0.5, 0.5]], [[0.5, 0.5], [0.0, 0.0]]
    assert boot(a, b, paired=True) == (0.5, 0.5, 0.5)
    assert boot(a, b) == (0.5, 0.0, 1.0)


def test_hierarchical_bootstrap_reduces_to_the_problem_bootstrap_when_seeds_agree(reproduce):
    rng = np.random.default_rng(5)
    arm, other = (rng.integers(0, 2, size=60).astype(float) for _ in "ab")
    arms = np.tile(arm, (3, 1)), np.tile(other, (3, 1))  # three identical seeds each
    hierarchical = reproduce.hierarchical_bootstrap(*arms)
    over_problems = reproduce.hierarchical_bootstrap(*arms, resample_seeds=False)
    assert hierarchical == pytest.approx(over_problems, abs=1e-12)
    assert over_problems == pytest.approx(reproduce.hierarchical_bootstrap(arm[None], other[None]), abs=1e-12)
    assert over_problems[1] < over_problems[0] < over_problems[2]


def test_hierarchical_bootstrap_is_wider_with_seed_spread_and_deterministic(reproduce):
    rng = np.random.default_rng(0)
    rates = [0.2, 0.6, 0.35, 0.5]  # seeds that disagree, 160 problems each
    arm = np.array([rng.random(160) < rate for rate in rates], dtype=float)
    other = np.array([rng.random(160) < 0.3 for _ in rates], dtype=float)
    point, low, high = reproduce.hierarchical_bootstrap(arm, other)
    _, p_low, p_high = reproduce.hierarchical_bootstrap(arm, other, resample_seeds=False)
    assert point == pytest.approx(arm.mean() - other.mean())
    assert low < p_low < point < p_high < high  # holds both noises: wider than the interval over problems
    assert reproduce.hierarchical_bootstrap(arm, other) == (point, low, high)  # a fixed generator
    assert reproduce.hierarchical_bootstrap(arm, other, seed=1) != (point, low, high)
    with pytest.raises(ValueError, match="same number of seeds"):
        reproduce.hierarchical_bootstrap(arm, other[:3], paired=True)
    with pytest.raises(ValueError, match="different problem counts"):
        reproduce.hierarchical_bootstrap(arm, other[:, :100])


def test_compare_hierarchical_pairs_arms_that_share_a_start(reproduce, tmp_path):
    assert reproduce.paired_by_seed("warmup_fb+ufo", "warmup_fb") and reproduce.paired_by_seed(
        "warmup", "warmup+score"
    )
    assert not reproduce.paired_by_seed("warmup_fb", "grpo")  # both from the embedded model: no shared trained start
    runs = {  # gains succ@3 - acc@1: warmup_fb+ufo 1/2 (seed 0) and 0 (seed 1), warmup_fb 0 and 0
        ("warmup_fb+ufo", 0): [[False, True], [True]],
        ("warmup_fb+ufo", 1): [[False, False, False], [True]],
        ("warmup_fb", 0): [[False, False, False], [True]],
        ("warmup_fb", 1): [[False, False, False], [False, False, False]],
    }
    _write_fb_results(tmp_path, runs)
    result = reproduce.compare_hierarchical(tmp_path, "fb", "warmup_fb+ufo", "warmup_fb")
    # per seed a - b: seed 0 1/2 - 0, seed 1 0 - 0; paired draws keep each seed's pair together
    assert result["paired"] and result["difference"] == 0.25 and result["low"] <= 0.25 <= result["high"]
    with pytest.raises(ValueError, match="not a mean over problems"):
        reproduce.compare_hierarchical(tmp_path, "fb", "warmup_fb+ufo", "warmup_fb", statistic="fixed / wrong@1")
    (tmp_path / "warmup_fb" / "seed1" / "result_fb.json").unlink()
    _write_fb_results(tmp_path, {("warmup_fb", 2): [[True], [True]]})
    with pytest.raises(ValueError, match=r"share their starts but not their seeds \(\[0, 1\] vs \[0, 2\]\)"):
        reproduce.compare_hierarchical(tmp_path, "fb", "warmup_fb+ufo", "warmup_fb")


def test_changed_at_t2_is_read_from_the_answers(reproduce, tmp_path):
    """SCoRe's collapse measure: the share of second attempts whose answer differs from the first."""
    for arm, seed, answers in (
        ("warmup+score", 0, [["3", "4"], ["5", "5"], ["", "7"], ["2", "2"]]),  # 2 of 4 changed
        ("warmup+naive", 0, [["3", "3"], ["5", "5"], ["", ""], ["2", "2"]]),  # none changed
    ):
        run = tmp_path / arm / f"seed{seed}"
        run.mkdir(parents=True)
        result = {"seed": seed, "correct": [[False, False]] * 4, "answers": answers}
        (run / "result_nofb.json").write_text(json.dumps(result))
    result = reproduce.compare_hierarchical(tmp_path, "nofb", "warmup+score", "warmup+naive", statistic="changed@t2")
    assert result["paired"] and result["difference"] == 0.5 and result["low"] <= 0.5 <= result["high"]
    with pytest.raises(ValueError, match="not a column of the nofb table"):
        reproduce.compare_arms(tmp_path, "nofb", "warmup+score", "warmup+naive", statistic="changed@t2")
    table = reproduce.build_pairs_table(tmp_path, [("nofb", "warmup+score", "warmup+naive", "changed@t2")])
    assert table.splitlines()[2].endswith("(paired by seed) | - | - |")  # no secondary interval for it; one seed


def test_budget_overrides_set_steps_and_prompts_of_rl_arms(reproduce):
    flags = reproduce.budget_overrides("warmup_fb+ufo", steps=60, prompts=4)
    assert flags[flags.index("--max_steps") + 1] == "60"
    assert flags[flags.index("--per_device_train_batch_size") + 1] == "32"  # 4 prompts x ufo.yaml's 8 episodes
    flags = reproduce.budget_overrides("warmup+score", steps=60, prompts=4)
    assert flags[flags.index("--stage1_steps") + 1] == "20" and flags[flags.index("--max_steps") + 1] == "60"
    naive = reproduce.budget_overrides("warmup+naive", steps=60, prompts=4)
    assert naive[naive.index("--stage1_steps") + 1] == "0"  # stage II from the first step, whatever the budget
    assert (
        naive[naive.index("--alpha") + 1] == "0.0" and naive[naive.index("--per_device_train_batch_size") + 1] == "32"
    )
    grpo = reproduce.budget_overrides("warmup_fb+grpo", steps=60, prompts=8)
    assert grpo[grpo.index("--per_device_train_batch_size") + 1] == "64"
    assert reproduce.budget_overrides("warmup_fb", steps=60, prompts=4) == reproduce.WARMUP_TRAIN  # SFT: its own
    assert reproduce.budget_overrides("grpo") == reproduce.GRPO_TRAIN
    assert reproduce.paired_by_seed("warmup_fb+grpo", "warmup_fb+ufo")  # the same seed's warm-up under both


@pytest.mark.parametrize("arm", ["warmup_fb", "warmup_fb+grpo", "warmup_fb+ufo", "warmup_fb+critique_grpo",
                                 "warmup", "warmup+naive", "warmup+score", "psr", "nsr", "w_reinforce"])  # fmt: skip
def test_every_protocol_arm_builds_its_training_config(reproduce, arm, tmp_path):
    """The training command of each arm of recipes/PROTOCOL.md, at the protocol's budget, is a config the recipe
    parser accepts (a refused one would stop the matrix hours in); SCoRe's ablation runs stage II only, with alpha 0."""
    from selfcorrect.configs import parse_recipe

    recipe, _, data_key, _ = reproduce.ARMS[arm]
    data = tmp_path / "sft.jsonl"
    data.write_text(json.dumps({"prompt": "1+1?", "completion": "2"}) + "\n")
    argv = ["--config", recipe, *reproduce.COMMON, *reproduce.budget_overrides(arm, 60, 8 if arm.endswith("grpo") else 4),
            *(["--dataset_name", str(data)] if data_key else []), "--precision", "fp32", "--arithmetic_levels", "3", "4",
            "--model_name_or_path", "embedded", "--seed", "0", "--output_dir", str(tmp_path / "out")]  # fmt: skip
    *_, training_args = parse_recipe(argv)
    assert training_args.max_steps == (24 if data_key else 60)
    if arm == "warmup+naive":
        assert training_args.alpha == 0.0 and training_args.stage1_steps == 0 and training_args.score_stage == 1
    if arm == "warmup+score":
        assert training_args.stage1_steps == 20 and training_args.alpha == 10.0


def fake_pipeline(calls: list, weights: dict[str, bytes] | None = None):
    """A stand-in for `reproduce._run` (no model): records each command and writes what the real step would leave
    (revision data, a trained model with its weights file: `weights[arm]`, or an evaluation of one right problem)."""

    def fake_run(command, log):
        calls.append(command)
        out = Path(command[command.index("--output_dir") + 1])
        out.mkdir(parents=True, exist_ok=True)
        if command[3] == "revision-data":
            (out / "sft.jsonl").write_text("{}\n")
        elif command[3] == "train":
            (out / "config.json").write_text("{}")
            arm = out.parent.parent.name
            (out / "model.safetensors").write_bytes((weights or {}).get(arm, b"rl weights"))
        else:
            (out / "eval").mkdir(exist_ok=True)
            samples = [{"correct": [True], "answers": ["1"]}]
            (out / "eval" / "eval.json").write_text(json.dumps({"metrics": {"acc_t1": 1.0}, "samples": samples}))
        return 1.0

    return fake_run


def test_run_records_commands_machine_and_data_and_resumes(reproduce, tmp_path, monkeypatch):
    """A fake pipeline (no model): the protocol's budget reaches the training command, checkpoints are on, the result
    file names the commit, commands, machine and test split, and a second run skips what exists."""
    calls = []
    monkeypatch.setattr(reproduce, "_run", fake_pipeline(calls))
    monkeypatch.setattr(reproduce, "results_dir", lambda: tmp_path / "results")
    monkeypatch.setitem(reproduce.RUN, "steps", 60)
    monkeypatch.setitem(reproduce.RUN, "prompts", {"*": 4})
    monkeypatch.setitem(reproduce.RUN, "train_args", ["--dtype", "bfloat16"])
    monkeypatch.setattr(reproduce, "LEVELS", ["3", "4"])
    reproduce.run_arm(tmp_path / "out", "warmup_fb+ufo", 0)
    trains = [c for c in calls if c[3] == "train"]
    assert len(trains) == 2 and "--dataset_name" in trains[0]  # the warm-up first, from its revision data
    ufo = trains[1]
    for name, value in (("--max_steps", "60"), ("--per_device_train_batch_size", "32"), ("--save_strategy", "steps")):
        assert ufo[ufo.index(name) + 1] == value
    assert ufo[ufo.index("--save_steps") + 1] == "10" and ufo[ufo.index("--dtype") + 1] == "bfloat16"
    assert ufo[ufo.index("--model_name_or_path") + 1] == str(tmp_path / "out" / "warmup_fb" / "seed0" / "model")
    data = next(c for c in calls if c[3] == "revision-data")
    assert data[data.index("--arithmetic_eval_size") + 1] == "160"  # the evaluation's split, so no test expression
    result = json.loads((tmp_path / "results" / "warmup_fb+ufo" / "seed0" / "result_fb.json").read_text())
    assert "--max_steps 60" in result["train_command"] and result["commit"]
    assert set(result["machine"]) >= {"host", "cpu", "cpus", "torch", "trl"}
    assert len(result["test_split_sha256"]) == 64
    count = len(calls)
    reproduce.run_arm(tmp_path / "out", "warmup_fb+ufo", 0)
    assert len(calls) == count  # every result file exists: nothing reruns


def test_prompts_option_and_checkpoints(reproduce, monkeypatch):
    parser = reproduce.argparse.ArgumentParser()
    assert reproduce._parse_prompts("4,warmup_fb+grpo=8", parser) == {"*": 4, "warmup_fb+grpo": 8}
    with pytest.raises(SystemExit):
        reproduce._parse_prompts("4,nope=8", parser)
    flags = reproduce._train_common()
    assert flags[flags.index("--save_strategy") + 1] == "steps" and flags[-4:] == [
        "--save_steps",
        "10",
        "--save_total_limit",
        "1",
    ]
    monkeypatch.setitem(reproduce.RUN, "checkpoint_steps", 0)
    assert reproduce._train_common() == reproduce.COMMON


def test_a_missing_start_model_is_retrained_and_checked_against_the_evaluated_one(reproduce, tmp_path, monkeypatch):
    """A later working period on a fresh machine: the warm-up's results exist but its weights do not. The next arm of
    that seed retrains the warm-up with the same command (threads pinned), records whether the weights are identical
    to those its results evaluated, and records the start model's digest in its own results."""
    calls = []
    weights = {"warmup_fb": b"warm-up weights"}
    monkeypatch.setattr(reproduce, "_run", fake_pipeline(calls, weights))
    monkeypatch.setattr(reproduce, "results_dir", lambda: tmp_path / "results")
    monkeypatch.setitem(reproduce.RUN, "num_threads", 2)
    monkeypatch.setattr(reproduce, "LEVELS", ["3", "4"])
    reproduce.run_arm(tmp_path / "out", "warmup_fb", 0)
    assert all(c[c.index("--num_threads") + 1] == "2" for c in calls)  # every command: data, train, both evals
    warmup_result = json.loads((tmp_path / "results" / "warmup_fb" / "seed0" / "result_fb.json").read_text())
    assert warmup_result["model_sha256"] == reproduce.model_digest(tmp_path / "out" / "warmup_fb" / "seed0" / "model")

    shutil.rmtree(tmp_path / "out")  # the fresh machine: results kept in the repository, models gone
    calls.clear()
    reproduce.run_arm(tmp_path / "out", "warmup_fb+ufo", 0)
    trains = [c for c in calls if c[3] == "train"]
    assert len(trains) == 2 and "--dataset_name" in trains[0]  # the warm-up again, then UFO from it
    assert not [c for c in calls if c[3] == "eval" and "warmup_fb/seed0" in c[c.index("--output_dir") + 1]]
    notes = (tmp_path / "results" / "warmup_fb" / "seed0" / "retrained.jsonl").read_text().splitlines()
    assert json.loads(notes[0])["identical"] is True
    ufo_result = json.loads((tmp_path / "results" / "warmup_fb+ufo" / "seed0" / "result_fb.json").read_text())
    assert ufo_result["start_model_sha256"] == warmup_result["model_sha256"]

    weights["warmup_fb"] = b"other weights"  # a retrained warm-up that is not bit-identical is recorded as such
    shutil.rmtree(tmp_path / "out")
    shutil.rmtree(tmp_path / "results" / "warmup_fb+ufo")
    reproduce.run_arm(tmp_path / "out", "warmup_fb+ufo", 0)
    notes = (tmp_path / "results" / "warmup_fb" / "seed0" / "retrained.jsonl").read_text().splitlines()
    assert json.loads(notes[1])["identical"] is False
