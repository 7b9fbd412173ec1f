"""Roles and what each may do: the one place that decides whether a caller may take an action.

Three roles, each allowed what the one before it is, and more:

- ``reviewer``: label (vote, undo, send a prompt to review), browse, query the detector, read runs.
- ``lead``: also adjudicate (a vote that decides the label over the team's majority).
- ``admin``: also import data (imports may read private Hub datasets with the server's token), create,
  push and delete snapshots, start, cancel, resume, delete and compare runs, start label audits.

Without sign-in the app listens on this machine only and its one user is an admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Role(IntEnum):
    REVIEWER = 1
    LEAD = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def named(cls, name: str) -> Role:
        """The role spelled ``name`` (reviewer, lead, admin); ValueError otherwise."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"role {name!r} is not one of {', '.join(ROLE_NAMES)}") from None


ROLE_NAMES = tuple(role.label for role in Role)


@dataclass(frozen=True)
class Permission:
    """An action and the least role that may take it."""

    role: Role
    action: str
    """Says what is refused: 'Only an admin can {action}'."""

    def refusal(self, caller: Role | None) -> str | None:
        """Why ``caller`` may not take this action, or None when it may."""
        if caller is not None and caller >= self.role:
            return None
        article = "an" if self.role.label[0] in "aeiou" else "a"
        held = f"you are signed in as a {caller.label}" if caller is not None else "you are not signed in"
        return f"Only {article} {self.role.label} can {self.action}; {held}."


def anyone(action: str) -> Permission:
    return Permission(Role.REVIEWER, action)


def leads(action: str) -> Permission:
    return Permission(Role.LEAD, action)


def admins(action: str) -> Permission:
    return Permission(Role.ADMIN, action)


ADJUDICATE = leads("adjudicate")
