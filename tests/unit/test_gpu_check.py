"""The GPU check's preparation and plumbing without a GPU or a download: the pinned `pip download` commands, the check
that every pin arrived, the travel size against the device tool's limit, the parameter count of the exported shape,
the results file, and `launch/gpu_check.sh run` end to end with a stand-in Python (no install, no training).

    pytest -q tests/unit/test_gpu_check.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, load_script


@pytest.fixture(scope="module")
def gpu_check():
    return load_script("gpu_check", folder="launch")


def test_download_commands_pin_everything_for_the_gpu_python(gpu_check, tmp_path):
    binary, source = gpu_check.pip_download_commands(tmp_path, python="py")
    assert binary[:4] == ["py", "-m", "pip", "download"] and "--no-deps" in binary and "--no-deps" in source
    assert binary[binary.index("--python-version") + 1] == "3.12" and "--only-binary=:all:" in binary
    assert binary[binary.index("-d") + 1] == str(tmp_path) == source[source.index("-d") + 1]
    wanted = {f"{n}=={v}" for n, v in gpu_check.WHEELS.items()}
    assert wanted <= set(binary) and "trl==1.16.0" in binary and "math-verify==0.9.0" in binary
    assert "deepspeed==0.19.8" in source and "--no-binary=:all:" in source  # source only on PyPI
    assert not any(arg.startswith(("pyarrow", "torch", "transformers")) for arg in binary + source)  # on the machine


def test_missing_packages_matches_wheel_and_source_names(gpu_check, tmp_path):
    assert len(gpu_check.missing_packages(tmp_path / "absent")) == len(gpu_check.WHEELS) + len(gpu_check.SOURCES)
    names = [
        "trl-1.16.0-py3-none-any.whl",
        "math_verify-0.9.0-py3-none-any.whl",
        "antlr4_python3_runtime-4.13.2-py3-none-any.whl",
        "pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "deepspeed-0.19.8.tar.gz",
        "datasets-5.1.0-py3-none-any.whl",  # the wrong version counts as missing
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    missing = gpu_check.missing_packages(tmp_path)
    assert "datasets==5.2.0" in missing and "pydantic==2.14.4" in missing  # pydantic_core is not pydantic
    for present in ("trl", "math-verify", "antlr4-python3-runtime", "pydantic-core", "deepspeed"):
        assert not any(m.startswith(present + "==") for m in missing), missing


def test_wheels_to_install_skips_what_the_machine_has_at_that_version_or_newer(gpu_check, tmp_path):
    for name in (
        "trl-1.16.0-py3-none-any.whl",
        "typing_extensions-4.16.0-py3-none-any.whl",
        "dill-0.4.1-py3-none-any.whl",
    ):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "deepspeed-0.19.8.tar.gz").write_bytes(b"")  # the source archive is built separately
    installed = {"typing_extensions": "4.17.0", "dill": "0.3.8", "torch": "2.11.0"}
    chosen = [p.name for p in gpu_check.wheels_to_install(tmp_path, installed)]
    assert chosen == [
        "dill-0.4.1-py3-none-any.whl",
        "trl-1.16.0-py3-none-any.whl",
    ]  # older dill replaced, no downgrade
    assert len(gpu_check.wheels_to_install(tmp_path, {})) == 3


def _git_repo(path: Path) -> Path:
    path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    (path / ".gitignore").write_text(".gpu-check/\nbuild/\n")
    (path / "tracked.txt").write_bytes(b"x" * 1000)
    subprocess.run(["git", "add", "."], cwd=path, check=True)
    (path / "untracked.txt").write_bytes(b"y" * 500)  # untracked, not ignored: travels
    (path / "build").mkdir()
    (path / "build" / "big.bin").write_bytes(b"z" * 5000)  # ignored, not carried: stays
    (path / ".gpu-check" / "wheels").mkdir(parents=True)
    (path / ".gpu-check" / "wheels" / "a.whl").write_bytes(b"w" * 3000)  # ignored but carried: travels
    (path / "shared").mkdir()
    (path / "shared" / "note.md").write_bytes(b"s" * 200)  # shared/ in the checkout travels
    return path


def test_travel_size_counts_what_the_device_tool_sends(gpu_check, tmp_path):
    repo = _git_repo(tmp_path / "repo")
    sizes = gpu_check.travel_size(repo, [".gpu-check"])
    gitignore = len((repo / ".gitignore").read_bytes())
    assert sizes == {"repository": 1000 + 500 + 200 + gitignore, ".gpu-check": 3000, "total": 4700 + gitignore}
    assert "total" in gpu_check.check_travel(sizes)
    with pytest.raises(SystemExit, match="over the device tool's limit"):
        gpu_check.check_travel(sizes, limit=4000)


class _Vocabulary:
    """What `qwen2_config` reads of a tokenizer: its length and special ids (SmolLM2's)."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 2

    def __len__(self):
        return 49152


def test_parameter_count_of_the_exported_shape(gpu_check):
    """Qwen2.5-0.5B's shape over SmolLM2's 49152-token vocabulary: ~0.4B, counted without building the model (the
    model tier checks it against a real one)."""
    config = gpu_check.qwen2_config(_Vocabulary())
    shape = (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads)
    assert shape == (896, 24, 14, 2) and config.intermediate_size == 4864 and config.vocab_size == 49152
    assert config.tie_word_embeddings and config.model_type == "qwen2"
    assert gpu_check.parameter_count(config) == 401_938_304


def test_report_collects_outcomes_metrics_and_the_bench(gpu_check, tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite><testcase name="test_a[grpo]" time="12.5"/>'
        '<testcase name="test_zero2" time="0.1"><skipped message="DeepSpeed did not install"/></testcase>'
        '<testcase name="test_b" time="3"><failure message="AssertionError: boom&#10;more"/></testcase>'
        "</testsuite></testsuites>"
    )
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"name": "grpo", "steps": 2, "seconds": 12.0, "peak_mib": 5120.4, "losses": [0.5, 0.25]}\n')
    bench = tmp_path / "bench.md"
    bench.write_text("| method | s / step |\n")
    text = gpu_check.report(junit, bench, metrics, {"install": "exit 0, 40 s"})
    assert "| test_a[grpo] | passed | 12.5 |" in text
    assert "| test_zero2 | skipped | 0.1 | DeepSpeed did not install |" in text
    assert "| test_b | failed | 3.0 | AssertionError: boom |" in text
    assert "| grpo | 2 | 12.0 | 5120 | 0.5, 0.25 |" in text and "| install | exit 0, 40 s |" in text
    assert "| method | s / step |" in text and "| trl |" in text and "GPU: " in text
    missing = gpu_check.report(tmp_path / "none.xml", tmp_path / "none.md", None, {})
    assert "0 tests" in missing and "no bench table" in missing and "no arm finished" in missing


def test_a_stopped_bench_still_reports_the_arms_that_finished(gpu_check, tmp_path):
    arm = tmp_path / "bench" / "runs" / "score-r0"
    arm.mkdir(parents=True)
    result = {"trainer": "selfcorrect.trainers.score.SCoReTrainer", "step_seconds": [3.0, 1.0, 2.0]}
    result.update(generated_tokens=[128, 128, 130], peak_gpu_mib=2048.2)
    (arm / "result.json").write_text(json.dumps(result))
    (tmp_path / "bench" / "runs" / "rise-r0").mkdir()  # started, never finished: no result.json
    lines = gpu_check.bench_section(tmp_path / "bench")
    assert "the 1 arm(s) that finished" in lines[0]
    assert lines[-1] == "| score-r0 | SCoReTrainer | 2.00 | 129 | 2048 |"
    (tmp_path / "bench" / "bench.md").write_text("| the table |\n")
    assert gpu_check.bench_section(tmp_path / "bench") == ["| the table |\n"]


STAND_IN = """\
#!{python}
# A stand-in for the GPU machine's python3: runs launch/gpu_check.py for real, fakes pip, pytest and the bench.
import os, runpy, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["STAND_IN_CALLS"], "a") as f:
    f.write(" ".join(args) + "\\n")
if args and args[0].endswith("gpu_check.py"):
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")
elif args[:2] == ["-m", "pytest"]:
    Path(args[args.index("--junitxml") + 1]).write_text('<testsuite><testcase name="test_gpu" time="1"/></testsuite>')
elif args[:2] == ["-m", "selfcorrect.bench"]:
    out = Path(args[len(args) - 1 - args[::-1].index("--output-dir") + 1])  # the last --output-dir wins
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.md").write_text("| method | s / step |\\n| trl | 1.00 |\\n")
"""


def test_run_writes_one_results_file_under_out(tmp_path):
    """`gpu_check.sh run` with a stand-in Python: the phases run in order with the right arguments, and the results
    file with the test outcome and the bench table lands in $OUT."""
    stand_in = tmp_path / "python3"
    stand_in.write_text(STAND_IN.format(python=sys.executable))
    stand_in.chmod(0o755)
    check_dir = tmp_path / "check"
    (check_dir / "wheels").mkdir(parents=True)
    (check_dir / "wheels" / "trl-1.16.0-py3-none-any.whl").write_bytes(b"")  # installed here: skipped
    (check_dir / "wheels" / "gpu_check_absent-1.0-py3-none-any.whl").write_bytes(b"")
    out, calls = tmp_path / "out", tmp_path / "calls.txt"
    env = {
        **os.environ,
        "PYTHON": str(stand_in),
        "OUT": str(out),
        "GPU_CHECK_DIR": str(check_dir),
        "GPU_CHECK_WORK": str(tmp_path / "work"),
        "STAND_IN_CALLS": str(calls),
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(
        ["bash", "launch/gpu_check.sh", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = (out / "gpu-check.md").read_text()
    for phase in ("install", "gpu tests", "bench"):
        assert f"| {phase} | exit 0," in text, text
    assert "| test_gpu | passed |" in text and "| trl | 1.00 |" in text
    assert (out / "gpu-check.log").is_file() and (out / "junit.xml").is_file()
    made = calls.read_text()
    pip = next(line for line in made.splitlines() if line.startswith("-m pip install -q --no-index --no-deps"))
    assert pip.endswith(f"--no-compile {check_dir}/wheels/gpu_check_absent-1.0-py3-none-any.whl"), pip
    assert "-m pytest -q tests/gpu -m gpu" in made
    bench = next(line for line in made.splitlines() if line.startswith("-m selfcorrect.bench"))
    assert f"--model {check_dir}/model --random-init --dtype bfloat16" in bench and "--max-new-tokens 64" in bench
