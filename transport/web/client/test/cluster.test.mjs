// Two real nodes over a real redis-server: node A drains (SIGTERM) while
// traffic flows, its clients move to node B, rejoin with since and miss
// nothing, and receive nothing twice.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Node, client, hasRedis, once, startRedis, waitFor } from './nodes.mjs';

const inCI = process.env.CI && process.env.CI !== 'false';
const skip = !hasRedis() && !inCI && 'redis-server is not installed (apt-get install redis-server, or make deps)';

// The senders publish as fast as the acks come: past the default rate limit.
const FAST = ['--rate-limit', '100000'];
let redis; let a; let b;
before(async () => {
  if (skip) return;
  redis = await startRedis();
  a = await new Node(['--redis', redis.url, '--node-id', 'node-a', ...FAST]).start();
  b = await new Node(['--redis', redis.url, '--node-id', 'node-b', ...FAST]).start();
});
after(async () => {
  await a?.stop();
  await b?.stop();
  await redis?.stop();
});

test('a drain under traffic: every message reaches every member exactly once, in offset order', { skip }, async (t) => {
  const TOTAL = 400;
  const urls = [a.url, b.url]; // tried in turn: a drained client goes to B
  const members = [];
  for (let i = 0; i < 3; i++) {
    const sb = await client(t, urls, { clientId: `member${i}` });
    assert.equal(sb.node, 'node-a');
    const room = await sb.join('drain');
    const got = { offsets: [], contents: [], recovered: 0, gaps: [] };
    room.on('message', (ev) => { got.offsets.push(ev.offset); got.contents.push(ev.content); });
    sb.on('recovered', () => { got.recovered += 1; });
    sb.on('gap', (ev) => got.gaps.push(ev));
    members.push({ sb, got });
  }
  // A sender on node B, and one on node A that keeps sending through the
  // drain: what it sends while reconnecting waits in its queue.
  const sender = await client(t, [b.url], { clientId: 'sender' });
  const senderRoom = await sender.join('drain');
  const mover = await client(t, urls, { clientId: 'mover' });
  const moverRoom = await mover.join('drain');

  let draining = null;
  const moverAcked = [];
  const moverLost = [];
  let queuedWhileAway = 0;
  let stop = false;
  const moverLoop = (async () => {
    for (let i = 0; !stop; i++) {
      const content = `mover ${i}`;
      if (mover.state !== 'connected') queuedWhileAway += 1;
      try {
        await moverRoom.publish(content);
        moverAcked.push(content);
      } catch (err) {
        assert.equal(err.code, 'disconnected', `mover: ${err}`);
        moverLost.push(content);
      }
      if (i % 5 === 4) await new Promise((r) => setTimeout(r, 1));
    }
  })();

  for (let i = 0; i < TOTAL; i++) {
    if (i === TOTAL / 4) draining = a.stop();
    await senderRoom.publish(`sender ${i}`);
  }
  await draining;
  await waitFor(() => mover.node === 'node-b' && mover.state === 'connected', 'the mover is on node B');
  for (let i = 0; i < 20; i++) await senderRoom.publish(`after ${i}`);
  stop = true;
  await moverLoop;

  const want = new Set([...Array.from({ length: TOTAL }, (_, i) => `sender ${i}`),
    ...Array.from({ length: 20 }, (_, i) => `after ${i}`), ...moverAcked]);
  for (const [i, { sb, got }] of members.entries()) {
    await waitFor(() => want.size <= got.contents.length && [...want].every((c) => got.contents.includes(c)),
      `member${i} has every acknowledged message`, 20000);
    assert.equal(sb.node, 'node-b', `member${i} moved to node B`);
    assert.equal(got.recovered, 1, `member${i} recovered once`);
    assert.deepEqual(got.gaps, [], `member${i} has no gap`);
    assert.equal(new Set(got.contents).size, got.contents.length, `member${i}: no message twice`);
    got.offsets.forEach((o, k) => assert.equal(o, k + 1, `member${i}: offsets consecutive from 1`));
    for (const c of got.contents) {
      assert.ok(want.has(c) || moverLost.includes(c), `member${i}: unexpected ${c}`);
    }
  }
  assert.ok(moverAcked.length > 0);
  t.diagnostic(`mover: ${moverAcked.length} acked, ${moverLost.length} lost with the socket, ${queuedWhileAway} sent while reconnecting`);
});

test('a client of the drained node recovers on the other node the messages sent while it was away', { skip }, async (t) => {
  // Node A is gone after the first test; start it again for this one.
  if (!a.proc) await a.start();
  const member = await client(t, [a.url, b.url], { clientId: 'late-member' });
  assert.equal(member.node, 'node-a');
  const room = await member.join('away');
  const got = [];
  room.on('message', (ev) => got.push(ev.offset));
  const sender = await client(t, [b.url], { clientId: 'late-sender' });
  const senderRoom = await sender.join('away');
  await senderRoom.publish('one');
  await waitFor(() => got.length === 1, 'the first');
  const recovered = once(member, 'recovered', () => true, 20000);
  await a.stop();
  await recovered;
  await senderRoom.publish('two');
  await waitFor(() => got.length === 2, 'the second');
  assert.deepEqual(got, [1, 2]);
});
