"""The web app's roles (SPEC 8), apart from pipeline.web.users so that the command line names
them without importing the password hasher."""

from __future__ import annotations

ROLES = ("branch", "reviewer", "manager", "compliance", "admin")
BY_BRANCH = ("branch", "reviewer")  # the roles that work within their own branches only
