"""The account console's connected applications: what each application was allowed, and taking
it back (idp.oidc.services.withdraw_consent)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from idp.oidc import services
from idp.oidc.models import Application


@never_cache
@require_GET
@login_required
def applications(request: HttpRequest) -> HttpResponse:
    described = settings.OAUTH2_PROVIDER["SCOPES"]
    rows = [
        {
            "connection": connection,
            # Each scope said in words, as on the consent screen (an unknown one by its name).
            "allowed": [_(described[scope]) if scope in described else scope for scope in connection.scopes],
        }
        for connection in services.connections(request.user)
    ]
    return render(request, "oidc/applications.html", {"rows": rows})


@never_cache
@require_POST
@login_required
def withdraw(request: HttpRequest, client_id: str) -> HttpResponse:
    application = get_object_or_404(Application, client_id=client_id)
    services.withdraw_consent(actor=request.user, user=request.user, application=application)
    messages.success(
        request,
        _("%(app)s no longer has access to your account; it will ask again if you use it.")
        % {"app": application.name},
    )
    return redirect("oidc-applications")
