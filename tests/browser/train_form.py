"""The Train tab's config form, as the browser tests fill it."""
import re

from playwright.sync_api import expect

from conftest import TOKENIZER_DIR


def field(page, name):
    """The input of the config field ``name`` (its label starts with the name; help text follows)."""
    return page.get_by_label(re.compile(rf"^\s*{re.escape(name)}\b")).first


def pick(page, dropdown, option):
    dropdown.click()
    page.get_by_role("option", name=option).first.click()


def choose_tiny_model(page):
    """The tiny preset with the offline tokenizer, no tracker: the form opens on this machine's recipe
    (SmolLM2, wandb), and the tests want a seconds-long run."""
    model = field(page, "model")
    model.fill("tiny")
    model.press("Enter")
    expect(model).to_have_value("tiny")
    pick(page, field(page, "tracker"), re.compile(r"^none$"))
    field(page, "tokenizer").fill(str(TOKENIZER_DIR))
    field(page, "modules_to_save").fill("embed_tokens, lm_head")
    field(page, "gradient_checkpointing").uncheck()
