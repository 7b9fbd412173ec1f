"""Reading files that come from outside (uploads, imports) within limits. A leaf: imports no project module."""

from intake.tables import Issue, Limits, NotUtf8, TableError, read_arrow, read_columns

__all__ = ["Issue", "Limits", "NotUtf8", "TableError", "read_arrow", "read_columns"]
