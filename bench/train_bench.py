"""Benchmarks of the detector core, each measured side by side in one run, printed as figures.

    python bench/train_bench.py [--run runs/<id>] [--steps 20]

1. Padding efficiency (real tokens / padded tokens) over the training split:
   length-grouped batches vs random batches vs random batches padded to 512.
2. Per-step time (forward + backward) on the tiny preset: the answer-only
   loss vs the model's full-logits loss, same batches.
3. Scoring the test prompts: ``generate(max_new_tokens=5)`` in dataset order
   at the article's batch size (4), vs one forward pass on length-sorted
   batches (ft.detector) at that batch size and at the run's own
   ``eval_batch_size``; wall time and verdict agreement. Uses a trained run
   (``--run``) or trains a short tiny run first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from ft import collate, models, prompt  # noqa: E402
from ft.config import TrainConfig
from ft.detector import Detector, _left_padded  # noqa: E402
from ft.train import answer_loss, train  # noqa: E402

SHARED = ROOT.parent / "shared"
DATA = SHARED / "data" / "safe-guard"
TOKENIZER = SHARED / "tokenizers" / "qwen2.5"


def padding(tokenizer, train: pd.DataFrame, batch_size: int, max_length: int) -> None:
    rows = collate.encode_examples(tokenizer, train["text"].tolist(), train["label"].tolist(), max_length)
    lengths = [len(r["input_ids"]) for r in rows]
    grouped = list(collate.LengthGroupedBatchSampler(lengths, batch_size, seed=0))
    order = np.random.default_rng(0).permutation(len(lengths))
    random_batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    eff = collate.padding_efficiency
    print(f"[padding] {len(rows)} rows, batch {batch_size}, max_length {max_length}")
    print(f"  length-grouped       {eff(lengths, grouped):.3f}")
    print(f"  random batches       {eff(lengths, random_batches):.3f}")
    print(f"  random, pad to 512   {eff(lengths, random_batches, pad_to=512):.3f}")


def _step_seconds(model, batches, loss_fn) -> float:
    times = []
    for batch in batches:
        started = time.perf_counter()
        loss_fn(model, batch).backward()
        model.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def step_time(tokenizer, train: pd.DataFrame, steps: int, batch_size: int, max_length: int) -> None:
    model = models.load_for_training(
        "tiny",
        tokenizer,
        quantisation="none",
        lora_dropout=0.0,
        modules_to_save=("embed_tokens", "lm_head"),
        gradient_checkpointing=False,
    )
    model.train()
    rows = collate.encode_examples(
        tokenizer,
        train["text"].tolist()[: steps * batch_size],
        train["label"].tolist()[: steps * batch_size],
        max_length,
    )
    pad = collate.RightPadCollator(tokenizer.pad_token_id)
    batches = [pad(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
    cheap = _step_seconds(model, batches, lambda m, b: answer_loss(m, b))
    full = _step_seconds(model, batches, lambda m, b: m(**b).loss)
    tokens = statistics.mean(b["input_ids"].numel() for b in batches)
    print(
        f"[step time] tiny preset, {len(batches)} batches of {batch_size} (~{tokens:.0f} padded tokens), "
        "median forward+backward"
    )
    print(f"  full logits     {full * 1000:8.1f} ms")
    print(f"  answer-only     {cheap * 1000:8.1f} ms")
    print(f"  speed-up        {full / cheap:8.1f}x")


def _article_generate(model, tokenizer, texts: list[str], batch_size: int, max_length: int) -> list[str]:
    """The article's way: batches in dataset order, left padding, generate 5 tokens, decode."""
    encoded, _ = collate.encode_prompts(tokenizer, texts, max_length)
    answers = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            batch = _left_padded(encoded[start : start + batch_size], tokenizer.pad_token_id, model.device)
            out = model.generate(
                **batch, max_new_tokens=5, do_sample=False, num_beams=1, pad_token_id=tokenizer.pad_token_id
            )
            answers += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return answers


def _trained_run(tokenizer) -> Path:
    config = TrainConfig.from_yaml(ROOT / "configs" / "tiny-cpu.yaml")
    config.max_train_rows, config.tracker = 3000, "none"
    config.runs_dir = tempfile.mkdtemp(prefix="bench-runs-")
    print("[scoring] training a 3,000-row tiny run first ...", flush=True)
    return train(config, run_id="bench").path


def _forward_seconds(detector: Detector, texts: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    p = detector.probabilities(texts)
    return time.perf_counter() - started, p


def scoring(tokenizer, test: pd.DataFrame, run: Path | None, article_batch_size: int) -> None:
    run = run or _trained_run(tokenizer)
    config = TrainConfig.from_yaml(run / "config.yaml")
    model = models.load_for_inference(config.model, tokenizer, run / "adapter", quantisation=config.quantisation)
    texts = test["text"].tolist()
    started = time.perf_counter()
    answers = _article_generate(model, tokenizer, texts, article_batch_size, config.max_length)
    generate = time.perf_counter() - started
    same_batch, _ = _forward_seconds(Detector(model, tokenizer, config.max_length, article_batch_size), texts)
    forward, p = _forward_seconds(Detector(model, tokenizer, config.max_length, config.eval_batch_size), texts)
    scored = (p >= 0.5).astype(int)
    parsed = [prompt.parse_answer(a) for a in answers]
    same = np.mean([v == s for v, s in zip(parsed, scored)])
    print(f"[scoring] {len(texts)} test prompts, run {run.name}, max_length {config.max_length}")
    print(f"  generate(5), dataset order, batch {article_batch_size:<3d}       {generate:7.2f} s   (the article)")
    print(
        f"  one forward pass, sorted, batch {article_batch_size:<3d}         {same_batch:7.2f} s   "
        f"{same_batch / generate:5.2f}x"
    )
    print(
        f"  one forward pass, sorted, batch {config.eval_batch_size:<3d}         {forward:7.2f} s   "
        f"{forward / generate:5.2f}x   (the app's setting)"
    )
    print(f"  same verdicts (P>=0.5 vs parsed answer)     {same:7.3f}   ({int(round(same * len(texts)))}/{len(texts)})")
    print(f"  accuracy (forward pass)                     {np.mean(scored == test['label'].to_numpy()):7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run to score with (default: train a short one)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16, help="training batch size (padding, step time)")
    parser.add_argument("--article-batch-size", type=int, default=4, help="the article's generation batch")
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args()
    torch.manual_seed(0)
    tokenizer = models.load_tokenizer(str(TOKENIZER))
    train_split = pd.read_parquet(DATA / "train.parquet")
    test_split = pd.read_parquet(DATA / "test.parquet")
    padding(tokenizer, train_split, args.batch_size, args.max_length)
    step_time(tokenizer, train_split.sample(frac=1, random_state=0), args.steps, args.batch_size, args.max_length)
    scoring(tokenizer, test_split, args.run, args.article_batch_size)


if __name__ == "__main__":
    main()
