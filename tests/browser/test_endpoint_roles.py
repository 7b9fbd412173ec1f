"""Every endpoint, called by number (fn_index) the way a hand-made client would, as nobody, a reviewer, a lead
and an admin, with the app's own sample inputs (each input component's value in /config): the role table in
the README decides who gets through, and an endpoint missing from that table fails the test."""

import re
import uuid

import pytest
from helpers import TEAM, Caller, readme_role_table

from access.roles import Role
from ui.endpoints import SIGN_IN_MODE_ONLY

pytestmark = pytest.mark.browser
REFUSED = re.compile(r"Only an? (lead|admin) can ")


def sample_inputs(config: dict, dependency: dict) -> list:
    """Each input component's own value as the page was served (None for state kept on the server), but the
    tiny base model where the page offers a real one: the role check comes before the handler either way, and
    loading SmolLM2 and scoring its example prompts would add half a minute."""
    props = {c["id"]: c.get("props", {}) for c in config["components"]}
    values = [props.get(i, {}).get("value") for i in dependency["inputs"]]
    return ["base:tiny" if isinstance(v, str) and v.startswith("base:") else v for v in values]


def refusal(message: dict) -> str | None:
    error = (message.get("output") or {}).get("error") or ""
    return error if REFUSED.search(error) else None


@pytest.fixture(scope="module")
def served(team_app) -> tuple[dict, list[dict]]:
    """/config as a signed-in page gets it, and its dependencies that run Python (all of them here)."""
    # the calls carry placeholder values (None) that some handlers cannot take: only the role is judged here
    team_app.expected_errors.append("TypeError: 'NoneType' object is not subscriptable")
    admin = Caller(team_app.url)
    admin.sign_in("boss", TEAM["boss"][0])
    config = admin.config()
    return config, [d for d in config["dependencies"] if d.get("backend_fn")]


def test_every_endpoint_is_in_the_readme_role_table(served):
    _, dependencies = served
    served_names = {d["api_name"] for d in dependencies}
    table = readme_role_table()
    assert served_names - set(table) == set(), "endpoints the README's role table does not list"
    assert set(table) - served_names - SIGN_IN_MODE_ONLY == set(), "README rows for endpoints the app lacks"


def test_nobody_can_call_any_endpoint(team_app, served):
    _, dependencies = served
    nobody = Caller(team_app.url)
    assert nobody.status("/config") == 401
    for dependency in dependencies:
        body = {"data": [], "fn_index": dependency["id"], "session_hash": uuid.uuid4().hex}
        assert nobody.status("/gradio_api/queue/join", body) == 401, dependency["api_name"]


@pytest.mark.parametrize("name, role", [("rev", Role.REVIEWER), ("lee", Role.LEAD), ("boss", Role.ADMIN)])
def test_each_role_gets_exactly_what_the_table_allows(team_app, served, name, role):
    config, dependencies = served
    caller = Caller(team_app.url)
    caller.sign_in(name, TEAM[name][0])
    table = readme_role_table()
    wrongly_refused, wrongly_allowed = [], []
    for dependency in sorted(dependencies, key=lambda d: table[d["api_name"]]):
        needed = table[dependency["api_name"]]
        if role == Role.ADMIN and needed == Role.ADMIN and dependency["api_name"] in ADMIN_CALLS_NOT_MADE:
            continue
        refused = refusal(caller.call(dependency["id"], sample_inputs(config, dependency)))
        if needed > role and not refused:
            wrongly_allowed.append(dependency["api_name"])
        if needed <= role and refused:
            wrongly_refused.append((dependency["api_name"], refused))
    assert wrongly_allowed == [], f"{name} ({role.label}) was let through"
    assert wrongly_refused == [], f"{name} ({role.label}) was refused"


ADMIN_CALLS_NOT_MADE = {"start", "start_audit"}
"""An admin's sample call of these would queue a real training run in the background of the test."""
