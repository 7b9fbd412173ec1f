"""TrainConfig's field metadata: every field's form section, help and choices, and the form made from them."""

import dataclasses

import pytest
from transformers.trainer_utils import SchedulerType
from transformers.training_args import OptimizerNames

from ft.config import (
    APP_OWNED,
    LR_SCHEDULERS,
    OPTIMISERS,
    PRESETS,
    SECTIONS,
    ConfigError,
    TrainConfig,
    default_preset,
)
from runner.forms import config_from_form, form_fields, form_values


def test_every_field_has_a_known_section_and_a_help_line():
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["section"] in (*SECTIONS, APP_OWNED), f.name
        assert f.metadata["help"].strip(), f.name


def test_the_listed_choices_are_transformers_own():
    assert tuple(s.value for s in SchedulerType) == LR_SCHEDULERS
    assert ("auto", *(o.value for o in OptimizerNames)) == OPTIMISERS


def test_the_form_is_the_metadata_in_field_order_without_the_app_owned_fields():
    fields = form_fields()
    assert [f.name for f in fields] == [f.name for f in dataclasses.fields(TrainConfig) if f.name != "runs_dir"]
    by_name = {f.name: f for f in fields}
    assert by_name["model"].choices == tuple(PRESETS) and by_name["model"].open_choices
    assert by_name["optim"].choices == OPTIMISERS and not by_name["optim"].open_choices
    assert by_name["lora_r"].choices == () and by_name["lora_r"].section == "Model"
    assert list(dict.fromkeys(f.section for f in fields)) == list(SECTIONS)


def test_a_closed_choice_outside_its_list_is_refused_with_the_list(tmp_path):
    values = {**form_values(TrainConfig(model="tiny", data=str(tmp_path))), "optim": "sgd-ish"}
    with pytest.raises(ConfigError, match="optim must be one of auto, adamw_torch"):
        config_from_form(values, tmp_path / "runs")


def test_the_default_model_is_smollm2_without_cuda_and_qwen_with_it(monkeypatch):
    monkeypatch.setattr("ft.config.cuda_device_count", lambda: 0)
    assert default_preset() == TrainConfig().model == "smollm2-135m"
    monkeypatch.setattr("ft.config.cuda_device_count", lambda: 1)
    assert default_preset() == TrainConfig().model == "qwen2.5-1.5b"
