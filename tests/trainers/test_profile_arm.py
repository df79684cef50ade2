"""recipes/profile_arm.py (issue 14's profile of a bench arm) runs on a tiny model and finds the step's parts."""

from __future__ import annotations

from tests.helpers import load_script


def test_profile_arm_finds_the_parts_of_a_step(tiny_model_dir, tmp_path):
    table = load_script("profile_arm").main(
        ["trl", "nsr", "--steps", "1", "--max-new-tokens", "4", "--model", str(tiny_model_dir), "--out", str(tmp_path)]
    )
    trl, nsr = table["trl"], table["nsr"]
    assert trl["episode engine (generate included)"] is None and nsr["episode engine (generate included)"] > 0
    for arm in (trl, nsr):
        assert 0 < arm["HF generate"] <= arm["generate + score (TRL's)"] <= arm["training step"]
        assert arm["backward"] > 0 and arm["loss forward"] > 0
    assert nsr["HF generate"] <= nsr["episode engine (generate included)"]
    assert "| HF generate |" in (tmp_path / "profile.md").read_text()
