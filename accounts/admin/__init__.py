"""The operators' admin (Django admin), one module per group of pages. Every page that changes
state saves through a service (base.ServiceModelAdmin) or is read-only (core.read_only_admin);
tests/security/test_admin_doors.py holds every registered page to that."""

from accounts.admin import devices, organisations, roles, sessions, users  # noqa: F401 - register the pages
