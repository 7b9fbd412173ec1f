"""Every endpoint of the app by its API name, with the least role that may call it, checked on every call.

Gradio serves each event as an endpoint callable by name or by number (``fn_index``), "private" ones
included, so a check inside some handlers would leave the others open. ``GuardedBlocks`` checks the
caller's role against ``ENDPOINTS`` before any handler runs, whatever way it was called, and
``check_endpoints`` refuses to build an app with an endpoint that is not in the table (or a table
entry with no endpoint): a new event cannot ship without someone deciding who may call it.
The README's role table lists the same names; a test keeps the two equal.
"""

from __future__ import annotations

import gradio as gr

from access.roles import Permission, admins, anyone

PRIVATE = {"api_visibility": "private"}
"""For events that serve the page only: hidden from the API listing, and checked like every other."""

ENDPOINTS: dict[str, Permission] = {
    # the page
    "signed_in_line": anyone("see who is signed in"),
    # Curate: review
    "curate_identify": anyone("review"),
    "review_first_item": anyone("review"),
    "review_queue_chosen": anyone("review"),
    "review_first_item_of_queue": anyone("review"),
    "review_audit_choices": anyone("review"),
    "review_audit_chosen": anyone("review"),
    "review_first_item_of_audit": anyone("review"),
    "curate_remember_name": anyone("review"),
    "vote_injection": anyone("vote"),
    "vote_benign": anyone("vote"),
    "vote_unsure": anyone("vote"),
    "vote_skip": anyone("review"),
    "vote_undo": anyone("vote"),
    # Curate: browse
    "browse": anyone("browse"),
    "browse_previous": anyone("browse"),
    "browse_next": anyone("browse"),
    "browse_select_row": anyone("browse"),
    "browse_open_in_review": anyone("review"),
    # Curate: import
    "import_read": admins("import data"),
    "import_write": admins("import data"),
    "import_refresh": anyone("browse"),
    "browse_after_import": anyone("browse"),
    "review_first_item_after_import": anyone("review"),
    # Curate: reviewers and snapshots
    "reviewers_view": anyone("see the reviewers"),
    "snapshots_view": anyone("see the snapshots"),
    "snapshot": admins("create snapshots"),
    "push_snapshot": admins("push snapshots to the Hub"),
    "delete_snapshot_ask": admins("delete snapshots"),
    "delete_snapshot_keep": anyone("close the question"),
    "delete_snapshot_close": anyone("close the question"),
    "delete_snapshot": admins("delete snapshots"),
    "overview": anyone("see the overview"),
    # Train
    "data_choices": anyone("see the data choices"),
    "train_refresh": anyone("see the runs"),
    "saved_configs": anyone("see the saved configs"),
    "load_config": admins("load run configs"),
    "start_audit": admins("start audits"),
    "audit_run_choices": anyone("see the runs"),
    "compare_a_choices": anyone("see the runs"),
    "compare_b_choices": anyone("see the runs"),
    "compare_runs": admins("compare runs"),
    "show_command": admins("plan runs"),
    "start": admins("start runs"),
    "run_view": anyone("see the runs"),
    "run_evaluation_charts": anyone("see the runs"),
    "train_time_note": anyone("see the runs"),
    "run_pick_row": anyone("see the runs"),
    "cancel": admins("cancel runs"),
    "resume": admins("resume runs"),
    "delete_ask": anyone("open the question"),
    "delete_keep": anyone("close the question"),
    "delete": admins("delete runs"),
    "runs_table_after_delete": anyone("see the runs"),
    "runs_table": anyone("see the runs"),
    "export_run": admins("export runs"),
    "push_run": admins("push detectors to the Hub"),
    # Detect
    "detector_choices": anyone("see the detectors"),
    "detector_pick": anyone("query the detector"),
    "detector_reload_choices": anyone("see the detectors"),
    "detector_add": admins("add exported detectors"),
    "detector_load_added": anyone("query the detector"),
    "detect": anyone("query the detector"),
    "detect_prompt": anyone("query the detector"),
    "detect_rethreshold": anyone("query the detector"),
    "detect_example": anyone("query the detector"),
    "detect_batch": anyone("query the detector"),
    "detect_batch_rethreshold": anyone("query the detector"),
    "detect_histogram": anyone("query the detector"),
    "detect_batch_csv": anyone("query the detector"),
    "detect_pick_row": anyone("query the detector"),
    "send_injection": anyone("send prompts to review"),
    "send_benign": anyone("send prompts to review"),
    "send_flag": anyone("send prompts to review"),
    "detect_identify": anyone("send prompts to review"),
    "detect_remember_name": anyone("send prompts to review"),
    # The API for scripts (ui/api.py)
    "list_runs": anyone("see the runs"),
    "start_run": admins("start runs"),
    "cancel_run": admins("cancel runs"),
    "resume_run": admins("resume runs"),
    "run_metrics": anyone("see the runs"),
    "vote_example": anyone("vote"),
    "import_dataset": admins("import data"),
    "create_snapshot": admins("create snapshots"),
    # Gradio's own "Sign in with Hugging Face" button (only with STUDIO_HF_USERS)
    "_check_login_status": anyone("sign in"),
}
SIGN_IN_MODE_ONLY = {"_check_login_status"}
"""Endpoints that exist only in one sign-in mode."""


class EndpointTableError(RuntimeError):
    """The app's endpoints and ENDPOINTS differ."""


def check_endpoints(blocks: gr.Blocks) -> None:
    """Raise unless every endpoint of ``blocks`` that runs Python is in ENDPOINTS, and every entry of ENDPOINTS
    (but those of another sign-in mode) is an endpoint."""
    names = {str(fn.api_name) for fn in blocks.fns.values() if fn.fn is not None}
    unlisted = sorted(names - set(ENDPOINTS))
    stale = sorted(set(ENDPOINTS) - names - SIGN_IN_MODE_ONLY)
    if unlisted or stale:
        raise EndpointTableError(
            f"endpoints missing from ui/endpoints.py ENDPOINTS: {unlisted or 'none'}; "
            f"entries with no endpoint: {stale or 'none'}"
        )


class GuardedBlocks(gr.Blocks):
    """A Blocks whose every call passes ``role_check(request, permission)`` first (it raises to refuse)."""

    def __init__(self, role_check, **kwargs):
        super().__init__(**kwargs)
        self.role_check = role_check

    async def process_api(self, block_fn, inputs, state=None, request=None, *args, **kwargs):
        fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
        permission = ENDPOINTS.get(str(fn.api_name))
        if permission is None:
            raise gr.Error("This endpoint is not in the role table.", print_exception=False)
        for caller in request if isinstance(request, list) else [request]:  # a batched event merges callers
            self.role_check(caller, permission)
        return await super().process_api(fn, inputs, state, request, *args, **kwargs)
