// Passkeys (WebAuthn): the browser half of accounts.passkeys. A form with data-passkey="login",
// "second-factor" or "register" asks the server for options (POST to data-options-url, with the
// form's CSRF token), calls the authenticator, puts its answer (JSON) in the form's `credential`
// field and submits the form. The login form also offers passkeys in the login field's autofill
// (conditional mediation), without a click; meanwhile the password form named by
// data-password-form waits for that offer's options before it posts (see holdPasswordForm).
"use strict";
(function () {
  function toBytes(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
  }

  function toText(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBytes(descriptors) {
    return (descriptors || []).map((d) => Object.assign({}, d, { id: toBytes(d.id) }));
  }

  function creationOptions(json) {
    return Object.assign({}, json, {
      challenge: toBytes(json.challenge),
      user: Object.assign({}, json.user, { id: toBytes(json.user.id) }),
      excludeCredentials: withBytes(json.excludeCredentials),
    });
  }

  function requestOptions(json) {
    return Object.assign({}, json, {
      challenge: toBytes(json.challenge),
      allowCredentials: withBytes(json.allowCredentials),
    });
  }

  // PublicKeyCredential as the JSON the server's library reads (WebAuthn L3 §5.1, toJSON()).
  function asJSON(credential) {
    const r = credential.response;
    const response = { clientDataJSON: toText(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      if (r.userHandle) response.userHandle = toText(r.userHandle);
    }
    return JSON.stringify({
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
    });
  }

  async function fetchOptions(form) {
    const body = new URLSearchParams({ purpose: form.dataset.passkey });
    const answer = await fetch(form.dataset.optionsUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value },
      body: body,
    });
    if (!answer.ok) throw new Error("options " + answer.status);
    return answer.json();
  }

  function say(form, text) {
    const status = form.querySelector("[data-passkey-status]");
    if (status) {
      status.textContent = text;
      status.hidden = !text;
    }
  }

  function submit(form, credential) {
    form.querySelector("[name=credential]").value = asJSON(credential);
    form.submit();
  }

  let conditional = null; // the login page's autofill request, aborted when the button is used
  let asking = null; // options being fetched: the next ceremony waits, so one session holds both
  let leaving = false; // the password form was posted: the autofill offer asks for nothing more

  async function run(form, mediation) {
    if (asking) await asking.catch(() => null);
    asking = fetchOptions(form);
    const json = await asking;
    if (form.dataset.passkey === "register") {
      return navigator.credentials.create({ publicKey: creationOptions(json) });
    }
    const request = { publicKey: requestOptions(json) };
    if (mediation) {
      conditional = new AbortController();
      request.mediation = mediation;
      request.signal = conditional.signal;
    }
    return navigator.credentials.get(request);
  }

  async function onClick(form, event) {
    event.preventDefault();
    if (conditional) conditional.abort();
    say(form, "");
    try {
      const credential = await run(form, null);
      if (credential) submit(form, credential);
    } catch (error) {
      say(form, form.dataset.errorText || String(error));
    }
  }

  async function offerInAutofill(form) {
    if (!window.PublicKeyCredential || !PublicKeyCredential.isConditionalMediationAvailable) return;
    if (!(await PublicKeyCredential.isConditionalMediationAvailable()) || leaving) return;
    try {
      const credential = await run(form, "conditional");
      if (credential) submit(form, credential);
    } catch (error) {
      // Aborted for the button, or the person chose a password: nothing to say.
    }
  }

  // The autofill offer fetches its options when the page loads, and that answer stores the
  // challenge in the session: on a first visit it sets the session cookie. A password sign-in
  // posted before that answer arrives (a password manager that fills and submits at once) would
  // have its signed-in cookie overwritten by the options' anonymous one, and the person would land
  // signed out. So the password form waits for the options, never more than a few seconds.
  function holdPasswordForm(form) {
    const password = document.getElementById(form.dataset.passwordForm || "");
    if (!password) return;
    password.addEventListener("submit", async (event) => {
      leaving = true;
      if (!asking) return;
      event.preventDefault();
      const waited = new Promise((resolve) => setTimeout(resolve, 3000));
      await Promise.race([asking.catch(() => null), waited]);
      password.submit(); // no submit event again: posts once
    });
  }

  for (const form of document.querySelectorAll("form[data-passkey]")) {
    if (!window.PublicKeyCredential) {
      say(form, form.dataset.unsupportedText || "");
      continue;
    }
    const button = form.querySelector("[data-passkey-start]");
    if (button) {
      button.hidden = false;
      button.addEventListener("click", (event) => onClick(form, event));
    }
    if (form.dataset.autofill === "on") {
      holdPasswordForm(form);
      offerInAutofill(form);
    }
  }
})();
