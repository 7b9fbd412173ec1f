"""What every tab is given: the data directory, the open label store, the run queue, the detector, who may do
what. app.py builds these services once (the composition root); the tabs only use them."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from access.hub_login import HubUsers
from access.paths import PathError, checked_reference
from access.roles import Permission, Role
from access.users import Users
from curation.store import LabelStore
from runner.queue import JobManager
from serving.service import DetectorService


def page_error(message: object) -> gr.Error:
    """An error for the page and the API. Gradio renders an error's message as (sanitised) HTML, and messages
    can quote dataset text or file contents, so the message is escaped to show as the text it is."""
    return gr.Error(html.escape(str(message), quote=False), print_exception=False)


def reviewer_name_state() -> gr.BrowserState:
    """The reviewer name kept in the browser, one for the Curate and Detect tabs. A fixed secret, because
    Gradio otherwise draws one per component and start, so neither tab could read the other's name and a
    restart would forget it; the name is no secret."""
    return gr.BrowserState("", storage_key="injection-studio-reviewer", secret="injection-studio-reviewer")


def name_box(saved: str, request: gr.Request | None, login_label: str | None = None) -> gr.Textbox:
    """A reviewer-name box's value on page load: the login name, fixed, when signed in; else the name saved in
    this browser, editable."""
    name = getattr(request, "username", None)
    if name:
        return gr.Textbox(value=name, interactive=False, **({"label": login_label} if login_label else {}))
    return gr.Textbox(value=saved or "")


@dataclass
class Studio:
    data_dir: Path
    store: LabelStore
    jobs: JobManager
    """The run queue of runs_dir. Its scheduler is started and stopped by whoever opened the studio (app.py)."""
    detector: DetectorService
    """The one model of this process (Detect, and Compare and Export run through its lock)."""
    demo: bool = False
    """True when the app started on the bundled demo dataset (no data of its own yet)."""
    users: Users | HubUsers | None = None
    """Who may sign in (passwords or Hugging Face accounts); None for a single local user, who may do everything."""
    allowed_roots: list[Path] = field(default_factory=list)
    """Folders a typed path may point into, besides the data directory."""
    access_note: str = ""
    """One line for the page: who may sign in, or that nobody needs to."""

    @property
    def runs_dir(self) -> Path:
        """Training runs (the job queue's folder)."""
        return self.jobs.runs_dir

    @property
    def roots(self) -> list[Path]:
        return [self.data_dir, *self.allowed_roots]

    def role_of(self, request: gr.Request | None) -> Role | None:
        """The caller's role: admin without sign-in (one local user), else the signed-in user's, else None."""
        if self.users is None:
            return Role.ADMIN
        role = self.users.role(getattr(request, "username", None))
        return Role.named(role) if role else None

    def signed_in_line(self, request: gr.Request | None) -> str:
        """Who this page is signed in as, with the role; empty when there is no sign-in.

        Names are restricted to letters, digits and ``_ . @ -``, so the code span cannot be broken out of.
        """
        name = getattr(request, "username", None)
        if self.users is None or not name:
            return ""
        return f"Signed in as `{name}` ({self.users.role(name)})"

    def require(self, request: gr.Request | None, permission: Permission) -> None:
        """Raise a page error unless the caller (page or API) may take ``permission``'s action."""
        refusal = permission.refusal(self.role_of(request))
        if refusal:
            raise page_error(refusal)

    def checked_reference(self, ref: str) -> str:
        """A typed path made absolute inside the allowed roots, or a Hub id; a page error otherwise."""
        try:
            return checked_reference(ref, self.roots)
        except PathError as error:
            raise page_error(str(error)) from None

    def checked_config_paths(self, values: dict) -> dict:
        """A run config's values by field name, its typed paths (data, model, tokenizer) checked against the
        allowed folders before anything looks at the disk, so that no answer tells whether a path outside
        them exists; a page error otherwise. The Train form's Start and the API's /start_run both pass here."""
        checked = dict(values)
        for name in ("data", "model", "tokenizer"):
            if isinstance(checked.get(name), str) and checked[name].strip():
                checked[name] = self.checked_reference(checked[name])
        return checked
