"""The run form: its fields derived from ``TrainConfig``'s field metadata, the form's values to a checked
config and back, and the checks a config passes before it is queued.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from ft.config import APP_OWNED, ConfigError, TrainConfig, config_mapping, default_preset
from ft.paths import ROOT
from runner.catalog import YAML_LOADER
from runner.secrets import secret_values

MAX_CONFIG_CHARS = 100_000
"""The longest config text a script may send (the project's configs are a few thousand characters)."""


@dataclass(frozen=True)
class FormField:
    """One TrainConfig field as the form shows it."""

    name: str
    section: str
    help: str
    kind: str
    """bool, int, float, str or list (of str, typed comma-separated)."""
    optional: bool
    default: object
    choices: tuple[str, ...] = ()
    open_choices: bool = True
    """Whether a value outside ``choices`` is allowed (a Hub id beside the presets)."""


RECIPES = {"smollm2-135m": "smollm2-cpu.yaml", "qwen2.5-1.5b": "qwen2.5-1.5b-qlora.yaml"}
"""The configs/ recipe for each default model (``ft.config.default_preset``)."""


def machine_recipe() -> Path:
    """The project's recipe for this machine's default model: the SmolLM2 CPU run, or Qwen2.5 QLoRA on CUDA."""
    return ROOT / "configs" / RECIPES[default_preset()]


@lru_cache(maxsize=1)
def form_fields() -> tuple[FormField, ...]:
    """Every TrainConfig field but the app-owned ones, in declaration order, with the section, help and choices
    its metadata gives."""
    found = []
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if meta["section"] == APP_OWNED:
            continue
        base = str(f.type).replace(" | None", "")
        kind = "list" if base.startswith("list") else base
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        found.append(
            FormField(
                f.name,
                meta["section"],
                meta["help"],
                kind,
                "None" in str(f.type),
                default,
                meta["choices"],
                meta["open_choices"] or not meta["choices"],
            )
        )
    return tuple(found)


def _coerce(field: FormField, value):
    """The form's value as the field's type, or a ConfigError naming the field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if field.optional:
            return None
        if field.kind in ("str", "list"):
            return "" if field.kind == "str" else []
        raise ConfigError(f"{field.name} is required")
    if field.kind == "bool":
        return bool(value)
    if field.kind == "list":
        items = value if isinstance(value, (list, tuple)) else re.split(r"[,\s]+", str(value))
        return [str(item).strip() for item in items if str(item).strip()]
    if field.kind == "str":
        return str(value).strip()
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field.name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{field.name} must be a finite number, got {value!r}")
    if field.kind == "int":
        if not number.is_integer():
            raise ConfigError(f"{field.name} must be a whole number, got {value!r}")
        return int(number)
    return number


def form_values(config: TrainConfig) -> dict[str, object]:
    """The form's values for ``config`` by field name: the inverse of ``config_from_form``."""
    values = {f.name: getattr(config, f.name) for f in form_fields()}
    return {name: ", ".join(v) if isinstance(v, list) else v for name, v in values.items()}


def config_from_form(values: dict[str, object], runs_dir: str | Path) -> TrainConfig:
    """A checked TrainConfig from the form's values by field name; ConfigError with the reason if unusable."""
    parsed = {f.name: _coerce(f, values[f.name]) for f in form_fields() if f.name in values}
    return config_from_fields(parsed, runs_dir)


def config_from_fields(values: dict[str, object], runs_dir: str | Path) -> TrainConfig:
    """A checked TrainConfig from typed field values, in ``runs_dir`` whatever they say: TrainConfig's own checks
    (closed choices included) and ``check_config``; ConfigError with the reason if unusable."""
    config = TrainConfig.from_dict({**values, "runs_dir": str(runs_dir)})
    check_config(config)
    return config


def config_values(config: str | dict) -> dict[str, object]:
    """A script's config as field values: YAML text (a config file's content) or a dict of TrainConfig fields.
    ConfigError, in one line, when it is neither."""
    if isinstance(config, str):
        if len(config) > MAX_CONFIG_CHARS:
            raise ConfigError(f"a config has at most {MAX_CONFIG_CHARS:,} characters, got {len(config):,}")
        try:
            config = yaml.load(config, Loader=YAML_LOADER)
        except yaml.YAMLError as error:
            raise ConfigError(f"the config is not valid YAML: {' '.join(str(error).split())}") from None
    return config_mapping(config)


def _looks_local(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or Path(ref).suffix.lower() in (".parquet", ".csv", ".jsonl")


def check_config(config: TrainConfig) -> None:
    """Refuse, before anything starts, what TrainConfig.validate cannot see: missing paths, typed-in secrets."""
    config.validate()
    for name in ("data", "tokenizer", "model"):
        ref = getattr(config, name)
        if ref and _looks_local(ref) and not Path(ref).expanduser().exists():
            raise ConfigError(f"{name} {ref}: no such file or folder")
    secrets = secret_values()
    for name, value in dataclasses.asdict(config).items():
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and secret in t for t in texts for secret in secrets):
            raise ConfigError(f"{name} holds a secret's value; secrets belong in the environment, never a config")
