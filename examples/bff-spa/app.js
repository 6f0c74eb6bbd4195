// A single-page app that never sees a token: it talks only to the BFF on its own origin.
// The browser sends the BFF's __Host- session cookie (HttpOnly: this script cannot read
// it); every call carries the X-Tessera-BFF header, which the BFF requires (CSRF defence:
// another site cannot send a custom header without a CORS preflight the BFF never grants).
"use strict";

const BFF_HEADER = { "X-Tessera-BFF": "1" };

async function bff(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    credentials: "same-origin",
    headers: { ...BFF_HEADER, ...(options.headers || {}) },
  });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  return { status: response.status, body };
}

function show(label, answer) {
  document.getElementById("result").textContent =
    `${label}: HTTP ${answer.status}\n${JSON.stringify(answer.body, null, 2)}`;
}

async function refreshSession() {
  const answer = await bff("/bff/session");
  const signedIn = answer.status === 200 && answer.body && answer.body.authenticated;
  document.getElementById("status").textContent = signedIn ? "yes" : "no";
  document.getElementById("user").textContent = signedIn ? `(${answer.body.sub})` : "";
  document.getElementById("login").hidden = signedIn;
  document.getElementById("logout").hidden = !signedIn;
  return signedIn;
}

document.getElementById("call-api").addEventListener("click", async () => {
  const answer = await bff("/bff/api/orders/orders");
  show("GET /bff/api/orders/orders", answer);
  if (answer.status === 401) await refreshSession();
});

document.getElementById("logout").addEventListener("click", async () => {
  const answer = await bff("/bff/logout", { method: "POST" });
  show("POST /bff/logout", answer);
  await refreshSession();
  // End the identity service's browser session too (RP-initiated logout): it comes back
  // to this page afterwards.
  if (answer.body && answer.body.logout_url) window.location.assign(answer.body.logout_url);
});

refreshSession();
