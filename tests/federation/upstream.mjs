// A real upstream OpenID Connect provider for the federation tests: node-oidc-provider
// (v9, installed from ../shared/peers/oidc-provider's lock file) on loopback, with
//  - open dynamic client registration (each test registers Tessera as a client with its
//    redirect_uri and backchannel_logout_uri),
//  - accounts from UPSTREAM_ACCOUNTS (JSON: {login: {password, otp, claims}}),
//  - its own login page: password, plus a one-time code when acr_values asks for
//    urn:upstream:mfa (then acr urn:upstream:mfa, amr ["pwd", "otp"]),
//  - back-channel logout (it sends logout tokens when a session ends at /session/end).
// PORT: where to listen. Loopback only: this is a test fixture.
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const accounts = JSON.parse(process.env.UPSTREAM_ACCOUNTS || '{}');
const MFA = 'urn:upstream:mfa';
const PWD = 'urn:upstream:pwd';

const provider = new Provider(issuer, {
  acrValues: [PWD, MFA],
  claims: {
    openid: ['sub', 'amr'],
    email: ['email', 'email_verified'],
    profile: ['name', 'groups', 'department', 'employee_number'],
  },
  conformIdTokenClaims: false,
  cookies: { keys: ['federation-test-upstream-cookie-key'] },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    claimsParameter: { enabled: true },
  },
  pkce: { required: () => true },
  // its SSRF guard refuses loopback targets; Tessera under test *is* on loopback
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  findAccount: async (ctx, id) => (accounts[id]
    ? { accountId: id, claims: async () => ({ sub: id, ...accounts[id].claims }) }
    : undefined),
  // Tessera is a first-party client here: grant every requested scope without a consent page
  loadExistingGrant: async (ctx) => {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { Session: 3600, Interaction: 600, Grant: 3600, IdToken: 300, AccessToken: 300,
         AuthorizationCode: 60 },
});
provider.proxy = false;

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(uid, wantsMfa, error) {
  return `<!doctype html><html><head><title>Upstream sign-in</title></head><body>
<h1>Corporate sign-in</h1>${error ? `<p id="error">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
<label>Login <input id="login" name="login" autofocus></label>
<label>Password <input id="password" name="password" type="password"></label>
${wantsMfa ? '<label>One-time code <input id="otp" name="otp"></label>' : ''}
<button id="submit" type="submit">Sign in</button></form></body></html>`;
}

async function readBody(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body;
}

async function readForm(req) {
  return Object.fromEntries(new URLSearchParams(await readBody(req)));
}

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname === '/test/account' && req.method === 'POST') {
    // the directory changed (test control): replace an account's claims
    const { login, claims } = JSON.parse(await readBody(req));
    accounts[login].claims = claims;
    res.writeHead(204);
    return res.end();
  }
  const match = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    const wantsMfa = String(details.params.acr_values || '').split(' ').includes(MFA);
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(page(details.uid, wantsMfa));
    }
    const form = await readForm(req);
    const account = accounts[form.login];
    if (!account || account.password !== form.password) {
      res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(page(details.uid, wantsMfa, 'Wrong login or password'));
    }
    const otpOk = form.otp && account.otp && form.otp === account.otp;
    if (wantsMfa && !otpOk) {
      res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(page(details.uid, wantsMfa, 'A valid one-time code is required'));
    }
    const login = otpOk ? { accountId: form.login, acr: MFA, amr: ['pwd', 'otp'] }
                        : { accountId: form.login, acr: PWD, amr: ['pwd'] };
    return await provider.interactionFinished(req, res, { login },
                                              { mergeWithLastSubmission: false });
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    return res.end(`interaction failed: ${err.message}`);
  }
});
server.listen(port, '127.0.0.1', () => console.log(`upstream listening on ${issuer}`));
provider.on('backchannel.success', (client) => console.log(`backchannel.success ${client.clientId}`));
provider.on('backchannel.error', (ctx, err, client) => console.log(`backchannel.error ${client?.clientId}: ${err?.message} ${err?.cause?.code} ${err?.cause?.message}`));
provider.on('server_error', (ctx, err) => console.log(`server_error: ${err?.message}`));
