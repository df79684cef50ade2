"""Shared fixtures: a tiny random-weight Llama with the real SmolLM2 tokenizer, saved once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@pytest.fixture(scope="session")
def tokenizer_path():
    from selfcorrect.models import embedded_model_path

    return embedded_model_path()


@pytest.fixture(scope="session")
def tokenizer(tokenizer_path):
    from selfcorrect.models import load_tokenizer

    return load_tokenizer(str(tokenizer_path))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer):
    """A 2-layer, 32-wide Llama (random weights, seed 0) with SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import LlamaForCausalLM

    from tests.helpers import tiny_llama_config

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(tokenizer))
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
