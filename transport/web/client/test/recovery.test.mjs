// Reconnection and recovery against one real node: connections cut by a
// TCP relay (the node keeps running), and the node itself restarted.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Node, Relay, client, once, waitFor } from './nodes.mjs';

let node; // history of 5 per room, so that a long absence cannot be recovered
before(async () => { node = await new Node(['--history-size', '5']).start(); });
after(() => node?.stop());

async function relayed(t) {
  const relay = await new Relay(node.port).start();
  t.after(() => relay.close());
  return relay;
}

// collect records a room's messages and recovery events.
function collect(room) {
  const got = { contents: [], offsets: [], recovered: [], gaps: [] };
  room.on('message', (ev) => { got.contents.push(ev.content); got.offsets.push(ev.offset); });
  room.on('recovered', (ev) => got.recovered.push(ev));
  room.on('gap', (ev) => got.gaps.push(ev));
  return got;
}

test('a cut connection reconnects, rejoins with since and recovers what was missed, once each', async (t) => {
  const relay = await relayed(t);
  const away = await client(t, relay.url, { clientId: 'away' });
  const here = await client(t, node.url, { clientId: 'here' });
  const roomAway = await away.join('rec');
  const roomHere = await here.join('rec');
  const got = collect(roomAway);
  for (let i = 1; i <= 2; i++) await roomHere.publish(`before ${i}`);
  await waitFor(() => got.contents.length === 2, 'the first two');

  relay.refusing = true;
  const lost = once(away, 'state', (s) => s === 'reconnecting');
  relay.cut();
  await lost;
  for (let i = 1; i <= 3; i++) await roomHere.publish(`while away ${i}`);
  relay.refusing = false;
  await once(away, 'recovered', () => true);
  await roomHere.publish('after');
  await waitFor(() => got.contents.length === 6, 'six messages');
  assert.deepEqual(got.contents, ['before 1', 'before 2', 'while away 1', 'while away 2', 'while away 3', 'after']);
  assert.deepEqual(got.offsets, [1, 2, 3, 4, 5, 6]);
  assert.equal(got.recovered.length, 1);
  assert.deepEqual(got.recovered[0].since, { offset: 2, epoch: roomAway.epoch });
  assert.deepEqual(got.gaps, []);
  assert.equal(roomAway.state, 'joined');
});

test('a rejoin past the kept history reports a gap with the room\'s new position', async (t) => {
  const relay = await relayed(t);
  const away = await client(t, relay.url, { clientId: 'away2' });
  const here = await client(t, node.url, { clientId: 'here2' });
  const roomAway = await away.join('trim');
  const roomHere = await here.join('trim');
  const got = collect(roomAway);
  await roomHere.publish('seen');
  await waitFor(() => got.contents.length === 1, 'the first');
  relay.refusing = true;
  relay.cut();
  await once(away, 'state', (s) => s === 'reconnecting');
  for (let i = 1; i <= 8; i++) await roomHere.publish(`missed ${i}`); // history keeps 5
  relay.refusing = false;
  const [gap] = await once(away, 'gap');
  assert.equal(gap.reason, 'not_recovered');
  assert.deepEqual(gap.since, { offset: 1, epoch: roomAway.epoch });
  assert.equal(gap.offset, 9);
  await roomHere.publish('live again');
  await waitFor(() => got.contents.length === 2, 'the live one');
  assert.deepEqual(got.contents, ['seen', 'live again'], 'nothing of the lost part is delivered');
  assert.deepEqual(got.offsets, [1, 10]);
  // The application reloads what the node still keeps.
  const h = await roomAway.history();
  assert.deepEqual(h.publications.map((p) => p.offset), [6, 7, 8, 9, 10]);
});

test('requests made while reconnecting wait in the queue, in order, and past its bound are refused', async (t) => {
  const relay = await relayed(t);
  const sender = await client(t, relay.url, { clientId: 'queued', queueLimit: 3 });
  const reader = await client(t, node.url, { clientId: 'reader' });
  const room = await sender.join('queue');
  const got = collect(await reader.join('queue'));
  relay.refusing = true;
  relay.cut();
  await once(sender, 'state', (s) => s === 'reconnecting');
  const sent = [room.publish('q1'), room.publish('q2'), room.publish('q3')];
  const refused = await room.publish('q4').then(() => null, (e) => e);
  assert.equal(refused?.code, 'queue_full');
  relay.refusing = false;
  const acks = await Promise.all(sent);
  assert.equal(acks.length, 3);
  await waitFor(() => got.contents.length === 3, 'the three queued messages');
  assert.deepEqual(got.contents, ['q1', 'q2', 'q3']);
  assert.equal(sender.state, 'connected');
});

test('a queued request that waits longer than its timeout is rejected, and not sent later', async (t) => {
  const relay = await relayed(t);
  const sender = await client(t, relay.url, { clientId: 'late', requestTimeout: 300 });
  const reader = await client(t, node.url, { clientId: 'reader2' });
  const room = await sender.join('late');
  const got = collect(await reader.join('late'));
  relay.refusing = true;
  relay.cut();
  await once(sender, 'state', (s) => s === 'reconnecting');
  const err = await room.publish('too late').then(() => null, (e) => e);
  assert.equal(err?.code, 'timeout');
  relay.refusing = false;
  await once(sender, 'state', (s) => s === 'connected');
  await room.publish('in time');
  await waitFor(() => got.contents.length >= 1, 'the later message');
  assert.deepEqual(got.contents, ['in time']);
});

test('a restarted single node starts a new epoch: the rejoin reports a gap, live traffic resumes', async (t) => {
  const sb = await client(t, node.url, { clientId: 'restart', backoff: { initial: 50, max: 200 } });
  const other = await client(t, node.url, { clientId: 'other' });
  const room = await sb.join('restart');
  const got = collect(room);
  await (await other.join('restart')).publish('before');
  await waitFor(() => got.contents.length === 1, 'the first');
  const epoch = room.epoch;
  const closes = [];
  sb.on('disconnect', (info) => closes.push(info.code));
  await node.stop(); // SIGTERM: the node drains with 1001
  await node.start();
  const [gap] = await once(sb, 'gap', () => true, 20000);
  assert.equal(closes[0], 1001);
  assert.equal(gap.reason, 'not_recovered');
  assert.notEqual(gap.epoch, epoch);
  await waitFor(() => other.state === 'connected' && other.rooms.get('restart').state === 'joined', 'other rejoined', 20000);
  await other.rooms.get('restart').publish('after');
  await waitFor(() => got.contents.length === 2, 'the live one');
  assert.deepEqual(got.contents, ['before', 'after']);
  assert.equal(room.epoch, gap.epoch);
});
