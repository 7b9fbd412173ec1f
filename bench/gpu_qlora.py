"""QLoRA on a Qwen2.5-1.5B-shaped model on one GPU: throughput, memory, loss, cheap vs full loss.

    python bench/gpu_qlora.py [--steps 50] [--batch-size 4] [--max-length 512]

The model has Qwen2.5-1.5B-Instruct's architecture and random weights (no
download): it measures speed and memory of the real code path (4-bit NF4,
double quantisation, bf16 compute, paged 8-bit AdamW, non-reentrant gradient
checkpointing, LoRA on every linear layer), not accuracy. It trains through
``ft.train.train`` on the real data and prints tokens/s, peak GPU memory and
the loss curve, then one forward+backward on the longest rows with the
answer-only loss and with the full-logits loss, peak memory of each.
Needs CUDA and bitsandbytes; CI never runs it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import transformers  # noqa: E402

from ft import collate, models  # noqa: E402
from ft.config import TrainConfig
from ft.data import load_training_data  # noqa: E402
from ft.train import answer_loss, train  # noqa: E402

SHARED = ROOT.parent / "shared"
TOKENIZER = SHARED / "tokenizers" / "qwen2.5"
DATA = SHARED / "data" / "safe-guard"


def random_qwen_1_5b(tokenizer, folder: Path) -> Path:
    config = transformers.Qwen2Config(
        **models.QWEN25_15B_SHAPE, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
    )
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    return folder


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30


def qlora_run(checkpoint: Path, steps: int, batch_size: int, max_length: int, runs: Path) -> None:
    paths = {"model": str(checkpoint), "tokenizer": str(TOKENIZER), "data": str(DATA), "runs_dir": str(runs)}
    steps_and_sizes = {
        "max_steps": steps,
        "batch_size": batch_size,
        "gradient_accumulation": 1,
        "max_length": max_length,
    }
    config = TrainConfig.from_dict({**paths, **steps_and_sizes, "quantisation": "4bit", "tracker": "none",
                                    "warmup_steps": 5, "logging_steps": 5, "save_steps": 10_000,
                                    "prediction_samples": 16, "max_test_rows": 256})  # fmt: skip
    torch.cuda.reset_peak_memory_stats()
    run = train(config, run_id="gpu-qlora")
    logs = [m for m in run.read_metrics() if m["kind"] == "log"]
    summary = next(m for m in logs if "train_runtime" in m)
    losses = [(m["step"], round(m["loss"], 3)) for m in logs if "loss" in m]
    rows = collate.encode_examples(models.load_tokenizer(str(TOKENIZER)), *_train_columns(), max_length)
    tokens = steps * batch_size * sum(len(r["input_ids"]) for r in rows) / len(rows)
    print(f"[qlora] {steps} steps, batch {batch_size}, max_length {max_length}")
    print(f"  tokens/s (real tokens, mean row)  {tokens / summary['train_runtime']:10.0f}")
    print(f"  steps/s                           {summary['train_steps_per_second']:10.2f}")
    print(f"  peak GPU memory                   {peak_gib():10.2f} GiB")
    print(f"  loss (step, value)                {losses}")


def _train_columns():
    frame = load_training_data(str(DATA))["train"]
    return frame["text"].tolist(), frame["label"].tolist()


def loss_memory(checkpoint: Path, batch_size: int, max_length: int) -> None:
    tokenizer = models.load_tokenizer(str(TOKENIZER))
    model = models.load_for_training(str(checkpoint), tokenizer, quantisation="4bit")
    model.train()
    texts, labels = _train_columns()
    longest = sorted(zip(texts, labels), key=lambda t: -len(t[0]))[:batch_size]
    rows = collate.encode_examples(tokenizer, [t for t, _ in longest], [y for _, y in longest], max_length)
    batch = {k: v.cuda() for k, v in collate.RightPadCollator(tokenizer.pad_token_id)(rows).items()}
    print(f"[loss memory] one forward+backward, {batch_size} rows x {batch['input_ids'].shape[1]} tokens")
    for name, loss_fn in (
        ("full logits", lambda: model(**batch).loss),
        ("answer-only", lambda: answer_loss(model, batch)),
    ):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        loss_fn().backward()
        model.zero_grad(set_to_none=True)
        print(f"  {name:12s} peak {peak_gib():6.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_qlora: no CUDA device here; this benchmark needs one.")
        return
    print(f"device: {torch.cuda.get_device_name()}")
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = models.load_tokenizer(str(TOKENIZER))
        checkpoint = random_qwen_1_5b(tokenizer, Path(scratch) / "qwen2.5-1.5b-random")
        qlora_run(checkpoint, args.steps, args.batch_size, args.max_length, Path(scratch) / "runs")
        loss_memory(checkpoint, args.batch_size, args.max_length)


if __name__ == "__main__":
    main()
