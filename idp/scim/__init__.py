"""SCIM 2.0 service provider (RFC 7643, RFC 7644) at /scim/v2/: a B2B organisation's directory
(Entra ID, Okta, Google...) provisions that organisation's users here with a SCIM token of its own
(clients.scim_tokens). An edge: every change goes through accounts.services."""
