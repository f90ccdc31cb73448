"""Our extension of django-oauth-toolkit's validator: the one seam where DOT is customised."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from oauth2_provider.bcp import bcp_compliant
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.settings import oauth2_settings
from oauthlib.common import Request as OAuthlibRequest
from oauthlib.oauth2.rfc6749 import errors as oauth_errors

from accounts import assurance, sessions
from audit import services as audit
from audit.registry import AuditAction
from core import prepared
from idp.oidc import (
    backchannel,
    client_assertion,
    client_auth,
    client_credentials,
    context,
    device,
    dpop,
    holders,
    introspection,
    revocation,
)
from idp.oidc import claims as claim_rules
from idp.oidc.client_cache import clients
from idp.oidc.id_tokens import subject_of_id_token_hint, verify_id_token_hint
from idp.oidc.models import AccessToken, Application, Consent, Grant, IDToken, RefreshToken
from idp.oidc.resources import RegisteredResourcesMixin
from idp.oidc.tokens import (
    TokenError,
    methods_of,
    session_facts,
    sign,
    signing_algorithm,
    token_type,
    verify_access_token,
)


def _django_request(request: OAuthlibRequest) -> Any:
    return context.http_request()


def _applications(django_request: Any) -> dict[str, Application]:
    memo = getattr(django_request, "idp_applications", None)
    if memo is None:
        memo = django_request.idp_applications = {}
    return memo


def application_of(django_request: Any, client_id: str) -> Application | None:
    """The application `client_id` names, read once per HTTP request (None if there is none)."""
    memo = _applications(django_request)
    if client_id not in memo:
        found = clients.application(client_id)
        if found is None:
            return None
        memo[client_id] = found
    return memo.get(client_id)


class Validator(RegisteredResourcesMixin, OAuth2Validator):
    oidc_claim_scope = claim_rules.CLAIM_SCOPES

    # --- Client authentication: the way each client is registered for, and only that -----

    def client_authentication_required(self, request: OAuthlibRequest, *args: Any, **kwargs: Any) -> bool:
        if client_assertion.present(dict(request.decoded_body or ())):
            return True
        return super().client_authentication_required(request, *args, **kwargs)

    def _load_application(self, client_id: str, request: OAuthlibRequest) -> Application | None:
        # One read per HTTP request: DOT loads the client again for each oauthlib request it
        # builds (the authorization endpoint builds two), and the view a third time.
        django_request = _django_request(request)
        if not request.client and django_request is not None:
            request.client = _applications(django_request).get(client_id)  # read already, or None
        if not request.client:
            request.client = clients.application(client_id)  # the process's copy (client_cache)
        client = super()._load_application(client_id, request)
        if client is not None and django_request is not None:
            _applications(django_request)[client_id] = client
        return client

    def authenticate_client(self, request: OAuthlibRequest, *args: Any, **kwargs: Any) -> bool:
        django_request = _django_request(request)
        if client_assertion.present(dict(request.decoded_body or ())):
            record = client_auth.by_assertion(django_request) if django_request is not None else None
            if record is None or self._load_application(record.client_id, request) is None:
                return False
            request.client_id = record.client_id
            return True
        if not super().authenticate_client(request, *args, **kwargs):
            return False
        # A private_key_jwt client's secret (DOT generates one for every client) proves nothing.
        return request.client.client_authentication == Application.AUTH_SECRET

    # --- DPoP (RFC 9449): which key the new tokens are bound to, for every grant here ----------

    def validate_grant_type(
        self,
        client_id: str,
        grant_type: str,
        client: Application,
        request: OAuthlibRequest,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        # oauthlib asks this of every grant once the client is known and before the grant's own
        # checks: the proof the view verified (dpop.token_request_proof) binds the tokens, and a
        # client registered for bound tokens gets none without one (an OAuth2Error, answered).
        if not super().validate_grant_type(client_id, grant_type, client, request, *args, **kwargs):
            return False
        proof = dpop.proof_of(_django_request(request))
        request.idp_dpop_jkt = dpop.binding_key(required=client.requires_dpop, proof=proof)
        return True

    def _create_refresh_token(
        self,
        request: OAuthlibRequest,
        refresh_token_code: str,
        access_token: AccessToken,
        previous_refresh_token: RefreshToken | None,
    ) -> RefreshToken:
        refresh_token = super()._create_refresh_token(
            request, refresh_token_code, access_token, previous_refresh_token
        )
        # §5: a public client's refresh token is bound to its DPoP key (a confidential client's
        # to its authentication), so a stolen one is useless without the key.
        jkt = getattr(request, "idp_dpop_jkt", None)
        if jkt and request.client.client_type == Application.CLIENT_PUBLIC:
            refresh_token.dpop_jkt = jkt
            refresh_token.save(update_fields=["dpop_jkt"])
        return refresh_token

    # --- Authorization codes: single use, kept after use, replay revokes what they issued ----

    def validate_code(
        self,
        client_id: str,
        code: str,
        client: Application,
        request: OAuthlibRequest,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        # The token view runs in a transaction: this row lock makes parallel exchanges of one
        # code queue up, and the loser sees `used_at` set (oauthlib issue 618).
        grant = (
            Grant.objects.select_for_update(of=("self",))
            .select_related("user__organisation")  # User.is_active reads both
            .filter(code=code, application=client)
            .first()
        )
        if grant is None:
            return False
        if grant.used_at is not None:
            self._revoke_tokens_of_replayed_code(grant)
            return False
        if grant.is_expired() or not grant.user.is_active:
            return False
        request.scopes = grant.scope.split(" ")
        request.user = grant.user
        request.idp_grant = grant
        if grant.nonce:
            request.nonce = grant.nonce
        if grant.claims:
            request.claims = json.loads(grant.claims)
        return True

    @staticmethod
    def _held_grant(request: OAuthlibRequest, code: str) -> Grant | None:
        """The grant validate_code read and locked, if `code` is its code: oauthlib's later
        questions about the code (redirect URI, PKCE, nonce) are answered from it, where DOT
        read the row again for each."""
        grant = getattr(request, "idp_grant", None)
        return grant if grant is not None and grant.code == code else None

    def get_code_challenge(self, code: str, request: OAuthlibRequest) -> str | None:
        grant = self._held_grant(request, code)
        if grant is None:
            return super().get_code_challenge(code, request)
        return grant.code_challenge or None

    def get_code_challenge_method(self, code: str, request: OAuthlibRequest) -> str | None:
        grant = self._held_grant(request, code)
        if grant is None:
            return super().get_code_challenge_method(code, request)
        return grant.code_challenge_method or None

    def get_authorization_code_nonce(
        self, client_id: str, code: str, redirect_uri: str, request: OAuthlibRequest
    ) -> str | None:
        grant = self._held_grant(request, code)
        if grant is None:
            return super().get_authorization_code_nonce(client_id, code, redirect_uri, request)
        return grant.nonce or None

    def _revoke_tokens_of_replayed_code(self, grant: Grant) -> None:
        """RFC 6749 §4.1.2 / ASVS 10.4.2: a second use of a code revokes the tokens it issued."""
        revoked = revocation.revoke_code_tokens(grant)
        audit.record(
            AuditAction.CODE_REPLAYED,
            actor=None,
            target=grant.application,
            details={"userId": str(grant.user_id), "revokedAccessTokens": revoked},
        )

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: OAuthlibRequest, *args: Any, **kwargs: Any
    ) -> None:
        from oauthlib.oauth2.rfc6749 import errors

        marked = Grant.objects.filter(code=code, application=request.client, used_at__isnull=True).update(
            used_at=timezone.now()
        )
        if not marked:
            raise errors.InvalidGrantError(request=request)

    def _create_authorization_code(
        self, request: OAuthlibRequest, code: dict[str, str], expires: datetime | None = None
    ) -> Grant:
        now = timezone.now()
        expires = expires or now + timedelta(seconds=oauth2_settings.AUTHORIZATION_CODE_EXPIRE_SECONDS)
        if request.client.high_assurance:  # FAPI 2.0: a code lives a minute at most
            expires = min(expires, now + timedelta(seconds=Application.HIGH_ASSURANCE_CODE_SECONDS))
        if request.code_challenge_method == "plain" and bcp_compliant(
            "COMPLIANT_BCP_RFC9700_PKCE_METHOD", 'The PKCE "plain" code_challenge_method'
        ):
            raise oauth_errors.InvalidRequestError(
                description='Unsupported "plain" code_challenge_method; use "S256".', request=request
            )
        # The browser session's facts for the tokens the code will bring (sid, auth_time, amr).
        facts: dict[str, Any] = {}
        django_request = _django_request(request)
        if django_request is not None and hasattr(django_request, "session"):
            facts = {
                "sid": sessions.sid(django_request),
                "auth_time": sessions.auth_time(django_request),
                "amr": " ".join(sessions.amr(django_request)),
            }
        # DOT's row (OAuth2Validator._create_authorization_code, whose checks are above) with the
        # facts in the same INSERT, where an UPDATE followed it (tests/idp/oidc/test_code_exchange.py
        # compares the two rows).
        grant = Grant(
            application=request.client,
            user=request.user,
            code=code["code"],
            expires=expires,
            redirect_uri=request.redirect_uri,
            scope=" ".join(request.scopes),
            code_challenge=request.code_challenge or "",
            code_challenge_method=request.code_challenge_method or "",
            nonce=request.nonce or "",
            claims=json.dumps(request.claims or {}),
            resource=getattr(request, "resource", []),  # RFC 8707
            **facts,
        )
        # One INSERT of our own (core.prepared.insert), where the ORM compiled its own each time.
        return prepared.insert(grant)

    # --- Device codes (RFC 8628 §3.4-3.5): polled, single use ----------------------------------

    def validate_device_code(
        self, client_id: str, code: str, request: OAuthlibRequest, *args: Any, **kwargs: Any
    ) -> str | None:
        # oauthlib authenticated the client; a code of another client is unknown to it.
        return device.poll(client_id=request.client.client_id, device_code=code, request=request)

    # --- Access tokens: remember the JWT's jti, sid and the code it descends from -------------

    def _create_access_token(
        self,
        expires: datetime,
        request: OAuthlibRequest,
        token: dict[str, Any],
        source_refresh_token: RefreshToken | None = None,
    ) -> AccessToken:
        # DOT's row in one INSERT (DOT inserts, then this added an UPDATE), linked to the ID token
        # row finalize_id_token saved, where DOT verified the ID token it had just signed to find
        # that row again by its jti.
        id_token = None
        if token.get("id_token"):
            saved = getattr(request, "id_token", None)
            id_token = saved if isinstance(saved, IDToken) else self._load_id_token(token["id_token"])
        sid, grant = session_facts(request)
        access_token = AccessToken(
            user=request.user,
            scope=token["scope"],
            expires=expires,
            id_token=id_token,
            application=request.client,
            source_refresh_token=source_refresh_token,
            resource=getattr(request, "resource", []),  # RFC 8707
            jti=getattr(request, "idp_access_jti", ""),
            sid=sid,
            authorization_code=grant,
            # What the user proved for this token's grant (idp.oidc.tokens.grant_methods): the
            # refresh grant and the REST API hold it against the 2FA policy of the day.
            amr=" ".join(getattr(request, "idp_amr", [])),
        )
        self._set_token_value(access_token, token["access_token"])
        access_token.save(force_insert=True)
        return access_token

    def _save_bearer_token(
        self, token: dict[str, Any], request: OAuthlibRequest, *args: Any, **kwargs: Any
    ) -> None:
        if request.grant_type != "client_credentials" and request.user is not None:
            # Before DOT locks the refresh token it rotates: the order a block takes them in.
            holders.hold(request.user.pk)
            rotated = getattr(request, "refresh_token_instance", None)
            if request.grant_type == "refresh_token" and rotated is not None:
                holders.hold_refresh_token(rotated)
        super()._save_bearer_token(token, request, *args, **kwargs)
        token["token_type"] = token_type(getattr(request, "idp_dpop_jkt", None))
        device.consume(request)  # its row is locked since validate_device_code
        user = request.user if request.grant_type != "client_credentials" else None
        action = (
            AuditAction.TOKEN_REFRESHED if request.grant_type == "refresh_token" else AuditAction.TOKEN_ISSUED
        )
        audit.record(
            action,
            actor=user,
            target=request.client,
            organisation_id=getattr(user, "organisation_id", None),
            details={
                "grantType": request.grant_type,
                "clientId": request.client.client_id,
                "scope": token.get("scope", ""),
                "jti": getattr(request, "idp_access_jti", ""),
            },
        )

    def validate_refresh_token(
        self, refresh_token: str, client: Application, request: OAuthlibRequest, *args: Any, **kwargs: Any
    ) -> bool:
        if super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            if not request.user.is_active:  # a blocked user's refresh tokens are revoked anyway
                return False
            bound_to = request.refresh_token_instance.dpop_jkt
            if bound_to and bound_to != getattr(request, "idp_dpop_jkt", None):
                raise oauth_errors.CustomOAuth2Error(
                    error="invalid_dpop_proof",
                    description="this refresh token is DPoP-bound: send a proof by its key",
                )
            # The session the family belongs to, for the new tokens: the rotation deletes the
            # access token that says it before they are made.
            request.idp_session = session_facts(request)
            return self._assurance_still_met(request)
        replayed = revocation.refresh_tokens_by_value(refresh_token).filter(revoked__isnull=False).first()
        if replayed is not None:
            # DOT has just revoked the whole family (REFRESH_TOKEN_REUSE_PROTECTION).
            audit.record(
                AuditAction.REFRESH_TOKEN_REUSED,
                actor=None,
                target=replayed.application,
                details={"userId": str(replayed.user_id), "family": str(replayed.token_family)},
            )
        return False

    def _assurance_still_met(self, request: OAuthlibRequest) -> bool:
        """The refresh grant is a door too: what was proven when the family began must meet the
        2FA policy as it stands now (the user may have been promoted since, or enrolled a
        factor). If not, no new token: the user signs in again, with the second factor."""
        methods = methods_of(request.refresh_token_instance.access_token)
        if assurance.satisfied(request.user, methods):
            return True
        audit.record_refusal(
            AuditAction.TOKEN_REFUSED,
            actor=None,
            target=request.client,
            organisation_id=request.user.organisation_id,
            details={"userId": str(request.user.pk), "grantType": "refresh_token", "reason": "mfa_required"},
        )
        return False

    def revoke_token(
        self, token: str, token_type_hint: str | None, request: OAuthlibRequest, *args: Any, **kwargs: Any
    ) -> None:
        super().revoke_token(token, token_type_hint, request, *args, **kwargs)
        audit.record(
            AuditAction.TOKEN_REVOKED,
            actor=None,
            target=request.client,
            details={"tokenTypeHint": token_type_hint or ""},
        )

    def validate_jwt_bearer_token(self, token: str, scopes: list[str], request: OAuthlibRequest) -> bool:
        # oauthlib's OIDC server sends JWT-shaped bearer tokens here, and DOT would check them as
        # ID tokens. Our JWTs in an Authorization header are access tokens; an ID token is never
        # a credential for an API.
        return self.validate_bearer_token(token, scopes, request)

    def _load_access_token(self, token: str) -> AccessToken | None:
        # A token that does not verify offline (signature, expiry, blacklist) is never looked up.
        try:
            verify_access_token(token)
        except TokenError:
            return None
        return super()._load_access_token(token)

    # --- Redirect URIs: exact string match (RFC 9700 §2.1) ------------------------------------

    def validate_redirect_uri(
        self, client_id: str, redirect_uri: str, request: OAuthlibRequest, *args: Any, **kwargs: Any
    ) -> bool:
        return request.client.redirect_uri_allowed(redirect_uri)

    def confirm_redirect_uri(
        self,
        client_id: str,
        code: str,
        redirect_uri: str,
        client: Application,
        request: OAuthlibRequest,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        # RFC 6749 §4.1.3: the authorization request always carries redirect_uri (the view refuses
        # one without, OIDC Core §3.1.2.1), so the exchange must name it, identical. oauthlib would
        # put the client's default URI in its place and let the comparison pass.
        if getattr(request, "using_default_redirect_uri", False):
            from oauthlib.oauth2.rfc6749 import errors

            raise errors.InvalidRequestError(
                description="redirect_uri is required, identical to the authorization request's "
                "(RFC 6749 §4.1.3)",
                request=request,
            )
        grant = self._held_grant(request, code)
        if grant is not None and grant.application_id == client.pk:
            return grant.redirect_uri_allowed(redirect_uri)
        return super().confirm_redirect_uri(client_id, code, redirect_uri, client, request, *args, **kwargs)

    # --- Scopes: service tokens carry no user scopes --------------------------------------------

    def validate_scopes(
        self,
        client_id: str,
        scopes: list[str],
        client: Application,
        request: OAuthlibRequest,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        if not super().validate_scopes(client_id, scopes, client, request, *args, **kwargs):
            return False
        if request.grant_type == "client_credentials":
            client_credentials.refuse_user_scopes(scopes)  # as the fast path does
        return True

    def get_default_scopes(
        self, client_id: str, request: OAuthlibRequest, *args: Any, **kwargs: Any
    ) -> list[str]:
        if request.grant_type == "client_credentials":
            return client_credentials.default_service_scopes()
        return super().get_default_scopes(client_id, request, *args, **kwargs)

    # --- ID token and userinfo claims ---------------------------------------------------------

    def get_oidc_claims(self, token: Any, token_handler: Any, request: OAuthlibRequest) -> dict[str, Any]:
        # One rule for the ID token, DOT's userinfo and our fast userinfo (idp.oidc.userinfo).
        return claim_rules.released_claims(request.user, request.scopes)

    def get_userinfo_claims(self, request: OAuthlibRequest) -> dict[str, Any]:
        # OIDC Core §5.3: userinfo returns claims about a person. A client_credentials token
        # names none (tokens issued before service tokens lost `openid` still say `openid`):
        # RFC 6750 §3.1, the token is not valid for this resource.
        if request.user is None:
            from oauthlib.oauth2.rfc6749 import errors

            raise errors.InvalidTokenError(
                description="The access token names no user: it is a service token.", request=request
            )
        return super().get_userinfo_claims(request)

    def get_id_token_dictionary(
        self, token: dict[str, Any], token_handler: Any, request: OAuthlibRequest
    ) -> tuple[dict[str, Any], datetime]:
        claims, expiration_time = super().get_id_token_dictionary(token, token_handler, request)
        _sid, grant = session_facts(request)
        # The authorization code's sign-in, or the one the person approved a device in.
        grant = grant if grant is not None else getattr(request, "idp_device_grant", None)
        if grant is not None:
            # auth_time is when the user really authenticated, not `last_login` (DOT's default).
            if grant.auth_time:
                claims["auth_time"] = int(grant.auth_time.timestamp())
            if grant.amr:
                claims["amr"] = grant.amr.split()
            if grant.sid:
                claims["sid"] = grant.sid
        return claims, expiration_time

    def finalize_id_token(
        self, id_token: dict[str, Any], token: dict[str, Any], token_handler: Any, request: OAuthlibRequest
    ) -> str:
        # DOT's steps, signed by our database-held key (idp.oidc.keys) with the one JOSE library.
        signed, jti, expiration_time = self.sign_id_token(id_token, token, request)
        with transaction.atomic():
            saved = self._save_id_token(jti, request, expiration_time)
            # The relying party now takes part in the session: its end logs it out (back-channel).
            backchannel.record_session(
                application=request.client, user=request.user, sid=str(id_token.get("sid") or "")
            )
        request.access_token = request.id_token = saved
        return signed

    def sign_id_token(
        self, id_token: dict[str, Any], token: dict[str, Any], request: OAuthlibRequest
    ) -> tuple[str, str, datetime]:
        """oauthlib's first claims (`aud`, `iat`, `at_hash`…) completed and signed; returns the
        token, its `jti` and its expiry (for the IDToken row). The refresh fast path uses it too."""
        claims, expiration_time = self.get_id_token_dictionary(token, None, request)
        id_token.update(**claims)
        if isinstance(id_token.get("iat"), int):
            # DOT reads the clock again for `exp`, after oauthlib's `iat`: across a second's
            # boundary the token lived a second longer than ID_TOKEN_EXPIRE_SECONDS. One reading.
            id_token["exp"] = id_token["iat"] + oauth2_settings.ID_TOKEN_EXPIRE_SECONDS
            expiration_time = datetime.fromtimestamp(id_token["exp"], tz=UTC)
        if "nonce" not in id_token and request.nonce:  # oauthlib issue #746
            id_token["nonce"] = request.nonce
        return (
            sign(id_token, typ="JWT", algorithm=signing_algorithm(request.client)),
            id_token["jti"],
            expiration_time,
        )

    def _load_id_token(self, token: str) -> IDToken | None:
        # DOT reads back the ID token it has just signed (to link it to the access token) with the
        # application's own key; ours are the published keys.
        claims = verify_id_token_hint(token)
        return IDToken.objects.filter(jti=claims.get("jti")).first() if claims else None

    # --- prompt=none (OIDC Core §3.1.2.1): answer, never fail with a 500 ----------------------

    def validate_silent_login(self, request: OAuthlibRequest) -> bool:
        django_request = _django_request(request)
        return bool(django_request and django_request.user.is_authenticated)

    def validate_silent_authorization(self, request: OAuthlibRequest) -> bool:
        django_request = _django_request(request)
        if not (django_request and django_request.user.is_authenticated):
            return False
        return Consent.covers(user=django_request.user, application=request.client, scopes=request.scopes)

    def validate_user_match(
        self, id_token_hint: str | None, scopes: list[str], claims: dict[str, Any], request: OAuthlibRequest
    ) -> bool:
        if not id_token_hint:
            return True

        django_request = _django_request(request)
        subject = subject_of_id_token_hint(id_token_hint)
        return bool(django_request and subject and subject == str(django_request.user.pk))

    # --- Introspection (RFC 7662) --------------------------------------------------------------

    def introspect_token(
        self, token: str, token_type_hint: str | None, request: OAuthlibRequest, *args: Any, **kwargs: Any
    ) -> dict[str, Any] | None:
        # RFC 7662 §4, as introspection.access_token_answer states it (audiences included);
        # anything else is `active: false`, the same answer as for a token that does not exist.
        caller: Application = request.client
        if token_type_hint != "refresh_token":
            claims = introspection.access_token_answer(
                token, caller.pk, caller.client_id, caller.resource_server
            )
            if claims is not None:
                return claims
        refresh = (
            revocation.refresh_tokens_by_value(token)
            .select_related("application", "user", "access_token")
            .filter(revoked__isnull=True)
            .first()
        )
        # Refresh tokens go to their client only, never to a resource server: only their client asks.
        if refresh is None or refresh.access_token is None or refresh.application_id != caller.pk:
            return None
        return {
            "token_type": "refresh_token",
            "scope": refresh.access_token.scope,
            "client_id": refresh.application.client_id,
            "sub": str(refresh.user_id),
        }
