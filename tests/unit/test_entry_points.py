"""What every command does at launch: CPU threads that fit the machine, no third-party noise, a `--help` that does not
load torch."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

import pytest
import yaml

from selfcorrect.configs import RecipeError
from selfcorrect.launch_utils import choose_num_threads, configure_threads, prepare_command, silence_known_noise
from tests.helpers import ROOT


@pytest.mark.parametrize(
    "cores, load, omp, requested, processes, expected",
    [
        (2, 1.0, None, None, 1, (1, "free")),  # another busy process on a 2-core machine: one thread, not two
        (2, 0.2, None, None, 1, (2, "free")),  # an idle machine: every core
        (2, 5.0, None, None, 1, (1, "free")),  # overloaded: still one
        (16, 3.4, None, None, 1, (13, "free")),
        (16, 0.0, None, None, 4, (4, "free")),  # four ranks on this machine share its cores
        (2, 0.0, "1", None, 1, (1, "OMP_NUM_THREADS")),  # an explicit OMP_NUM_THREADS is respected
        (2, 0.0, "junk", None, 1, (2, "free")),  # ... when it is a number
        (2, 1.9, "1", 2, 1, (2, "--num_threads")),  # the flag wins over both
    ],
)
def test_thread_choice(cores, load, omp, requested, processes, expected):
    threads, why = choose_num_threads(cores, load, omp, requested, processes)
    assert threads == expected[0]
    if expected[1] == "free":
        assert f"{cores} usable cores" in why and f"load average {load:.1f}" in why
    else:
        assert why == expected[1]


def test_thread_choice_refuses_a_non_positive_request():
    with pytest.raises(RecipeError, match="num_threads"):
        choose_num_threads(2, 0.0, None, 0)


def test_configured_threads_are_exported_applied_and_printed(capsys):
    import torch

    before = torch.get_num_threads()
    environ = {"OMP_NUM_THREADS": "1"}
    try:
        assert configure_threads(None, environ) == 1
        assert torch.get_num_threads() == 1  # torch already imported: set in torch too
    finally:
        torch.set_num_threads(before)
    assert environ == {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    assert "selfcorrect: 1 CPU thread (OMP_NUM_THREADS)" in capsys.readouterr().err
    environ = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"}
    try:
        configure_threads(None, environ, quiet=True)
    finally:
        torch.set_num_threads(before)
    assert environ["OMP_WAIT_POLICY"] == "ACTIVE"  # a user's own setting stays
    assert capsys.readouterr().err == ""  # quiet: no line


def test_prepare_command_reads_num_threads_and_quiet_from_the_command_line_or_the_recipe(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"num_threads": 1, "quiet": True}))
    environ: dict[str, str] = {}
    try:
        prepare_command(["--config", str(recipe)], environ)
        assert environ["OMP_NUM_THREADS"] == "1" and capsys.readouterr().err == ""
        prepare_command(["--config", str(recipe), "--num_threads", "2", "--quiet", "false"], environ)
        assert environ["OMP_NUM_THREADS"] == "2"
        assert "2 CPU threads (--num_threads)" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


class _Collect(logging.Handler):
    """A handler that keeps the messages it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_known_third_party_noise_is_hidden_and_other_warnings_are_not():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_known_noise()
        # transformers 5's renames, as TrainingArguments and the model's checkpointing methods word them
        warnings.warn(
            "`gradient_checkpointing` is deprecated and will be removed in v6. Use `x` instead.",
            FutureWarning,
            stacklevel=2,
        )
        warnings.warn(
            "`is_gradient_checkpointing` is deprecated and will be removed in v6. Use `y`.",
            FutureWarning,
            stacklevel=2,
        )
        warnings.warn(
            "`use_cache` is deprecated and will be removed in v6.", FutureWarning, stacklevel=2
        )  # not ours to hide
    assert [str(w.message) for w in caught] == ["`use_cache` is deprecated and will be removed in v6."]
    deepspeed = logging.getLogger("DeepSpeed")
    received = _Collect()  # what reaches DeepSpeed's own handlers (independent of caplog and propagation)
    deepspeed.addHandler(received)
    try:
        deepspeed.warning("Setting accelerator to CPU. If you have GPU or other accelerator, we were unable to ...")
        deepspeed.warning("ZeRO stage 3 offload is slow")
    finally:
        deepspeed.removeHandler(received)
    assert received.messages == ["ZeRO stage 3 offload is slow"]


def test_importing_the_library_changes_no_warning_filter():
    code = (
        "import warnings; before = list(warnings.filters); import selfcorrect.cli, selfcorrect.launch_utils, "
        "selfcorrect.evaluate, selfcorrect.train; assert warnings.filters == before, 'filters changed on import'"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", ["train", "eval"])
def test_help_lists_the_fields_without_importing_torch(command):
    code = (
        f"import sys; from selfcorrect.cli import main; code = main([{command!r}, '--help']); "
        "print('TORCH LOADED' if 'torch' in sys.modules else 'no torch'); sys.exit(code)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert f"usage: selfcorrect {command} --config RECIPE.yaml" in result.stdout
    for flag in ("--eval_attempts", "--num_threads", "--quiet", "--model_name_or_path", "--help-all"):
        assert flag in result.stdout
    assert result.stdout.rstrip().endswith("no torch")


@pytest.mark.parametrize(("command", "flag"), [("revision-data", "--keep_right_fraction"), ("redi-data", "--traces")])
def test_data_commands_help_exits_cleanly(command, flag):
    """`selfcorrect revision-data --help` prints its options and exits 0 (not "invalid arguments")."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "selfcorrect.cli", command, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert flag in result.stdout
    assert "invalid arguments" not in result.stderr
