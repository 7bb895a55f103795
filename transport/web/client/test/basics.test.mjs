// The client against one real node: requests as promises, errors as
// rejections, events to their handlers, heartbeats answered.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { Switchboard, SwitchboardError } from '../switchboard.js';
import { Node, client, once, waitFor } from './nodes.mjs';

let node; // history on (the default, 100 per room); pings every second
before(async () => { node = await new Node(['--ping-interval', '1s', '--pong-timeout', '1s']).start(); });
after(() => node.stop());

test('join, publish and ack; every member gets the message with its offset', async (t) => {
  const ada = await client(t, node.url, { clientId: 'ada' });
  const bob = await client(t, node.url, { clientId: 'bob' });
  assert.equal(ada.state, 'connected');
  assert.equal(ada.clientId, 'ada');
  const roomA = await ada.join('lobby');
  assert.equal(roomA.state, 'joined');
  assert.equal(roomA.offset, 0, 'a new stream is at offset 0');
  assert.equal(typeof roomA.epoch, 'string');
  const roomB = await bob.join('lobby');
  const joined = once(roomA, 'joined', (ev) => ev.user_id === 'carl');
  const carl = await client(t, node.url, { clientId: 'carl' });
  await carl.join('lobby');
  await joined;

  const got = { ada: [], bob: [] };
  roomA.on('message', (ev) => got.ada.push(ev));
  roomB.on('message', (ev) => got.bob.push(ev));
  const ack = await roomA.publish('hello');
  assert.equal(ack.event, 'ack');
  await roomA.publish('again');
  await waitFor(() => got.ada.length === 2 && got.bob.length === 2, 'both members got both messages');
  for (const list of [got.ada, got.bob]) {
    assert.deepEqual(list.map((e) => [e.from, e.content, e.offset]), [['ada', 'hello', 1], ['ada', 'again', 2]]);
  }
  assert.equal(roomB.offset, 2);

  const left = once(roomA, 'left', (ev) => ev.user_id === 'carl');
  await carl.rooms.get('lobby').leave();
  await left;
  assert.equal(carl.rooms.size, 0);
});

test('direct messages, global chat, history and stats resolve on the answer', async (t) => {
  const ada = await client(t, node.url, { clientId: 'ada2' });
  const bob = await client(t, node.url, { clientId: 'bob2' });
  const direct = once(bob, 'direct');
  await ada.direct('bob2', 'psst');
  const [dm] = await direct;
  assert.deepEqual([dm.from, dm.content], ['ada2', 'psst']);
  const chat = once(bob, 'chat', (ev) => ev.content === 'to all');
  await ada.chat('to all');
  await chat;

  const room = await ada.join('hist');
  for (let i = 1; i <= 5; i++) await room.publish(`m${i}`);
  await waitFor(() => room.offset === 5, 'ada saw her five messages');
  const h = await room.history({ limit: 3 });
  assert.equal(h.event, 'history');
  assert.deepEqual(h.publications.map((p) => [p.content, p.offset]), [['m3', 3], ['m4', 4], ['m5', 5]]);
  assert.equal(h.epoch, room.epoch);
  const stats = await ada.stats();
  assert.equal(stats.event, 'stats');
  assert.ok(stats.local_connections >= 2);
});

test('many queries at once all resolve: the client keeps 4 out, as the node allows', async (t) => {
  const ada = await client(t, node.url, { clientId: 'ada5' });
  const room = await ada.join('many-queries');
  for (let i = 1; i <= 3; i++) await room.publish(`m${i}`);
  const answers = await Promise.all([
    ...Array.from({ length: 12 }, () => room.history({ limit: 2 })),
    ...Array.from({ length: 6 }, () => room.presence()),
  ]);
  assert.deepEqual(answers.map((a) => a.event), [...Array(12).fill('history'), ...Array(6).fill('presence')]);
  for (const h of answers.slice(0, 12)) assert.deepEqual(h.publications.map((p) => p.content), ['m2', 'm3']);
});

test('errors are rejections with the node\'s code; the connection stays', async (t) => {
  const ada = await client(t, node.url, { clientId: 'ada3' });
  const rejects = async (p, code) => {
    const err = await p.then(() => null, (e) => e);
    assert.ok(err instanceof SwitchboardError, `${code}: ${err}`);
    assert.equal(err.code, code);
    assert.ok(err.message.length > 0);
  };
  await rejects(ada.direct('nobody-here', 'hello?'), 'user_offline');
  await rejects(ada.join('not a room!'), 'invalid_room');
  assert.equal(ada.rooms.size, 0, 'a refused join leaves no room behind');
  await rejects((await ada.join('r')).history({ limit: 0 }), 'invalid_message');
  const room = await ada.join('p');
  // Presence (protocol section 7): who is in the room, across the cluster.
  const presence = await room.presence();
  assert.equal(presence.event, 'presence');
  assert.equal(presence.room, 'p');
  assert.deepEqual(presence.members, [{ user_id: 'ada3', connections: 1 }], JSON.stringify(presence));
  assert.equal(presence.users, 1);
  assert.equal(presence.connections, 1);
  await room.leave();
  await rejects(room.publish('after leaving'), 'not_member');
  assert.equal(ada.state, 'connected');
  await ada.chat('still served');
});

test('a request without an answer times out with a clear error', async (t) => {
  // A node that accepts the socket, welcomes and never answers.
  const { WebSocketServer } = await import('ws');
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  wss.on('connection', (s) => s.send(JSON.stringify({ event: 'welcome', client_id: 'x', node: 'mute' })));
  t.after(() => wss.close());
  await new Promise((ok) => wss.once('listening', ok));
  const sb = await client(t, `ws://127.0.0.1:${wss.address().port}/ws`, { requestTimeout: 200 });
  const err = await sb.chat('hello?').then(() => null, (e) => e);
  assert.equal(err?.code, 'timeout');
  assert.match(err.message, /no answer from the node within 200 ms \(chat\)/);
  for (const s of wss.clients) s.terminate();
});

test('requests before connect() and after close() reject at once', async () => {
  const sb = new Switchboard(node.url, { WebSocket });
  assert.equal(sb.state, 'closed');
  assert.equal((await sb.chat('x').catch((e) => e)).code, 'closed');
  assert.throws(() => new Switchboard(node.url, { WebSocket: null }), /no WebSocket implementation/);
});

test('the node\'s pings are answered: an idle client stays connected', async (t) => {
  // The node pings every second and drops a client silent for 1 s after a
  // ping; the client's own probe is off, so only pong frames keep it.
  let pings = 0;
  class Counting extends WebSocket {
    constructor(...args) {
      super(...args);
      this.on('ping', () => { pings += 1; });
    }
  }
  const sb = await client(t, node.url, { clientId: 'idle', WebSocket: Counting, pingAfter: 0 });
  const closes = [];
  sb.on('disconnect', (info) => closes.push(info));
  await waitFor(() => pings >= 4, 'four pings from the node');
  assert.deepEqual(closes, []);
  assert.equal(sb.state, 'connected');
  await sb.chat('still here');
});

test('the client probes a silent node and leaves a socket whose pong never comes', async (t) => {
  const { WebSocketServer } = await import('ws');
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  let n = 0;
  wss.on('connection', (s) => {
    n += 1;
    s.send(JSON.stringify({ event: 'welcome', client_id: 'x', node: `mute${n}` }));
  });
  t.after(() => wss.close());
  await new Promise((ok) => wss.once('listening', ok));
  const sb = await client(t, `ws://127.0.0.1:${wss.address().port}/ws`, { requestTimeout: 200, pingAfter: 100 });
  const [, info] = await once(sb, 'state', (s) => s === 'reconnecting');
  assert.match(info.reason, /no pong/);
  await once(sb, 'state', (s, i) => s === 'connected' && i.node === 'mute2');
  sb.close();
  for (const s of wss.clients) s.terminate();
});
