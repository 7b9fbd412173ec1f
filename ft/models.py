"""Model presets and loading, for training (QLoRA / LoRA) and for inference.

Presets:
- ``qwen2.5-1.5b``: ``Qwen/Qwen2.5-1.5B-Instruct`` from the Hub (or its local copy).
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

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

from ft.train import QUANTISATIONS



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


PRESETS = {"qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B-Instruct", "tiny": "tiny"}
QWEN_TOKENIZER = "Qwen/Qwen2.5-1.5B-Instruct"
# The offline copy of the Qwen tokenizer laid beside the repository on build and CI machines.
OFFLINE_QWEN_TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "tokenizers" / "qwen2.5"


def resolve_model_id(model: str) -> str:
    """Hub id or path for a preset name; other names pass through unchanged."""
    return PRESETS.get(model, model)


def default_tokenizer(model: str) -> str:
    """The tokenizer a model uses when the config names none.

    ``tiny`` has no tokenizer of its own and borrows Qwen2.5's: the offline copy
    when it is there, else the Hub's.
    """
    if resolve_model_id(model) == "tiny":
        return str(OFFLINE_QWEN_TOKENIZER) if OFFLINE_QWEN_TOKENIZER.is_dir() else QWEN_TOKENIZER
    return resolve_model_id(model)


def load_tokenizer(tokenizer_ref: str):
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_ref)
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError(f"tokenizer {tokenizer_ref} needs a pad token distinct from eos")
    return tokenizer


def _cache_root() -> Path:
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "studio-tiny"


def tiny_checkpoint(tokenizer, shape: TinyShape = TinyShape()) -> Path:
    """Folder of the ``tiny`` model for this tokenizer, built with fixed random weights on first use."""
    spec = {**shape.__dict__, "vocab_size": len(tokenizer), "pad": tokenizer.pad_token_id,
            "eos": tokenizer.eos_token_id}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    folder = _cache_root() / key
    if (folder / "config.json").exists():
        return folder
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=shape.max_position_embeddings,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng():  # the caller's random state stays as it was (LoRA weights are drawn next)
        torch.manual_seed(shape.seed)
        model = transformers.Qwen2ForCausalLM(config)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    try:
        tmp.rename(folder)
    except OSError:  # another process built the same model first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def checkpoint_path(model: str, tokenizer) -> str:
    """What ``from_pretrained`` should load for a preset, Hub id or local path."""
    ref = resolve_model_id(model)
    return str(tiny_checkpoint(tokenizer)) if ref == "tiny" else ref


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


def load_for_training(model: str, tokenizer, *, quantisation: str = "auto", lora_r: int = 16,
                      lora_alpha: int = 32, lora_dropout: float = 0.05, modules_to_save: tuple = (),
                      gradient_checkpointing: bool = True):
    """A PEFT model ready for the Trainer: QLoRA when quantised, plain LoRA otherwise."""
    base = load_base(model, tokenizer, quantisation)
    checkpointing = {"use_reentrant": False}
    if getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False):
        base = prepare_model_for_kbit_training(
            base, use_gradient_checkpointing=gradient_checkpointing, gradient_checkpointing_kwargs=checkpointing)
    elif gradient_checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
        base.enable_input_require_grads()
    lora = LoraConfig(
        r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules="all-linear",
        modules_to_save=list(modules_to_save) or None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, lora)


def load_for_inference(model: str, tokenizer, adapter_dir: str | Path | None = None, quantisation: str = "auto"):
    """The base model, with the run's adapter attached when one is given, in eval mode."""
    base = load_base(model, tokenizer, quantisation)
    loaded = PeftModel.from_pretrained(base, str(adapter_dir)) if adapter_dir else base
    return loaded.eval()


def decoder_and_head(model):
    """The transformer body and the LM head, reached through any PEFT wrapper.

    The body returns hidden states without the vocabulary projection, so callers
    project only the positions they need (see ``ft.train.answer_loss`` and
    ``ft.detector``). PEFT injects LoRA layers in place, so the body still runs
    the adapter, and ``disable_adapter()`` still switches it off.
    """
    causal_lm = model.get_base_model() if isinstance(model, PeftModel) else model
    return causal_lm.model, causal_lm.get_output_embeddings()
