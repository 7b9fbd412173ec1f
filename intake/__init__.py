"""Reading files that come from outside (uploads, imports) within limits. A leaf: imports no project module."""

from intake.tables import DATASET_LIMITS, Issue, Limits, NotUtf8, TableError, read_arrow, read_columns

__all__ = ["DATASET_LIMITS", "Issue", "Limits", "NotUtf8", "TableError", "read_arrow", "read_columns"]
