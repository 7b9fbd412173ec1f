"""The run config: ``TrainConfig`` (one dataclass, loaded from YAML, used by the CLI, the app and the tests)
and ``AuditOptions``.

Each TrainConfig field carries its form section, one-line help and, where the values are a closed list, its
choices in ``dataclasses.field(metadata=...)`` (as TRL's ``SFTConfig`` does): the app's form is generated
from them (``runner.forms``). This module imports no torch and no other project module, so everything from
the CLI to the job queue can read a config cheaply.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TRACKERS = ("none", "wandb", "trackio")
QUANTISATIONS = ("auto", "4bit", "8bit", "none")
PRECISIONS = ("auto", "bf16", "fp32")
TEST_ANSWERS = ("generate", "first_token")
THRESHOLD_RULES = ("fixed", "best_f1", "max_fpr")
"""How a run chooses its decision threshold on its validation split (ft/threshold.py)."""
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
    "greedy",
)
"""transformers' ``SchedulerType`` values, listed here so a config is read without importing torch
(a unit test keeps the two equal)."""
OPTIMISERS = (
    "auto",
    "adamw_torch",
    "adamw_torch_fused",
    "adamw_torch_xla",
    "adamw_torch_npu_fused",
    "adafactor",
    "adamw_anyprecision",
    "adamw_torch_4bit",
    "adamw_torch_8bit",
    "ademamix",
    "sgd",
    "adagrad",
    "adamw_bnb_8bit",
    "adamw_8bit",
    "ademamix_8bit",
    "lion_8bit",
    "lion_32bit",
    "paged_adamw_32bit",
    "paged_adamw_8bit",
    "paged_ademamix_32bit",
    "paged_ademamix_8bit",
    "paged_lion_32bit",
    "paged_lion_8bit",
    "rmsprop",
    "rmsprop_bnb",
    "rmsprop_bnb_8bit",
    "rmsprop_bnb_32bit",
    "galore_adamw",
    "galore_adamw_8bit",
    "galore_adafactor",
    "galore_adamw_layerwise",
    "galore_adamw_8bit_layerwise",
    "galore_adafactor_layerwise",
    "lomo",
    "adalomo",
    "grokadamw",
    "schedule_free_radam",
    "schedule_free_adamw",
    "schedule_free_sgd",
    "apollo_adamw",
    "apollo_adamw_layerwise",
    "stable_adamw",
)
""""auto" and transformers' ``OptimizerNames`` values (a unit test keeps them equal)."""
PRESETS = {
    "qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B-Instruct",
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "tiny": "tiny",
}
"""The model presets by name, with the Hub id each stands for (``ft.models`` loads them)."""
SECTIONS = ("Run", "Model", "Data", "Optimisation", "Logging")
"""The form's sections: "Run" on top, the others in closed accordions."""
APP_OWNED = "app"
"""The section of fields the app sets itself (never in the form)."""


GPU_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/kfd")
"""What the NVIDIA and AMD (ROCm) kernel drivers create: without either, torch can see no GPU."""


def gpu_driver_present() -> bool:
    return any(os.path.exists(path) for path in GPU_DRIVER_PATHS)


def cuda_device_count() -> int:
    """How many CUDA devices this process sees (0 on a CPU-only machine or a broken CUDA install, as the
    Trainer would see it). torch is imported here, when asked, and only where a GPU driver is loaded, so
    reading a config or opening the app on a CPU machine never loads it (about a second of the app's start)."""
    if not gpu_driver_present():
        return 0
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


def default_preset() -> str:
    """The model a new run or the Detect tab starts on: Qwen2.5-1.5B QLoRA on CUDA, SmolLM2-135M elsewhere."""
    return "qwen2.5-1.5b" if cuda_device_count() else "smollm2-135m"


class ConfigError(ValueError):
    """A TrainConfig value is unusable; the message names the field."""


_FIELD_KINDS = {
    "bool": ((bool,), "true or false"),
    "int": ((int,), "a whole number"),
    "float": ((int, float), "a number"),
    "str": ((str,), "text"),
    "list[str]": ((list,), "a list"),
}


def _typed(name: str, value, annotation: str):
    """``value`` as the config field's type (``annotation`` as written), or a ConfigError naming the field.

    YAML reads ``2e-4`` as a string and ``lm_head`` as a string where a list is meant: both are caught here,
    before they reach a model or PEFT's module matching.
    """
    kind, optional = annotation.replace(" | None", ""), annotation.endswith("| None")
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name} needs a value")
    if kind == "float" and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
    expected, wording = _FIELD_KINDS[kind]
    if not isinstance(value, expected) or (isinstance(value, bool) and kind != "bool"):
        raise ConfigError(f"{name} must be {wording}, got {value!r}")
    if kind == "list[str]" and not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{name} must be a list of names, got {value!r}")
    if kind == "float" and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return value


def wandb_mode(environ: dict[str, str] | None = None) -> str:
    """ "online" when a wandb key or login is present, else "offline"; a WANDB_MODE of offline or disabled stays."""
    environ = os.environ if environ is None else environ
    if environ.get("WANDB_MODE") in ("offline", "disabled"):
        return environ["WANDB_MODE"]
    has_login = environ.get("WANDB_API_KEY") or (Path.home() / ".netrc").exists()
    return "online" if has_login else "offline"


def config_mapping(values: object) -> dict:
    """``values`` when it is a mapping of names to values (a config's shape), else ConfigError saying what it is."""
    if not isinstance(values, dict) or not all(isinstance(key, str) for key in values):
        got = type(values).__name__ if not isinstance(values, dict) else "a key that is not a name"
        raise ConfigError(f"a config is a mapping of TrainConfig field names to values, got {got}")
    return values


def _field(*, section: str, help: str, choices: tuple[str, ...] | dict = (), open_choices: bool = False, **kwargs):
    """A dataclass field whose metadata holds its form section, help line and choices.

    ``open_choices``: a value outside ``choices`` is allowed too (a Hub id beside the presets)."""
    return field(
        metadata={"section": section, "help": help, "choices": tuple(choices), "open_choices": open_choices}, **kwargs
    )


@dataclass
class TrainConfig:
    # One field a line: the table of every setting with its form section, help and choices.
    # fmt: off
    # model
    model: str = _field(default_factory=default_preset, section="Run", help="Preset (smollm2-135m, qwen2.5-1.5b, tiny), Hub model id or local folder", choices=PRESETS, open_choices=True)
    tokenizer: str | None = _field(default=None, section="Model", help="Tokenizer id or folder; empty = the model's own (tiny borrows Qwen2.5's)")
    quantisation: str = _field(default="auto", section="Model", help="auto = 4-bit NF4 on CUDA, none on CPU", choices=QUANTISATIONS)
    lora_r: int = _field(default=16, section="Model", help="LoRA rank")
    lora_alpha: int = _field(default=32, section="Model", help="LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = _field(default=0.05, section="Model", help="Dropout on the LoRA input, in [0, 1)")
    modules_to_save: list[str] = _field(default_factory=list, section="Model", help="Modules trained in full beside LoRA, comma-separated (tiny: embed_tokens, lm_head)")
    gradient_checkpointing: bool = _field(default=True, section="Model", help="Recompute activations in the backward pass: less memory, slower")
    lora_layers: int | None = _field(default=None, section="Model", help="LoRA on the top N decoder layers only (empty = all): backward stops below them, faster")
    precision: str = _field(default="auto", section="Model", help="auto = bf16 autocast where it is native (a bf16 GPU, a CPU with AVX512-BF16 or AMX), else fp32; bf16 = always (emulated, ~8x slower, on other CPUs)", choices=PRECISIONS)
    # data
    data: str = _field(default="../shared/data/safe-guard", section="Run", help="Curation snapshot or dataset: folder of <split>.parquet files, one file, or a Hub id")
    text_column: str = _field(default="text", section="Data", help="Column holding the text")
    label_column: str = _field(default="label", section="Data", help="Column holding the label (0 benign, 1 injection)")
    train_split: str = _field(default="train", section="Data", help="Split trained on")
    test_split: str = _field(default="test", section="Data", help="Split of the before/after test metrics (eval.json)")
    validation_split: str | None = _field(default=None, section="Data", help="Split of the prediction tables; empty = carve validation_size rows from train")
    validation_size: int = _field(default=200, section="Data", help="Rows carved from train when there is no validation split")
    max_train_rows: int | None = _field(default=None, section="Data", help="Use at most this many training rows (empty = all)")
    max_test_rows: int | None = _field(default=None, section="Data", help="Use at most this many test rows (empty = all)")
    max_length: int = _field(default=512, section="Data", help="Token limit per example; the text is truncated, never the answer")
    # optimisation
    epochs: float = _field(default=1.0, section="Optimisation", help="Passes over the training rows")
    max_steps: int = _field(default=-1, section="Optimisation", help="Stop after this many optimiser steps (-1 = run the epochs)")
    batch_size: int = _field(default=4, section="Optimisation", help="Examples per device per step")
    gradient_accumulation: int = _field(default=4, section="Optimisation", help="Batches summed into one optimiser step")
    learning_rate: float = _field(default=2e-4, section="Optimisation", help="Peak learning rate")
    weight_decay: float = _field(default=0.01, section="Optimisation", help="AdamW weight decay")
    warmup_steps: int = _field(default=50, section="Optimisation", help="Steps of linear warm-up from 0 to the peak learning rate")
    lr_scheduler: str = _field(default="linear", section="Optimisation", help="Learning-rate schedule after warm-up", choices=LR_SCHEDULERS)
    max_grad_norm: float = _field(default=1.0, section="Optimisation", help="Gradient clipping norm")
    optim: str = _field(default="auto", section="Optimisation", help="Optimiser; auto = paged 8-bit AdamW when quantised, else AdamW", choices=OPTIMISERS)
    group_by_length: bool = _field(default=True, section="Optimisation", help="Batch examples of similar length together (less padding)")
    answer_only_logits: bool = _field(default=True, section="Optimisation", help="Project only the answer positions through the LM head (same loss, less memory)")
    seed: int = _field(default=42, section="Optimisation", help="Seed of the data order, the validation carve and the weights' init")
    # logging and output
    run_name: str = _field(default="", section="Run", help="Name shown in the runs table and the tracker; part of the run id")
    tracker: str = _field(default="none", section="Run", help="Where the curves and prediction tables also go: wandb, trackio, or none", choices=TRACKERS)
    project: str = _field(default="injection-studio", section="Logging", help="Tracker project name")
    logging_steps: int = _field(default=25, section="Logging", help="Log loss and learning rate every this many steps")
    save_steps: int = _field(default=250, section="Logging", help="Save a checkpoint every this many steps (resume starts from the last one)")
    save_total_limit: int = _field(default=1, section="Logging", help="Checkpoints kept on disk while the run can be resumed (a completed run removes them)")
    prediction_samples: int = _field(default=100, section="Logging", help="Validation rows in the before/after prediction tables")
    predictions_every_steps: int = _field(default=0, section="Logging", help="Also write a prediction table every this many steps (0 = epoch ends only)")
    eval_batch_size: int = _field(default=32, section="Logging", help="Batch size when scoring")
    test_answers: str = _field(default="generate", section="Logging", help="Test answer text: generate = a greedy generation per row; first_token = the top next token of the scoring pass (free)", choices=TEST_ANSWERS)
    threshold: float = _field(default=0.5, section="Logging", help="P(injection) at or above which a text counts as an injection: the fixed rule's value, every rule's fallback")
    threshold_rule: str = _field(default="best_f1", section="Logging", help="How the run sets its threshold on its validation split: fixed; best_f1 (moves off threshold only for an F1 gain over 0.01); max_fpr (flags at most target_fpr of benign rows)", choices=THRESHOLD_RULES)
    target_fpr: float = _field(default=0.01, section="Logging", help="max_fpr: share of benign validation rows the threshold may flag (needs 1/target_fpr benign rows)")
    runs_dir: str = _field(default="runs", section=APP_OWNED, help="Folder of the run folders; the app sets its own")
    # fmt: on

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        config_mapping(values)
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
        config = cls(**{name: _typed(name, value, fields[name]) for name, value in values.items()})
        config.validate()
        return config

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read config ({exc})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: a config is a mapping of keys to values")
        return cls.from_dict(values)

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)

    def validate(self) -> None:
        """Raise ConfigError on the first unusable value; cheap, runs before any model loads."""
        positive = {
            "batch_size": self.batch_size,
            "gradient_accumulation": self.gradient_accumulation,
            "max_length": self.max_length,
            "eval_batch_size": self.eval_batch_size,
            "lora_r": self.lora_r,
            "logging_steps": self.logging_steps,
            "save_steps": self.save_steps,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        checks = [
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (self.epochs > 0 or self.max_steps > 0, "set epochs > 0 or max_steps > 0"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {self.lora_dropout}"),
            (0 < self.threshold < 1, f"threshold must be in (0, 1), got {self.threshold}"),
            (0 < self.target_fpr < 1, f"target_fpr must be in (0, 1), got {self.target_fpr}"),
            (self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}"),
            (self.prediction_samples >= 1, f"prediction_samples must be >= 1, got {self.prediction_samples}"),
            (self.validation_size > 0, f"validation_size must be > 0, got {self.validation_size}"),
            (
                self.max_train_rows is None or self.max_train_rows > 0,
                f"max_train_rows must be > 0 or empty (all rows), got {self.max_train_rows}",
            ),
            (
                self.max_test_rows is None or self.max_test_rows > 0,
                f"max_test_rows must be > 0 or empty (all rows), got {self.max_test_rows}",
            ),
            (
                self.lora_layers is None or self.lora_layers > 0,
                f"lora_layers must be > 0 or empty (every layer), got {self.lora_layers}",
            ),
            (self.max_length >= 64, f"max_length must be at least 64 tokens, got {self.max_length}"),
            (bool(str(self.data).strip()), "data is empty"),
            (bool(str(self.model).strip()), "model is empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self._check_closed_choices()

    def _check_closed_choices(self) -> None:
        """Every field with a closed list of choices (its metadata) holds one of them."""
        for f in dataclasses.fields(self):
            choices, value = f.metadata["choices"], getattr(self, f.name)
            if choices and not f.metadata["open_choices"] and value not in choices:
                raise ConfigError(f"{f.name} must be one of {', '.join(choices)}, got {value!r}")

    def data_options(self) -> dict:
        """Which rows a run reads and how: ``ft.data.load_training_data``'s options."""
        names = ("text_column", "label_column", "train_split", "test_split", "validation_split", "validation_size")
        return {name: getattr(self, name) for name in (*names, "max_train_rows", "max_test_rows", "seed")}

    def columns(self) -> dict[str, str]:
        """The data's column names, as ``ft.data``'s readers take them."""
        return {"text_column": self.text_column, "label_column": self.label_column}

    def resolved(self) -> TrainConfig:
        """A copy whose local paths are absolute, so it runs the same from any directory."""

        def absolute(ref):
            return str(Path(ref).resolve()) if ref and Path(ref).exists() else ref

        return dataclasses.replace(
            self,
            data=absolute(self.data),
            model=absolute(self.model),
            tokenizer=absolute(self.tokenizer),
            runs_dir=str(Path(self.runs_dir).resolve()),
        )


def new_run_id(config: TrainConfig) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", (config.run_name or config.model).lower()).strip("-")[:40] or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}"


IN_SAMPLE = "in-sample (biased)"
"""The audit method of a run scored by one completed run's adapter."""


@dataclass
class AuditOptions:
    folds: int = 2
    seed: int | None = None
    """Seeds the fold assignment and every fold's training; None takes the config's seed."""
    split: str | None = None
    """The split to audit; None takes the config's train split."""
    in_sample_run: str | None = None
    """A run folder whose adapter scores every row (no training, biased)."""
    eval_rows: int = 200
    """Held-out rows each fold's eval.json is computed on (the audit scores all of them regardless)."""

    @property
    def method(self) -> str:
        return IN_SAMPLE if self.in_sample_run else f"cross-fit K={self.folds}"

    def validate(self) -> None:
        if not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigError(f"folds must be an integer >= 2, got {self.folds!r}")
        if self.eval_rows <= 0:
            raise ConfigError(f"eval_rows must be > 0, got {self.eval_rows}")
        if self.in_sample_run and not (Path(self.in_sample_run) / "adapter").is_dir():
            raise ConfigError(f"in_sample_run {self.in_sample_run}: no adapter/ folder (is the run completed?)")
