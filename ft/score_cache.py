"""Base-model ("before") scores computed once per base model, prompt and data, then reused.

The base model's P(injection) for a text depends only on the base weights, the
tokenizer, the prompt, ``max_length``, the yes/no token ids, the precision and
the quantisation: never on a run's adapter or training data. Every run on the
same base and test split would otherwise rescore the same rows (several CPU
minutes for the safe-guard test split). Scores are kept per text list as a
parquet file under ``$HF_HOME/studio-scores/<key>.parquet``, written
atomically; any change to what goes into the key makes a new file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from ft import prompt
from ft.detector import Detector, Scored


def _cache_dir() -> Path:
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "studio-scores"


def texts_sha256(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        encoded = text.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
    return digest.hexdigest()


def vocabulary_sha256(tokenizer) -> str:
    """The tokenizer by its content, not by where it was loaded from: each run saves a copy of the base's
    tokenizer beside its adapter, and runs on the same base must share one cache entry."""
    return hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()


def base_scores_key(detector: Detector, base_identity: str, texts: list[str], answers: str) -> str:
    """The cache key: everything the base model's scores for ``texts`` depend on."""
    tokenizer = detector.tokenizer
    spec = {
        "base": base_identity,
        "tokenizer": [vocabulary_sha256(tokenizer), tokenizer.pad_token_id],
        "chat_template": hashlib.sha256(str(tokenizer.chat_template).encode()).hexdigest(),
        "prompt": [prompt.SYSTEM_LINE, prompt.QUESTION],
        "answer_ids": [detector.yes_ids, detector.no_ids],
        "max_length": detector.max_length,
        "bf16": detector.bf16,
        "answers": answers,
        "texts": texts_sha256(texts),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


def _read(path: Path, n: int) -> list[Scored] | None:
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError):
        return None
    if len(frame) != n:
        return None
    return [
        Scored(float(r.p_injection), r.answer, bool(r.truncated), r.first_token) for r in frame.itertuples(index=False)
    ]


def _write(path: Path, scored: list[Scored]) -> None:
    frame = pd.DataFrame(
        {
            "p_injection": [s.p_injection for s in scored],
            "answer": [s.answer for s in scored],
            "truncated": [s.truncated for s in scored],
            "first_token": [s.first_token for s in scored],
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def base_scores(
    detector: Detector, base_identity: str, texts: list[str], *, answers: str = "first_token"
) -> tuple[list[Scored], bool]:
    """The base model's scores for ``texts`` (adapter off) and whether they came from the cache.

    ``answers`` is "generate" (a greedy answer per row) or "first_token" (no generation).
    """
    path = _cache_dir() / f"{base_scores_key(detector, base_identity, texts, answers)}.parquet"
    cached = _read(path, len(texts)) if path.exists() else None
    if cached is not None:
        return cached, True
    scored = detector.score(texts, adapter=False, answers=answers == "generate")
    _write(path, scored)
    return scored, False
