"""The web app's roles (SPEC 8), apart from pipeline.web.users so that the command line names
them without importing the password hasher."""

from __future__ import annotations

ROLES = ("branch", "lead", "reviewer", "manager", "compliance", "admin")
BY_BRANCH = ("branch", "lead", "reviewer")  # the roles that work within their own branches only
INVESTIGATORS = ("branch", "lead")  # the roles items are assigned to (they dispose)
