"""What every operators' admin page shares: services are called for every change, and a service's
refusal (PermissionDenied, ValidationError) reaches the operator as a message or a form error,
never as an error page; and which B2B clients' rows a staff member may see.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.functional import Promise
from django.utils.translation import gettext

from accounts import rbac
from accounts.models import Scope, User

T = TypeVar("T")


class RefusedError(Exception):
    """A service said no while the admin was saving; the admin's transaction is rolled back."""


def refusal_text(exc: PermissionDenied | ValidationError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc) or gettext("not allowed")


def calling(service: Callable[[], T]) -> T:
    """Run a service from a save hook; its refusal becomes `RefusedError` (see ServiceModelAdmin)."""
    try:
        return service()
    except (PermissionDenied, ValidationError) as exc:
        raise RefusedError(refusal_text(exc)) from exc


def visible_organisations(user: User, permission: str) -> list[uuid.UUID] | None:
    """The B2B organisations whose rows `user` may see under `permission`; None means all of them."""
    if user.is_superuser:
        return None
    scope = rbac.effective_permissions(user).get(permission)
    if scope == Scope.ALL_ORGANISATIONS:
        return None
    if scope == Scope.OWN_ORGANISATION and user.organisation_id is not None:
        return [user.organisation_id]
    return []


class ServiceModelAdmin(admin.ModelAdmin):
    """A ModelAdmin whose save hooks call services through `calling()`.

    Django runs the whole save (form, inlines) in one transaction; when a service refuses, that
    transaction is rolled back and the same form is shown again with the refusal as its error, the
    operator's input kept.
    """

    _REFUSAL = "_admin_refusal"

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except RefusedError as exc:
            setattr(request, self._REFUSAL, str(exc))
            # Again, with the refusal as a form error: the form is shown, nothing is saved.
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(
        self, request: HttpRequest, obj: Model | None = None, **kwargs: Any
    ) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, **kwargs)
        refusal = getattr(request, self._REFUSAL, None)
        if refusal is None:
            return form

        class RefusedForm(form):  # type: ignore[valid-type, misc]
            def clean(self) -> dict[str, Any]:
                super().clean()
                raise ValidationError(refusal, code="refused")

        return RefusedForm

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except RefusedError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(request.path.rsplit("delete/", 1)[0] + "change/")

    def label_of(self, obj: Any) -> str:
        """How an object is named in the action's messages (a user by login and client name)."""
        return str(obj)

    def for_each(
        self, request: HttpRequest, objects: Iterable[T], call: Callable[[T], object], done: Promise
    ) -> int:
        """An action's loop: call a service per object, report each refusal, then the count.

        `done` is a message with `%(count)d`, an `ngettext_lazy(..., "count")` so that the count
        picks its plural form; each object commits (or not) on its own.
        """
        count = 0
        for obj in objects:
            try:
                call(obj)
                count += 1
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, f"{self.label_of(obj)}: {refusal_text(exc)}", messages.ERROR)
        if count:
            self.message_user(request, done % {"count": count}, messages.SUCCESS)
        else:
            self.message_user(request, gettext("Nothing was changed."), messages.WARNING)
        return count
