// Post a form of ours again at once (the SAML assertion consumer service: the IdP's cross-site
// POST came without our SameSite=Lax session cookie; this same-site one carries it).
"use strict";
document.querySelectorAll("form[data-autopost]").forEach(function (form) {
  form.submit();
});
