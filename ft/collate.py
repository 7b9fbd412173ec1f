"""Training examples and batches: answer-only labels, query truncation, dynamic padding.

- The prompt/answer boundary is the token length of the rendered scoring prompt
  (``add_generation_prompt=True``), checked to be a prefix of the rendered
  conversation. No searching for the word "assistant": a query or an answer
  containing it cannot move the boundary.
- Learned tokens: the answer and the closing end-of-turn token, so the model
  learns to stop. Everything after the end-of-turn (the template's newline) is
  dropped; prompt and padding positions get -100.
- Over-long rows lose the tail of their query, never the answer.
- Padding is on the right and masked by position, never by token id (Qwen's pad
  ``<|endoftext|>`` and eos ``<|im_end|>`` differ, but no code relies on that).
- ``LengthGroupedBatchSampler`` batches rows of similar length so dynamic
  padding wastes little, while batch order stays random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ft import prompt
from ft.lazy import lazy

torch = lazy("torch")

IGNORE = -100
# Room left when cutting a query: re-tokenising decoded text can merge or split a token or two.
_CUT_MARGIN = 4


class TemplateError(ValueError):
    """The chat template does not render the scoring prompt as a prefix of the conversation."""


def _ids(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def _shorten_query(tokenizer, text: str, n_tokens_to_cut: int) -> str:
    query = _ids(tokenizer, [text])[0]
    keep = max(0, len(query) - n_tokens_to_cut - _CUT_MARGIN)
    return tokenizer.decode(query[:keep])


def _fit_prompt(tokenizer, text: str, prompt_ids: list[int], room: int) -> tuple[str, list[int]]:
    """Cut the query's tail until the rendered prompt is at most ``room`` tokens."""
    while len(prompt_ids) > room:
        if not text:
            raise ValueError(f"max_length leaves no room for the prompt ({len(prompt_ids)} tokens without a query)")
        text = _shorten_query(tokenizer, text, len(prompt_ids) - room)
        prompt_ids = _ids(tokenizer, [prompt.render_prompt(tokenizer, text)])[0]
    return text, prompt_ids


def encode_prompts(tokenizer, texts: list[str], max_length: int) -> tuple[list[list[int]], list[bool]]:
    """Scoring-prompt ids for each text, at most ``max_length`` long, and whether its query was cut."""
    encoded, cut = [], []
    for text, ids in zip(texts, _ids(tokenizer, [prompt.render_prompt(tokenizer, t) for t in texts])):
        _, fitted = _fit_prompt(tokenizer, text, ids, max_length)
        encoded.append(fitted)
        cut.append(len(fitted) < len(ids))
    return encoded, cut


def _learned_tokens(tokenizer, prompt_ids: list[int], full: list[int]) -> list[int]:
    """The answer and end-of-turn ids that follow ``prompt_ids`` in the rendered conversation ``full``."""
    if full[: len(prompt_ids)] != prompt_ids:
        raise TemplateError("the rendered prompt is not a prefix of the rendered conversation")
    answer = full[len(prompt_ids) :]
    end_of_turn = prompt.end_of_turn_id(tokenizer)
    if end_of_turn not in answer:
        raise TemplateError("the chat template does not close the assistant turn with the eos token")
    return answer[: answer.index(end_of_turn) + 1]


def encode_examples(tokenizer, texts: list[str], labels: list[int], max_length: int) -> list[dict]:
    """Token ids and answer-only labels for each (text, label), each at most ``max_length`` long."""
    prompts = _ids(tokenizer, [prompt.render_prompt(tokenizer, t) for t in texts])
    fulls = _ids(tokenizer, [prompt.render_conversation(tokenizer, t, y) for t, y in zip(texts, labels)])
    rows = []
    for text, label, prompt_ids, full in zip(texts, labels, prompts, fulls):
        answer = _learned_tokens(tokenizer, prompt_ids, full)
        if len(prompt_ids) + len(answer) > max_length:
            text, prompt_ids = _fit_prompt(tokenizer, text, prompt_ids, max_length - len(answer))
            full = _ids(tokenizer, [prompt.render_conversation(tokenizer, text, label)])[0]
            answer = _learned_tokens(tokenizer, prompt_ids, full)
        rows.append({"input_ids": prompt_ids + answer, "labels": [IGNORE] * len(prompt_ids) + answer})
    return rows


@dataclass
class RightPadCollator:
    """Pads a list of encoded rows to the longest in the batch (right side)."""

    pad_id: int

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            input_ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            attention[i, :n] = 1
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


class LengthGroupedBatchSampler:
    """Random batches of rows with similar lengths.

    Each epoch shuffles the rows, cuts them into mega-batches of
    ``batch_size * group`` rows, sorts each mega-batch by length, slices it into
    batches and shuffles the batch order. ``group`` trades padding (bigger is
    tighter) against randomness (smaller mixes lengths more).
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, group: int = 64):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group = group
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(len(self.lengths))
        mega = self.batch_size * self.group
        batches = []
        for start in range(0, len(order), mega):
            chunk = order[start : start + mega]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        for b in rng.permutation(len(batches)):
            yield batches[b]


def padding_efficiency(lengths: list[int], batches: list[list[int]], pad_to: int | None = None) -> float:
    """Real tokens / padded tokens for ``batches`` of row indices (padded to the longest, or to ``pad_to``)."""
    lengths = np.asarray(lengths)
    real = sum(int(lengths[b].sum()) for b in batches)
    padded = sum(len(b) * (pad_to or int(lengths[b].max())) for b in batches)
    return real / padded
