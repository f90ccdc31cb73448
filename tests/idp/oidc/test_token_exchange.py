"""Token exchange (RFC 8693): a service holding a user's token gets a narrower one for a
downstream API, as the rules in data allow; `act` records who acts for whom, along a chain.
Authlib is the service over HTTP; then the refusals."""

from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import urlencode

import pytest
from authlib.integrations.requests_client import OAuth2Session

from audit.models import AuditLog
from audit.registry import AuditAction
from idp.oidc import revocation, services
from idp.oidc.models import AccessToken, Application, ResourceServer, TokenExchangePolicy
from tests.idp.oidc.conftest import PASSWORD, REDIRECT_URI, Browser, basic_auth, make_app
from tests.wsgi import wsgi_call

pytestmark = [pytest.mark.needs("postgresql", "redis"), pytest.mark.django_db(transaction=True)]

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
ORDERS = "https://api.example.com/orders"
PARCELS = "https://api.example.com/parcels"
BILLING = "https://api.example.com/billing"


def claims_of(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


@pytest.fixture
def chain(rp_user):
    """orders-api (holds the user's token) -> parcels-api -> billing-api, each an API with its own
    client; orders may exchange for parcels, parcels for billing."""
    made = {}
    for name, identifier in (("orders", ORDERS), ("parcels", PARCELS), ("billing", BILLING)):
        app, secret = make_app(name=f"{name} API", grant=Application.GRANT_CLIENT_CREDENTIALS)
        server = services.save_resource_server(
            actor=None,
            server=ResourceServer(name=name, identifier=identifier, client=app),
            fields=list(services.RESOURCE_SERVER_FIELDS),
            created=True,
        )
        made[name] = (app, secret, server)
    for source, target, scopes in (("orders", "parcels", "openid profile"), ("parcels", "billing", "")):
        services.save_exchange_rule(
            actor=None,
            rule=TokenExchangePolicy(
                application=made[source][0], resource_server=made[target][2], scopes=scopes
            ),
            created=True,
        )
    return made


@pytest.fixture
def user_token(provider, rp_app, rp_user, chain) -> str:
    """The user's token for the orders API, got by a front end through the code flow."""
    app, secret = rp_app
    metadata = provider.metadata()
    session = OAuth2Session(
        app.client_id,
        secret,
        redirect_uri=REDIRECT_URI,
        scope="openid profile email",
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    url, _state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, resource=ORDERS
    )
    browser = Browser(provider.url)
    landed = browser.sign_in(browser.open(url), "ivan", PASSWORD)
    token = session.fetch_token(
        metadata["token_endpoint"], authorization_response=landed.headers["Location"], code_verifier=verifier
    )
    return token["access_token"]


def exchange(app: Application, secret: str, subject: str, **form: str) -> dict:
    body = {"grant_type": GRANT, "subject_token": subject, "subject_token_type": ACCESS, **form}
    answer = wsgi_call(
        "POST", "/o/token/", body=urlencode(body).encode(), authorization=basic_auth(app.client_id, secret)
    )
    return {"status": answer["status"], **json.loads(answer["body"])}


def test_a_service_exchanges_the_users_token_down_a_chain(provider, chain, user_token, rp_user):
    orders, orders_secret, _ = chain["orders"]
    metadata = provider.metadata()
    assert GRANT in metadata["grant_types_supported"]
    session = OAuth2Session(orders.client_id, orders_secret)
    first = session.fetch_token(
        metadata["token_endpoint"],
        grant_type=GRANT,
        subject_token=user_token,
        subject_token_type=ACCESS,
        resource=PARCELS,
        scope="openid profile",
    )
    assert first["issued_token_type"] == ACCESS
    assert "refresh_token" not in first
    delegated = claims_of(first["access_token"])
    subject = claims_of(user_token)
    assert delegated["aud"] == PARCELS
    assert delegated["sub"] == str(rp_user.pk) == subject["sub"]
    assert delegated["act"] == {"sub": orders.client_id}
    assert delegated["client_id"] == orders.client_id
    assert delegated["scope"] == "openid profile"
    assert delegated["exp"] <= subject["exp"]
    assert delegated["sid"] == subject["sid"]
    row = AccessToken.objects.get(jti=delegated["jti"])
    assert row.user_id == rp_user.pk
    assert row.resource == [PARCELS]
    record = AuditLog.objects.get(action=AuditAction.TOKEN_EXCHANGED, details__jti=delegated["jti"])
    assert record.details["subjectJti"] == subject["jti"]
    assert record.details["resource"] == PARCELS

    # The parcels API, holding the delegated token, goes one step further: `act` nests.
    parcels, parcels_secret, _ = chain["parcels"]
    second = exchange(parcels, parcels_secret, first["access_token"], resource=BILLING)
    assert second["status"] == 200, second
    assert claims_of(second["access_token"])["act"] == {
        "sub": parcels.client_id,
        "act": {"sub": orders.client_id},
    }
    assert claims_of(second["access_token"])["aud"] == BILLING

    # The user's token for orders is introspected by billing's client: not its business.
    billing, billing_secret, _ = chain["billing"]
    answer = wsgi_call(
        "POST",
        "/o/introspect/",
        body=urlencode({"token": user_token}).encode(),
        authorization=basic_auth(billing.client_id, billing_secret),
    )
    assert json.loads(answer["body"]) == {"active": False}

    # The user's session ends: the delegated tokens go with it (they carry its sid).
    def parcels_sees() -> dict:
        answer = wsgi_call(
            "POST",
            "/o/introspect/",
            body=urlencode({"token": first["access_token"]}).encode(),
            authorization=basic_auth(parcels.client_id, parcels_secret),
        )
        return json.loads(answer["body"])

    assert parcels_sees()["active"] is True
    revocation.revoke_session_tokens(subject["sid"])
    assert parcels_sees() == {"active": False}


def test_no_rule_no_exchange(chain, user_token):
    orders, secret, _ = chain["orders"]
    answer = exchange(orders, secret, user_token, resource=BILLING)  # orders may go to parcels only
    assert answer["status"] == 400
    assert answer["error"] == "invalid_target"


def test_a_token_not_meant_for_the_caller_cannot_be_exchanged(chain, user_token):
    parcels, secret, _ = chain["parcels"]  # has a rule for billing, but the token is orders'
    answer = exchange(parcels, secret, user_token, resource=BILLING)
    assert answer["status"] == 400
    assert answer["error"] == "invalid_grant"


def test_a_revoked_subject_token_cannot_be_exchanged(chain, user_token):
    orders, secret, _ = chain["orders"]
    AccessToken.objects.get(jti=claims_of(user_token)["jti"]).delete()  # revoked (blacklisted)
    answer = exchange(orders, secret, user_token, resource=PARCELS)
    assert answer["status"] == 400
    assert answer["error"] == "invalid_grant"


def test_no_more_scope_than_the_subject_and_the_rule_allow(chain, user_token):
    orders, secret, _ = chain["orders"]
    for scope in ("openid email", "openid permissions"):  # email: not the rule's; permissions: not held
        answer = exchange(orders, secret, user_token, resource=PARCELS, scope=scope)
        assert answer["status"] == 400
        assert answer["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}, "invalid_request"),
        ({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "invalid_request"),
        ({"actor_token": "x"}, "invalid_request"),
        ({"resource": "https://api.example.com/unknown"}, "invalid_target"),
        ({"resource": ""}, "invalid_target"),
    ],
)
def test_malformed_exchanges_are_refused(chain, user_token, form, error):
    orders, secret, _ = chain["orders"]
    answer = exchange(orders, secret, user_token, **{"resource": PARCELS, **form})
    assert answer["status"] == 400, answer
    assert answer["error"] == error


def test_garbage_subject_tokens_and_wrong_secrets_are_refused(chain):
    orders, secret, _ = chain["orders"]
    assert exchange(orders, secret, "not-a-token", resource=PARCELS)["error"] == "invalid_grant"
    assert exchange(orders, "wrong", "x.y.z", resource=PARCELS)["status"] == 401


def test_rules_are_audited_when_added_and_removed(chain):
    rule = TokenExchangePolicy.objects.get(application=chain["orders"][0])
    services.delete_exchange_rule(actor=None, rule=rule)
    records = AuditLog.objects.filter(action=AuditAction.OIDC_EXCHANGE_RULE_CHANGED).order_by("id")
    assert [r.details.get("removed", False) for r in records] == [False, False, True]
