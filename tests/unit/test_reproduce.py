"""The evidence table of recipes/reproduce.py: statistics match a hand count, intervals bracket the point estimate."""

from __future__ import annotations

import json

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
    assert "a − b = +25.0 [-292.7, +342.7] (95 % Welch t-interval over seeds, df 1.0)" in capsys.readouterr().out


def test_pairs_table_gives_both_intervals_and_lists_what_is_missing(reproduce, tmp_path):
    _write_fb_results(tmp_path)
    pairs = [("fb", "a", "b", None), ("fb", "a", "c", None), ("fb", "a", "d", None), ("fb", "a", "b", "succ@3")]
    table = reproduce.build_pairs_table(tmp_path, pairs).splitlines()
    assert table[2].startswith("| a (seeds 0,1) − b (seeds 0,1) | succ@3 − acc@1, with feedback | +25.0 [")
    assert table[2].endswith("| +25.0 [-292.7, +342.7] (df 1.0) |")  # the Welch interval of the test above
    assert table[3].startswith("| a (seeds 0,1) − c (seeds 0) |") and table[3].endswith("| - |")  # c: one seed
    # succ@3: a 1 and 1/2, b 1/2 and 1 -> 0; over seeds se = sqrt(2 * 1/8 / 2) = 0.354, df 2, t 4.303: +-152.1
    assert (
        table[4]
        == "| a (seeds 0,1) − b (seeds 0,1) | succ@3 (`--statistic succ@3`) | +0.0 [+0.0, +0.0] | +0.0 [-152.1, +152.1] (df 2.0) |"
    )
    assert table[-1] == "Not yet comparable (an arm has no results): fb:a,d"


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
