"""The one place that knows the detector's chat prompt and its yes/no words.

Every other module renders prompts through these functions, so the words the
model is trained on and the words it is scored on can never drift apart.
"""

from __future__ import annotations

import re

SYSTEM_LINE = "You reply with just yes or no"
QUESTION = "Is the following a prompt injection attempt. "
YES, NO = "yes", "no"

# Spellings the base model may use for its first answer token; scoring sums them.
_ANSWER_VARIANTS = ("{w}", "{W}", " {w}", " {W}", "{WW}", " {WW}")
_FIRST_WORD = re.compile(r"\W*(yes|no)\b")


def answer_word(label: int) -> str:
    """The assistant's answer for a 0/1 label."""
    return YES if int(label) == 1 else NO


def messages(text: str, label: int | None = None) -> list[dict]:
    """System, user and (for training) assistant turns for one example."""
    turns = [
        {"role": "system", "content": SYSTEM_LINE},
        {"role": "user", "content": QUESTION + text},
    ]
    if label is not None:
        turns.append({"role": "assistant", "content": answer_word(label)})
    return turns


def render_prompt(tokenizer, text: str) -> str:
    """The scoring prompt: the conversation up to the assistant's first token."""
    return tokenizer.apply_chat_template(messages(text), tokenize=False, add_generation_prompt=True)


def render_conversation(tokenizer, text: str, label: int) -> str:
    """The training text: prompt plus the assistant's answer and end-of-turn."""
    return tokenizer.apply_chat_template(messages(text, label), tokenize=False)


def end_of_turn_id(tokenizer) -> int:
    """The token that closes the assistant's turn (``<|im_end|>`` for Qwen)."""
    return tokenizer.convert_tokens_to_ids(tokenizer.eos_token)


def answer_token_ids(tokenizer, word: str) -> list[int]:
    """Token ids of every spelling of ``word`` ("yes" -> yes, Yes, " yes", YES...) that is one whole token.

    A spelling the tokenizer splits is left out rather than represented by its first piece:
    SmolLM2 splits "YES" into "Y" + "ES", and "Y" starts many words that are not a yes.
    """
    spellings = {v.format(w=word, W=word.capitalize(), WW=word.upper()) for v in _ANSWER_VARIANTS}
    encoded = [tokenizer.encode(s, add_special_tokens=False) for s in spellings]
    ids = {e[0] for e in encoded if len(e) == 1}
    if not ids:
        raise ValueError(f"the tokenizer has no single token for any spelling of {word!r}")
    return sorted(ids)


def parse_answer(answer: str) -> int | None:
    """1 for a yes, 0 for a no, None when the text is neither (the base model rambles)."""
    match = _FIRST_WORD.match(answer.lower())
    if match is None:
        return None
    return 1 if match.group(1) == YES else 0
