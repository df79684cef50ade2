"""The GPU check's model export (`launch/gpu_check.py prepare`, without its downloads): a loadable Qwen2 config of
Qwen2.5-0.5B's shape over the embedded tokenizer, with that tokenizer and its chat template, and no weights.

    pytest -q tests/trainers/test_gpu_check_export.py
"""

from __future__ import annotations

import pytest
import torch

from tests.helpers import load_script


@pytest.fixture(scope="module")
def gpu_check():
    return load_script("gpu_check", folder="launch")


def test_export_is_a_loadable_config_of_the_stated_shape_with_the_tokenizer(gpu_check, tmp_path, tokenizer):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.safetensors").write_bytes(b"stale")  # weights never travel
    folder = gpu_check.export_model(tmp_path / "model")
    assert not list(folder.glob("*.safetensors")) and not list(folder.glob("*.bin"))
    assert sum(p.stat().st_size for p in folder.iterdir()) < 4 * 2**20
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == "qwen2"
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (896, 24, 14)
    assert (config.num_key_value_heads, config.intermediate_size) == (2, 4864)
    exported = AutoTokenizer.from_pretrained(folder)
    assert config.vocab_size == len(exported) == len(tokenizer) == 49152
    assert (config.eos_token_id, config.pad_token_id) == (tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert exported.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False) == (
        tokenizer.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False)
    )
    with torch.device("meta"):  # the real module tree, no memory
        model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == gpu_check.parameter_count(config) == 401_938_304


def test_prepare_without_download_fills_the_folder_and_reports_the_size(gpu_check, tmp_path, capsys):
    """`prepare(download=False)`: the model folder and the size check, as `make gpu-check-prepare` runs them."""
    sizes = gpu_check.prepare(tmp_path / "check", download=False)
    assert (tmp_path / "check" / "model" / "config.json").is_file() and (tmp_path / "check" / "wheels").is_dir()
    carried = str(tmp_path / "check")
    assert sizes[carried] == sum(p.stat().st_size for p in (tmp_path / "check").rglob("*") if p.is_file())
    assert sizes["total"] == sizes["repository"] + sizes[carried] < gpu_check.TRAVEL_LIMIT
    printed = capsys.readouterr().out
    assert "qwen2, 402M parameters, no weights" in printed and "limit" in printed
