"""P(injection) in one forward pass, and base ("before") vs fine-tuned ("after") from one model.

- The score is a softmax over two classes: the summed probabilities of every
  spelling of "yes" vs of "no" at the assistant's first position. One forward
  pass, no sampling, a calibrated number a user can threshold.
- Only the last position is projected onto the vocabulary: the body returns
  hidden states and the LM head sees one vector per row.
- Batches are sorted by length and left-padded, with position ids taken from
  the attention mask, so a row scores the same alone or in any batch.
- The visible answer is a short greedy continuation of the scoring pass,
  made only when asked: the scoring forward keeps its KV cache and a few
  one-token steps follow, so no prompt is run through the model twice
  (``generate()`` would prefill it again). The top next token of the scoring
  pass (``Scored.first_token``) comes free.
- ``bf16`` runs the forward passes under bf16 autocast (weights stay fp32);
  ``detector_for`` turns it on only where bf16 is native (``ft.machine``).
- "Before" is the same loaded model inside ``disable_adapter()``: no second
  copy of the base in memory. ``score_both`` gets before and after from one
  batched pass (each row's adapter chosen by PEFT's mixed-adapter batch).
  With LoRA on the top K layers only, the layers below compute the same for
  both sides: a text runs through them once and is doubled at the first
  adapted layer (its KV cache below is shared by both sides' answers).
  For one text on a frozen model (Detect), the template's part before the
  text (system turn, instruction: most of a short prompt's tokens) comes
  from a KV cache made once: only the text and what follows it run.
- ``answered_pair`` hands one text's scores over as soon as the scoring
  pass is done, then each answer as it grows: Detect shows its verdicts
  without waiting for the answers.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ft import collate, machine, models, prompt
from ft.lazy import lazy
from ft.models import decoder_and_head

torch = lazy("torch")
peft = lazy("peft")
skm = lazy("sklearn.metrics")

BASE_ADAPTER = "__base__"
"""PEFT's name for "no adapter" in a mixed-adapter batch."""


@contextlib.contextmanager
def _evaluating(model, bf16: bool = False):
    """eval(), inference_mode() (and bf16 autocast when asked) for the block, then the model's previous mode back."""
    was_training = model.training
    model.eval()
    device_type = next(model.parameters()).device.type
    try:
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            yield
    finally:
        model.train(was_training)


def _left_padded(rows: list[list[int]], pad_id: int, device) -> dict[str, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r)
        mask[i, width - len(r) :] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def _twice(value, rows: int):
    """``value`` with its ``rows`` batch rows stacked twice ([rows; rows]); a tuple item by item; anything else
    (a mask broadcast over the batch, the KV cache, None) as it is."""
    if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == rows:
        return torch.cat([value, value])
    if isinstance(value, tuple):
        return tuple(_twice(v, rows) for v in value)
    return value


@contextlib.contextmanager
def _rows_twice_from(layer: torch.nn.Module):
    """Within the block, ``layer`` (and so every layer above it) gets each row of its input twice: the hidden
    states, attention mask, position ids and rotary embeddings the decoder hands it, stacked [rows; rows]."""

    def doubled(module, args, kwargs):
        rows = args[0].shape[0]
        return tuple(_twice(a, rows) for a in args), {k: _twice(v, rows) for k, v in kwargs.items()}

    handle = layer.register_forward_pre_hook(doubled, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def _extendable(cache):
    """A KV cache to extend, over the same tensors: extending a DynamicCache concatenates into new tensors, never
    writes into the old ones, so the original stays as it was."""
    fresh = copy.copy(cache)
    fresh.layers = [copy.copy(layer) for layer in cache.layers]
    return fresh


def _cache_twice_below(cache, first_twin: int) -> None:
    """Stack the KV cache of the layers below ``first_twin`` twice, so both sides' answer steps attend to it."""
    for layer in cache.layers[:first_twin]:
        layer.keys, layer.values = torch.cat([layer.keys, layer.keys]), torch.cat([layer.values, layer.values])


@dataclass
class Scored:
    """One text's detector output; ``answer`` is None unless answers were asked for.

    ``first_token`` is the most likely next token at the answer position, decoded: the first
    token a greedy answer would start with, read off the scoring pass at no cost.
    """

    p_injection: float
    answer: str | None
    truncated: bool
    first_token: str = ""


ScoredPair = tuple[Scored, Scored | None]
"""("before", "after") for one text; "after" is None for a model without an adapter."""


class Detector:
    """Scores texts with a causal LM, with or without its LoRA adapter."""

    def __init__(self, model, tokenizer, max_length: int = 512, batch_size: int = 16, bf16: bool = False):
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.bf16 = bf16
        self._prefix: tuple | None = None
        self.yes_ids = prompt.answer_token_ids(tokenizer, prompt.YES)
        self.no_ids = prompt.answer_token_ids(tokenizer, prompt.NO)

    @property
    def has_adapter(self) -> bool:
        return isinstance(self.model, peft.PeftModel)

    def _adapter(self, on: bool):
        if on or not self.has_adapter:
            return contextlib.nullcontext()
        return self.model.disable_adapter()

    def _device(self):
        return next(self.model.parameters()).device

    def _batches(self, encoded: list[list[int]]):
        order = np.argsort([-len(r) for r in encoded], kind="stable")
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield idx, _left_padded([encoded[i] for i in idx], self.tokenizer.pad_token_id, self._device())

    def _stop_ids(self) -> torch.Tensor:
        """Token ids that end an answer: the tokenizer's eos and the model's generation eos ids."""
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids = {self.tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])}
        return torch.tensor(sorted(i for i in ids if i is not None), device=self._device())

    @functools.cached_property
    def _first_twin_layer(self) -> int:
        """The lowest decoder layer the adapter changes: ``score_both`` runs a text once below it, twice from it.

        0 (the text twice from its token ids) when the adapter changes something below the decoder layers
        (trained embeddings, say) or none of them.
        """
        from peft.tuners.tuners_utils import BaseTunerLayer
        from peft.utils.other import AuxiliaryTrainingWrapper

        body, _ = decoder_and_head(self.model)
        adapted = {id(m) for m in body.modules() if isinstance(m, (BaseTunerLayer, AuxiliaryTrainingWrapper))}
        per_layer = [adapted & {id(m) for m in layer.modules()} for layer in body.layers]
        if not adapted or adapted - set().union(*per_layer):
            return 0
        return next(i for i, ids in enumerate(per_layer) if ids)

    def _prefix_cache(self) -> tuple[list[int], object]:
        """The scoring prompt's ids before the text (the same for every text) and their KV cache for both sides,
        below ``_first_twin_layer`` once: what a one-text ``score_both`` starts from. Made again once any weight
        has been written since (an optimiser step, a loaded state dict: torch counts a tensor's in-place writes)."""
        version = sum(p._version for p in self.model.parameters())
        if self._prefix is None or self._prefix[0] != version:
            self._prefix = (version, *self._template_prefix_cache())
        return self._prefix[1:]

    def _template_prefix_cache(self) -> tuple[list[int], object]:
        a, b = collate.encode_prompts(self.tokenizer, ["a", "b"], self.max_length)[0]
        prefix = a[: next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)]
        if not prefix:
            return prefix, None
        body, _ = decoder_and_head(self.model)
        ids = torch.tensor([prefix], device=self._device())
        with self._both_sides(1), _rows_twice_from(body.layers[self._first_twin_layer]):
            out = body(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
        return prefix, out.past_key_values

    def _cached_start(self, ids: torch.Tensor) -> tuple[int, object]:
        """(how many leading tokens a cached KV covers, that cache to extend) for a one-text ``score_both`` batch
        that starts with the template's prefix; else (0, None)."""
        if len(ids) != 1:
            return 0, None
        prefix, cache = self._prefix_cache()
        if cache is None or ids.shape[1] <= len(prefix) or ids[0, : len(prefix)].tolist() != prefix:
            return 0, None
        return len(prefix), _extendable(cache)

    def _body_pass(self, batch: dict[str, torch.Tensor], use_cache: bool, both: bool) -> tuple:
        """(the body's output, attention mask, position ids) for a batch; with ``both``, every output row twice,
        [rows; rows], the copies computed apart only from ``_first_twin_layer`` up (and one text's template
        prefix read from ``_prefix_cache``)."""
        body, _ = decoder_and_head(self.model)
        mask, positions = batch["attention_mask"], _positions(batch["attention_mask"])
        if not both:
            return body(**batch, position_ids=positions, use_cache=use_cache), mask, positions
        rows, twin = len(mask), self._first_twin_layer
        if twin == 0:
            batch = {k: _twice(v, rows) for k, v in batch.items()}
            return self._body_pass(batch, use_cache, both=False)
        start, cache = self._cached_start(batch["input_ids"])
        with _rows_twice_from(body.layers[twin]):
            out = body(
                input_ids=batch["input_ids"][:, start:],
                attention_mask=mask,
                position_ids=positions[:, start:],
                past_key_values=cache,
                use_cache=use_cache or cache is not None,
            )
        if use_cache:
            _cache_twice_below(out.past_key_values, twin)
        return out, _twice(mask, rows), _twice(positions, rows)

    def _score_steps(self, batch: dict[str, torch.Tensor], answer_tokens: int, both: bool = False):
        """(P(injection), the top next-token id, each row's answer token ids so far or None) once the scoring
        pass is done, then again after every answer step; with ``both``, each row before then each row after
        (adapter off, on: ``_both_sides``).

        The answer continues from the scoring pass's KV cache, one token per step for every row
        at once; a row that reached an end-of-turn token pads the rest.
        """
        body, head = decoder_and_head(self.model)
        out, mask, positions = self._body_pass(batch, answer_tokens > 1, both)
        logits = head(out.last_hidden_state[:, -1]).float()
        p = torch.sigmoid(logits[:, self.yes_ids].logsumexp(-1) - logits[:, self.no_ids].logsumexp(-1))
        top = logits.argmax(-1)
        if not answer_tokens:
            yield p, top, None
            return
        stop, pad = self._stop_ids(), self.tokenizer.pad_token_id
        said, done = [top], torch.isin(top, stop)
        yield p, top, torch.stack(said, dim=1)
        cache, position = out.past_key_values, positions[:, -1:]
        for _ in range(answer_tokens - 1):
            if bool(done.all()):
                break
            mask, position = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1), position + 1
            out = body(
                input_ids=said[-1][:, None],
                attention_mask=mask,
                position_ids=position,
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            step = torch.where(done, pad, head(out.last_hidden_state[:, -1]).argmax(-1))
            said.append(step)
            done = done | torch.isin(step, stop)
            yield p, top, torch.stack(said, dim=1)

    def _score_batch(self, batch: dict[str, torch.Tensor], answer_tokens: int, both: bool = False) -> tuple:
        """P(injection), the top next-token id and (when ``answer_tokens``) the greedy answer text of each row:
        ``_score_steps``'s last step."""
        p, top, tokens = collections.deque(self._score_steps(batch, answer_tokens, both), maxlen=1)[0]
        return p, top, None if tokens is None else self._decoded(tokens, self._stop_ids())

    def _decoded(self, tokens: torch.Tensor, stop: torch.Tensor) -> list[str]:
        """Each row's answer text, cut at its first end-of-turn token."""
        texts, stops = [], set(stop.tolist())
        for row in tokens.tolist():
            ends = [i for i, t in enumerate(row) if t in stops]
            texts.append(self.tokenizer.decode(row[: ends[0]] if ends else row, skip_special_tokens=True).strip())
        return texts

    def score(
        self, texts: list[str], *, adapter: bool = True, answers: bool = False, max_new_tokens: int = 4
    ) -> list[Scored]:
        """P(injection) for each text (and the greedy answer when ``answers``), in input order."""
        with self._adapter(adapter):
            return self._scored(list(texts), answers, max_new_tokens)

    def score_both(
        self, texts: list[str], *, answers: bool = False, max_new_tokens: int = 4
    ) -> tuple[list[Scored], list[Scored] | None]:
        """("before", "after") for each text: the adapter off and on, from one pass through the model.

        Each text's two copies go side by side in the same batches, the first with the adapter off (PEFT's
        mixed-adapter batch, ``"__base__"``): one forward pass and one answer loop serve both sides, and the
        decoder layers below the adapter's lowest run once per text (with LoRA on the top 8 of 30 layers, a
        pair costs 38 layer passes instead of 60). Scores equal ``score(adapter=False)`` and
        ``score(adapter=True)``. "after" is None for a model without an adapter.
        """
        texts = list(texts)
        if not self.has_adapter:
            return self.score(texts, adapter=False, answers=answers, max_new_tokens=max_new_tokens), None
        both = self._scored(texts, answers, max_new_tokens, both=True)
        return both[: len(texts)], both[len(texts) :]

    def answered_pair(
        self, text: str, *, max_new_tokens: int = 4, each_step: Callable[[ScoredPair], None] | None = None
    ) -> ScoredPair:
        """``score_both([text], answers=True)``'s (before, after) for one text, handed to ``each_step`` as the
        answers grow: once the scoring pass is done (each side's answer is then its first token), then after
        every answer step. A page can show the scores and verdicts at the cost of the scoring pass alone, and
        each answer as it is written, for the same total work."""
        [ids], [cut] = collate.encode_prompts(self.tokenizer, [text], self.max_length)
        both = self.has_adapter
        stop, pair = self._stop_ids(), None
        with _evaluating(self.model, self.bf16), self._both_sides(1) if both else contextlib.nullcontext():
            [(_, batch)] = self._batches([ids])
            for p, top, tokens in self._score_steps(batch, max_new_tokens, both):
                answers = self._decoded(tokens, stop) if tokens is not None else [None] * len(p)
                sides = [
                    Scored(pi, answer, cut, self.tokenizer.decode([first]).strip())
                    for pi, answer, first in zip(p.tolist(), answers, top.tolist())
                ]
                pair = (sides[0], sides[1] if both else None)
                if each_step is not None:
                    each_step(pair)
        return pair

    def _scored(self, texts: list[str], answers: bool, max_new_tokens: int, both: bool = False) -> list[Scored]:
        """Each text's Scored, in input order; with ``both``, every text's "before" then every text's "after"."""
        encoded, cut = collate.encode_prompts(self.tokenizer, texts, self.max_length)
        sides = 2 if both else 1
        p = np.zeros((sides, len(encoded)))
        top = np.zeros((sides, len(encoded)), dtype=np.int64)
        said = np.full((sides, len(encoded)), None, dtype=object)
        with _evaluating(self.model, self.bf16):
            for idx, batch in self._batches(encoded):
                with self._both_sides(len(idx)) if both else contextlib.nullcontext():
                    p_batch, top_batch, answered = self._score_batch(batch, max_new_tokens if answers else 0, both)
                p[:, idx] = p_batch.cpu().numpy().reshape(sides, -1)
                top[:, idx] = top_batch.cpu().numpy().reshape(sides, -1)
                if answered:
                    said[:, idx] = np.array(answered, dtype=object).reshape(sides, -1)
        firsts = [self.tokenizer.decode([t]).strip() for t in top.ravel()]
        return [Scored(float(pi), a, c, f) for pi, a, c, f in zip(p.ravel(), said.ravel(), cut * sides, firsts)]

    def _both_sides(self, rows: int):
        """A mixed-adapter batch of ``rows`` rows with the adapter off, then the same rows with it on (PEFT passes
        each row's adapter name to every LoRA layer and trained module it reaches, the body and head we call
        directly included)."""
        return self.model._enable_peft_forward_hooks(
            adapter_names=[BASE_ADAPTER] * rows + [self.model.active_adapter] * rows
        )

    def probabilities(self, texts: list[str], *, adapter: bool = True) -> np.ndarray:
        return np.array([s.p_injection for s in self.score(texts, adapter=adapter)])


def classification_metrics(labels, p_injection, answers=None, threshold: float = 0.5) -> dict:
    """Accuracy, precision, recall, F1, ROC-AUC, the confusion matrix and the answers' parse rate."""
    y = np.asarray(labels, dtype=int)
    p = np.asarray(p_injection, dtype=float)
    verdict = (p >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, verdict, labels=[0, 1]).ravel()
    out = {
        "n": int(len(y)),
        "threshold": threshold,
        "accuracy": float(skm.accuracy_score(y, verdict)),
        "precision": float(skm.precision_score(y, verdict, zero_division=0)),
        "recall": float(skm.recall_score(y, verdict, zero_division=0)),
        "f1": float(skm.f1_score(y, verdict, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y, p)) if len(set(y)) == 2 else None,
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }
    if answers is not None:
        parsed = [prompt.parse_answer(a or "") for a in answers]
        out["answer_parse_rate"] = float(np.mean([v is not None for v in parsed]))
        out["answer_accuracy"] = float(np.mean([v == t for v, t in zip(parsed, y)]))
    return out


def load_detector(config, adapter_dir=None) -> Detector:
    """A Detector for ``config``'s model (a TrainConfig) with the adapter in ``adapter_dir`` attached.

    The tokenizer saved next to the adapter is used when there is one, so a run scores with the
    tokenizer it was trained with.
    """
    saved = adapter_dir is not None and (Path(adapter_dir) / "tokenizer_config.json").is_file()
    tokenizer = models.load_tokenizer(
        str(adapter_dir) if saved else config.tokenizer or models.default_tokenizer(config.model)
    )
    model = models.load_for_inference(config.model, tokenizer, adapter_dir, config.quantisation)
    return detector_for(config, model, tokenizer)


def detector_for(config, model, tokenizer) -> Detector:
    """A Detector over a loaded model, scoring as ``config`` (a TrainConfig) says (length, batch size), in the
    precision this machine runs best (``ft.machine.scoring_bf16``), whatever the run trained with."""
    return Detector(
        model,
        tokenizer,
        max_length=config.max_length,
        batch_size=config.eval_batch_size,
        bf16=machine.scoring_bf16(),
    )
