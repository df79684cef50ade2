"""recipes/profile_arm.py (issue 14's profile of a bench arm) runs on a tiny model and finds the step's parts."""

from __future__ import annotations

from tests.helpers import load_script


def test_profile_arm_finds_the_parts_of_a_step(tiny_model_dir, tmp_path):
    script = load_script("profile_arm")
    runs, profile_arm = [], script.profile_arm
    script.profile_arm = lambda arm, *args: runs.append(arm) or profile_arm(arm, *args)
    table = script.main(
        ["trl", "nsr", "--steps", "1", "--max-new-tokens", "4", "--model", str(tiny_model_dir), "--out", str(tmp_path)]
    )
    assert runs == ["trl", "nsr"]  # one profiled run per arm, every part read from it
    trl, nsr = table["trl"], table["nsr"]
    assert trl["episode engine (generate included)"] is None and nsr["episode engine (generate included)"] > 0
    assert trl["reward functions + credit (ours)"] is None and nsr["reward functions + credit (ours)"] is not None
    for arm in (trl, nsr):  # on a tiny model cProfile's attribution between nested calls is only roughly additive
        parts = {label: seconds for label, seconds in arm.items() if seconds is not None}
        assert all(seconds >= 0 for seconds in parts.values())
        assert arm["HF generate"] > 0 and arm["backward"] > 0 and arm["loss forward"] > 0
        assert arm["training step"] == max(parts.values())
    assert "| HF generate |" in (tmp_path / "profile.md").read_text()
