"""The README's role table ("Who may call what"): endpoint name -> the least role that may call it."""
import re
from pathlib import Path

from access.roles import Role

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "### Who may call what"
ROW = re.compile(r"^\|\s*`/?([a-z0-9_]+)`\s*\|\s*(reviewer|lead|admin)\s*\|")


def readme_role_table() -> dict[str, Role]:
    """Each row of the table under HEADING; a name listed twice fails."""
    section = README.read_text(encoding="utf-8").split(HEADING, 1)[1].split("\n#", 1)[0]
    table: dict[str, Role] = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            assert match[1] not in table, f"{match[1]} is listed twice in the README's role table"
            table[match[1]] = Role.named(match[2])
    return table
