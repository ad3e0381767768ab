// A real OpenID Connect provider for Herald's sign-in tests (panva/oidc-provider), started by tests/oidc/provider.py.
//
// Each test person is a confidential client using the client-credentials grant: the access token is a JWT whose
// `sub` is the client id, with the person's email, name and groups as claims. That is a token from a real
// provider, signed with keys published at its jwks_uri, without a login form to drive.
//
//   node provider.mjs <config.json>      config: {port, origin, clients: [{client_id, client_secret, email, name,
//                                                  groups, ttl}], resources: {<resource indicator>: <audience>}}
//
// POST /__rotate makes a new signing key and puts it first (the old ones stay published, as providers do while
// tokens signed with them are still valid); tokens issued afterwards carry the new key id.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;
const people = Object.fromEntries(config.clients.map((client) => [client.client_id, client]));
const defaultResource = Object.keys(config.resources)[0];
const keys = [];
let generation = 0;

async function newKey() {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  generation += 1;
  return { ...jwk, kid: `key-${generation}`, alg: 'RS256', use: 'sig' };
}

function build() {
  const provider = new Provider(issuer, {
    clients: config.clients.map(({ client_id, client_secret }) => ({
      client_id,
      client_secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
    })),
    jwks: { keys: [...keys] },
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => defaultResource,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator, client) => {
          const audience = config.resources[resourceIndicator];
          if (!audience) throw new Error(`unknown resource ${resourceIndicator}`);
          return {
            audience,
            scope: 'herald',
            accessTokenFormat: 'jwt',
            accessTokenTTL: people[client.clientId]?.ttl ?? 600,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    extraTokenClaims: (ctx, token) => {
      const person = people[token.clientId];
      return person ? { email: person.email, name: person.name, groups: person.groups ?? [] } : undefined;
    },
    // The SPA page of the browser test signs in from its own origin.
    clientBasedCORS: (ctx, origin) => origin === config.origin,
    cookies: { keys: ['test-only-cookie-key'] },
  });
  return provider.callback();
}

keys.push(await newKey());
let handler = build();

const server = http.createServer(async (req, res) => {
  if (req.method === 'POST' && req.url === '/__rotate') {
    keys.unshift(await newKey());
    handler = build();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kid: keys[0].kid }));
    return;
  }
  handler(req, res);
});
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer}\n`);
});
