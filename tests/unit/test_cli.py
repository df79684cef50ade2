"""The `selfcorrect` command: bad input is one clear line on stderr and exit code 2, before any model loads."""

from __future__ import annotations

import subprocess
import sys

import yaml

from selfcorrect.cli import main
from tests.helpers import ROOT


def test_help_and_unknown_command(capsys):
    assert main(["--help"]) == 0
    assert "selfcorrect {train,eval}" in capsys.readouterr().out
    assert main(["fly"]) == 2


def test_bad_recipe_is_a_clean_error(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"model_name_or_path": "embedded", "use_cpu": True, "lerning_rate": 1e-6}))
    result = subprocess.run(
        [sys.executable, "-m", "selfcorrect.train", "--config", str(recipe)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "selfcorrect: error:" in result.stderr and "`lerning_rate` (did you mean `learning_rate`" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_dataset_column_fails_before_the_model_loads(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2"}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model_name_or_path": "no/such-model",
                "use_cpu": True,
                "dataset_name": str(data),
                "output_dir": str(tmp_path),
            }
        )
    )
    assert main(["train", "--config", str(recipe)]) == 2  # the data error comes first, not a hub lookup


def test_help_all_lists_the_trainer_fields_and_exits_cleanly():
    result = subprocess.run(
        [sys.executable, "-m", "selfcorrect.cli", "train", "--help-all", "--method", "score"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "--max_attempt_length" in result.stdout and "--learning_rate" in result.stdout  # method's and TRL's fields
    assert "selfcorrect: error" not in result.stderr
