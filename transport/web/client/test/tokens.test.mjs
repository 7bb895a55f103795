// Tokens against a real node started with --jwt-secret: a session whose
// token expires is closed with 4001, and the client reconnects only with a
// new token from getToken.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { Switchboard } from '../switchboard.js';
import { Node, client, once, token, waitFor } from './nodes.mjs';

const SECRET = 'client-test-secret-of-32-bytes!!';
let node;
// No leeway, so that a token of 2 s ends its session within about 2 s.
before(async () => { node = await new Node(['--jwt-secret', SECRET, '--jwt-leeway', '0s']).start(); });
after(() => node?.stop());

test('an expired session reconnects with the token getToken gives, and rejoins its rooms', async (t) => {
  const given = [];
  const getToken = () => {
    // The first token lives 2 s, the next ones a minute.
    const tok = token(SECRET, 'tess', given.length === 0 ? 2 : 60);
    given.push(tok);
    return tok;
  };
  const sb = await client(t, node.url, { getToken });
  assert.equal(sb.clientId, 'tess', 'the id is the token\'s sub');
  const room = await sb.join('secure');
  const [, info] = await once(sb, 'state', (s) => s === 'reconnecting', 15000);
  assert.equal(info.code, 4001);
  const [, again] = await once(sb, 'state', (s) => s === 'connected', 15000);
  assert.equal(again.reconnected, true);
  assert.equal(given.length, 2, 'one new token after the 4001');
  await waitFor(() => room.state === 'joined', 'the room rejoined');
  await room.publish('with the new token');
});

test('without a new token a 4001 is final: closed, and queued requests fail', async (t) => {
  const tok = token(SECRET, 'static', 2);
  const sb = await client(t, node.url, { token: tok });
  const room = await sb.join('secure2');
  const [, info] = await once(sb, 'state', (s) => s === 'closed', 15000);
  assert.equal(info.code, 4001);
  assert.equal(info.error.code, 'token_expired');
  assert.equal((await room.publish('x').catch((e) => e)).code, 'closed');
});

test('a refused handshake (401) with the same token from getToken stays closed', async (t) => {
  let calls = 0;
  const bad = token('another-secret-of-32-bytes-long!', 'mallory', 60);
  const sb = new Switchboard(node.url, { WebSocket, getToken: () => { calls += 1; return bad; } });
  t.after(() => sb.close());
  const closed = once(sb, 'state', (s) => s === 'closed', 10000);
  sb.connect();
  const [, info] = await closed;
  assert.equal(info.status, 401);
  assert.equal(info.error.code, 'unauthorized');
  assert.equal(calls, 2, 'asked once to connect and once after the refusal');
});

test('a refused handshake (401) is cured by a new token', async (t) => {
  const tokens = [token('another-secret-of-32-bytes-long!', 'nina', 60), token(SECRET, 'nina', 60)];
  const sb = await client(t, node.url, { getToken: () => tokens.shift() });
  assert.equal(sb.clientId, 'nina');
});
