"""The role table in code (ui/endpoints.py) is the README's, and an app with an endpoint outside it does not
build."""

import gradio as gr
import pytest
from helpers import readme_role_table

from access.roles import ADJUDICATE, Role, admins, anyone
from ui.endpoints import ENDPOINTS, EndpointTableError, check_endpoints


def test_the_readme_lists_every_endpoint_with_its_role():
    assert readme_role_table() == {name: permission.role for name, permission in ENDPOINTS.items()}


def test_an_endpoint_missing_from_the_table_stops_the_build():
    with gr.Blocks() as blocks:
        gr.Button().click(lambda: None, api_name="not_in_the_table")
    with pytest.raises(EndpointTableError, match="not_in_the_table"):
        check_endpoints(blocks)


def test_refusals_name_the_role_needed_and_the_callers():
    assert admins("start runs").refusal(Role.REVIEWER) == (
        "Only an admin can start runs; you are signed in as a reviewer."
    )
    assert ADJUDICATE.refusal(Role.REVIEWER) == "Only a lead can adjudicate; you are signed in as a reviewer."
    assert ADJUDICATE.refusal(Role.LEAD) is None and ADJUDICATE.refusal(Role.ADMIN) is None
    assert anyone("vote").refusal(None) == "Only a reviewer can vote; you are not signed in."
