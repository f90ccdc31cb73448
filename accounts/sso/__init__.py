"""Corporate SSO sign-in: a B2B client's own OpenID Connect provider, upstream of us.

The authorization code flow with PKCE (OIDC Core §3.1, RFC 7636), Authlib as the client (`flow`):
`begin` keeps state, nonce and the PKCE verifier in the browser's session and sends it upstream;
`complete` checks what comes back, exchanges the code, validates the ID token (`id_token`:
signature against the upstream's JWKS, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`; joserfc), then
provisions the user just in time and links the upstream identity by (organisation, `iss`, `sub`)
(`provisioning`). Signing the person in here (session, second factor) is the views' part.

A client whose directory speaks SAML 2.0 goes through `saml` instead (Web Browser SSO: a signed
AuthnRequest, a signed assertion back to our ACS, pysaml2 and xmlsec1), into the same claim
mapping and provisioning, linked by (organisation, IdP entity ID, NameID).

The provider's configuration, discovery and keys are the B2B client's (clients.upstream). Failures
raise clients.upstream.SSOError with a reason code; each is audited (`sso.loginFailed`) and
nothing half-made survives it: provisioning runs in one transaction, after every check passed.
"""
