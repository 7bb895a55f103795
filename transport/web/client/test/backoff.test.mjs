// The reconnect policy at the WebSocket seam: a fake socket class and
// node:test's fake timers, so that every delay is checked exactly.

import { test, mock, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Switchboard, backoffDelay } from '../switchboard.js';

// FakeSocket is the WebSocket seam: the test opens, feeds and closes it.
class FakeSocket {
  static made = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.sent = [];
    this.readyState = 0;
    FakeSocket.made.push(this);
  }
  send(data) { this.sent.push(JSON.parse(data)); }
  close() { this.readyState = 3; }
  welcome(node = 'n1') {
    this.readyState = 1;
    this.onmessage?.({ data: JSON.stringify({ event: 'welcome', client_id: 'me', node }) });
  }
  deliver(ev) { this.onmessage?.({ data: JSON.stringify(ev) }); }
  end(code, reason = '') { this.readyState = 3; this.onclose?.({ code, reason }); }
}

beforeEach(() => {
  FakeSocket.made = [];
  mock.timers.enable({ apis: ['setTimeout'] });
});
afterEach(() => mock.timers.reset());

const BACKOFF = { initial: 500, max: 10000, factor: 2 };

function fake(options = {}) {
  const sb = new Switchboard(['ws://a.test/ws', 'ws://b.test/ws'], { WebSocket: FakeSocket, backoff: BACKOFF, pingAfter: 0, ...options });
  const states = [];
  sb.on('state', (s, info) => states.push([s, info]));
  return { sb, states };
}

const flush = () => new Promise((ok) => setImmediate(ok));

test('backoffDelay is uniform in [0, min(max, initial * factor^attempt))', () => {
  for (let attempt = 0; attempt < 40; attempt++) {
    const cap = Math.min(BACKOFF.max, BACKOFF.initial * 2 ** attempt);
    assert.equal(backoffDelay(attempt, BACKOFF, () => 0), 0);
    assert.equal(backoffDelay(attempt, BACKOFF, () => 0.9999999), cap - 1);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(attempt, BACKOFF);
      assert.ok(d >= 0 && d < cap, `attempt ${attempt}: ${d} outside [0, ${cap})`);
    }
  }
});

test('failed attempts wait the jittered backoff, capped at max, and the next socket opens only then', async () => {
  const { sb, states } = fake({ random: () => 0.9999999 });
  sb.connect();
  await flush();
  assert.equal(FakeSocket.made.length, 1);
  const want = [499, 999, 1999, 3999, 7999, 9999, 9999];
  for (const [i, delay] of want.entries()) {
    FakeSocket.made.at(-1).end(1006);
    await flush();
    const [state, info] = states.at(-1);
    assert.equal(state, 'reconnecting');
    assert.equal(info.delay, delay, `attempt ${i + 1}`);
    assert.equal(info.attempt, i + 1);
    mock.timers.tick(delay - 1);
    await flush();
    assert.equal(FakeSocket.made.length, i + 1, 'no socket before the delay is over');
    mock.timers.tick(1);
    await flush();
    assert.equal(FakeSocket.made.length, i + 2, 'a socket once it is over');
  }
  // The URLs are tried in turn.
  assert.deepEqual(FakeSocket.made.slice(0, 3).map((s) => new URL(s.url).host), ['a.test', 'b.test', 'a.test']);
  sb.close();
});

test('a welcome resets the backoff; a drain (1001) reconnects at once', async () => {
  const { sb, states } = fake({ random: () => 0.5 });
  sb.connect();
  await flush();
  FakeSocket.made[0].end(1006);
  mock.timers.tick(250);
  await flush();
  FakeSocket.made[1].welcome();
  assert.equal(sb.state, 'connected');
  FakeSocket.made[1].end(1001, 'node shutting down');
  await flush();
  assert.equal(states.at(-1)[1].delay, 0);
  mock.timers.tick(0);
  await flush();
  assert.equal(FakeSocket.made.length, 3, 'reconnected at once after 1001');
  FakeSocket.made[2].end(1006); // the second failure in a row waits again
  await flush();
  assert.equal(states.at(-1)[1].delay, 500, 'attempt 2: half of 1000');
  sb.close();
});

test('1008 and 4001 without getToken close for good; close() stops a pending retry', async () => {
  for (const code of [1008, 4001]) {
    FakeSocket.made = [];
    const { sb } = fake();
    sb.connect();
    await flush();
    FakeSocket.made[0].welcome();
    FakeSocket.made[0].end(code);
    await flush();
    assert.equal(sb.state, 'closed', `after ${code}`);
    mock.timers.tick(60000);
    await flush();
    assert.equal(FakeSocket.made.length, 1, `no reconnect after ${code}`);
  }
  FakeSocket.made = [];
  const { sb } = fake();
  sb.connect();
  await flush();
  FakeSocket.made[0].end(1006);
  sb.close();
  mock.timers.tick(60000);
  await flush();
  assert.equal(FakeSocket.made.length, 1, 'no reconnect after close()');
});

test('repeated and skipped offsets: a repeat is dropped, a skip is reported as a gap', async () => {
  const { sb } = fake();
  sb.connect();
  await flush();
  const ws = FakeSocket.made[0];
  ws.welcome();
  const joining = sb.join('r');
  const join = ws.sent.at(-1);
  ws.deliver({ event: 'ack', id: join.id, room: 'r', offset: 3, epoch: 'E' });
  const room = await joining;
  const got = [];
  const gaps = [];
  room.on('message', (ev) => got.push(ev.offset));
  room.on('gap', (ev) => gaps.push(ev));
  const chat = (offset, epoch = 'E') => ws.deliver({ event: 'chat', from: 'x', room: 'r', content: 'c', offset, epoch });
  chat(3); // the join's top: already there when joined
  chat(4);
  chat(4);
  chat(6);
  chat(1, 'F'); // a new epoch starts at 1
  assert.deepEqual(got, [4, 6, 1]);
  assert.equal(gaps.length, 1);
  assert.equal(gaps[0].reason, 'skipped');
  assert.equal(gaps[0].offset, 5);
  // The rejoin after a drop asks from the last delivered position.
  ws.end(1006);
  mock.timers.tick(10000);
  await flush();
  const next = FakeSocket.made.at(-1);
  next.welcome();
  assert.deepEqual(next.sent[0], { type: 'join_room', room: 'r', since: { offset: 1, epoch: 'F' }, id: next.sent[0].id });
  sb.close();
});

test('a server publication without a room goes to the room whose epoch it carries', async () => {
  const { sb } = fake();
  sb.connect();
  await flush();
  const ws = FakeSocket.made[0];
  ws.welcome();
  const join = (name, epoch) => {
    const p = sb.join(name);
    ws.deliver({ event: 'ack', id: ws.sent.at(-1).id, room: name, offset: 0, epoch });
    return p;
  };
  const r1 = await join('one', 'E1');
  const r2 = await join('two', 'E2');
  const seen = { one: [], two: [], client: [] };
  r1.on('event', (ev) => seen.one.push(ev.offset));
  r2.on('event', (ev) => seen.two.push(ev.offset));
  sb.on('event', (ev) => seen.client.push(ev.event));
  ws.deliver({ event: 'deploy', offset: 1, epoch: 'E2' });
  ws.deliver({ event: 'deploy', offset: 1, epoch: 'E2' }); // a repeat
  ws.deliver({ event: 'deploy', offset: 1, epoch: 'E9' }); // nobody's
  ws.deliver({ event: 'notice' });
  assert.deepEqual(seen, { one: [], two: [1], client: ['deploy', 'notice'] });
  assert.equal(r2.offset, 1);
  sb.close();
});

test('a join in flight when the socket ends is sent again on the next one; other requests fail', async () => {
  const { sb } = fake({ random: () => 0.5 });
  sb.connect();
  await flush();
  const ws = FakeSocket.made[0];
  ws.welcome();
  const joining = sb.join('again');
  const chat = sb.chat('in flight');
  ws.end(1006);
  assert.equal((await chat.catch((e) => e)).code, 'disconnected');
  mock.timers.tick(250); // well within the requests' 10 s
  await flush();
  const next = FakeSocket.made.at(-1);
  next.welcome();
  const join = next.sent.find((f) => f.type === 'join_room');
  assert.equal(join.room, 'again');
  next.deliver({ event: 'ack', id: join.id, room: 'again', offset: 7, epoch: 'E' });
  const room = await joining;
  assert.deepEqual(room.position, { offset: 7, epoch: 'E' });
  sb.close();
});
