// An OpenID provider for the identity package's tests: npm oidc-provider
// (certified), configured from the environment by the Go test that starts it.
//
//   PORT          loopback port to listen on (issuer http://127.0.0.1:PORT)
//   OIDC_CLIENTS  JSON array of client metadata (redirect_uris, jwks_uri …)
//   OIDC_FAPI2    "1": FAPI 2.0 profile: PAR required, DPoP with server
//                 nonces, private_key_jwt, PKCE (the clients say the rest)
//   OIDC_CLAIMS   JSON object of claims every account has besides sub
//                 (name, nationality, national_id)
//
// Accounts: any login name is the subject. Login and consent are
// oidc-provider's devInteractions forms, posted by the test over net/http.
// Prints "ready <issuer>" on stdout once listening.
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const fapi2 = process.env.OIDC_FAPI2 === '1';
const clients = JSON.parse(process.env.OIDC_CLIENTS || '[]');
const accountClaims = JSON.parse(process.env.OIDC_CLAIMS || '{}');

function privateJWK(type, options, alg, kid) {
  const { privateKey } = crypto.generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid };
}

const provider = new Provider(issuer, {
  clients,
  jwks: {
    keys: [
      privateJWK('ec', { namedCurve: 'P-256' }, 'ES256', 'provider-es256'),
      privateJWK('rsa', { modulusLength: 2048 }, 'RS256', 'provider-rs256'),
    ],
  },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    profile: ['name'],
    nationality: ['nationality'],
    national_id: ['national_id'],
  },
  // The claims of the scopes asked for go in the ID token itself.
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { ...accountClaims, sub: id };
      },
    };
  },
  pkce: { required: () => true },
  // Our JWKS is on loopback, which oidc-provider's SSRF guard refuses:
  // fetch without it (tests only; a real provider fetches a public URL).
  fetch: (url, options) => {
    delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  features: {
    devInteractions: { enabled: true },
    encryption: { enabled: true },
    pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: fapi2 },
    dPoP: { enabled: true, ...(fapi2 ? { nonceSecret: crypto.randomBytes(32), requireNonce: () => true } : {}) },
    fapi: fapi2 ? { enabled: true, profile: '2.0' } : { enabled: false },
  },
  enabledJWA: {
    idTokenEncryptionAlgValues: ['ECDH-ES+A256KW', 'ECDH-ES', 'RSA-OAEP-256'],
    idTokenEncryptionEncValues: ['A256GCM', 'A128GCM', 'A256CBC-HS512', 'A128CBC-HS256'],
  },
});

// Refusals go to stderr, which the Go test shows when it fails.
for (const event of ['pushed_authorization_request.error', 'grant.error', 'authorization.error', 'server_error']) {
  provider.on(event, (ctx, err) => {
    let line = `${event}: ${err.error}: ${err.error_description}`;
    for (let c = err.cause; c; c = c.cause) line += ` <- ${c.message}`;
    console.error(line);
  });
}

provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
