// Browser test of the demo page, run by transport/browser_test.go (go test),
// which starts two real nodes on one broker and a small control endpoint
// that stops and restarts node A on the same port.
//
// Two pages in headless Chromium (the system's /usr/bin/chromium, driven by
// playwright-core; no browser is downloaded): alice on node A, bob on node B,
// both without a token, so the nodes (which verify tokens) name them
// guest:alice and guest:bob.
// They exchange room and direct messages across the nodes, receive an event
// pushed with POST /api/publish, and alice's page must reconnect on its own,
// rejoin its room and recover the messages sent meanwhile, after node A
// restarts. The page is built on the client the node serves at
// /switchboard.js. Every check is an assertion; the
// first failure ends the run with exit code 1.
//
// Environment (set by the Go test):
//   SB_URL_A, SB_URL_B     http://127.0.0.1:PORT of node A and node B
//   SB_URL_RR              a round-robin balancer in front of both
//   SB_NODE_A, SB_NODE_B   their node ids
//   SB_CONTROL             http://127.0.0.1:PORT: POST /stop-a, POST /start-a
//   SB_API_KEY             the nodes' publish API key
//   SB_TOKEN               a JWT for user carol, accepted by both nodes
//   SB_OUT                 directory for screenshots
//   SB_CHROMIUM            Chromium executable (default /usr/bin/chromium)
//   SB_TIMEOUT_MS          overall bound (default 60000)

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this through go test (transport/browser_test.go)`);
  return v;
}

const A = need('SB_URL_A');
const B = need('SB_URL_B');
const RR = need('SB_URL_RR');
const NODE_A = need('SB_NODE_A');
const NODE_B = need('SB_NODE_B');
const CONTROL = need('SB_CONTROL');
const API_KEY = need('SB_API_KEY');
const TOKEN = need('SB_TOKEN');
const OUT = need('SB_OUT');
const CHROMIUM = process.env.SB_CHROMIUM || '/usr/bin/chromium';
const TIMEOUT_MS = Number(process.env.SB_TIMEOUT_MS || 60000);
const WAIT = { timeout: 10000 }; // one expectation; reconnects have their own
// Clients without a token are guests on nodes that verify tokens: their ids
// are their names behind "guest:", which no token can claim.
const ALICE = 'guest:alice';
const BOB = 'guest:bob';

const checks = [];
const t0 = Date.now();
let tLast = t0;
function ok(what) {
  checks.push(what);
  const now = Date.now();
  console.log(`ok ${checks.length} - ${what} (${now - tLast} ms)`);
  tLast = now;
}

async function control(path) {
  const res = await fetch(CONTROL + path, { method: 'POST' });
  assert.equal(res.status, 200, `control ${path}: ${res.status} ${await res.text()}`);
}

// feedItem finds a message in a page's feed by its kind, sender and text.
function feedItem(page, { kind, from, text }) {
  let sel = `#feed li.msg.${kind}`;
  if (from) sel += `[data-from="${from}"]`;
  return page.locator(sel).filter({ hasText: text });
}

async function waitConnected(page, user, node) {
  await page.locator('#status[data-state="connected"]').waitFor(WAIT);
  const text = await page.locator('#status-text').textContent();
  assert.equal(text, `Connected as ${user} to node ${node}`);
}

async function joinRoom(page, room) {
  await page.fill('#room-input', room);
  await page.click('#join');
  await page.locator(`#rooms li[data-room="${room}"]:not([data-pending])`).waitFor(WAIT);
}

async function sendTo(page, target, text) {
  if (target.room) {
    await page.check('#to-room');
    await page.selectOption('#room-select', target.room);
  } else if (target.user) {
    await page.check('#to-user');
    await page.fill('#dm-user', target.user);
  } else {
    await page.check('#to-all');
  }
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
}

async function main() {
  const profile = mkdtempSync(join(tmpdir(), 'switchboard-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
    colorScheme: 'light',
    reducedMotion: 'reduce',
  });
  const pageErrors = [];
  try {
    const alice = await ctx.newPage();
    const bob = await ctx.newPage();
    const framesA = [];
    for (const [name, page] of [['alice', alice], ['bob', bob]]) {
      page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
    }
    alice.on('websocket', (ws) => ws.on('framereceived', (f) => framesA.push(String(f.payload))));

    // 1. The node serves the page; each page connects to its own node.
    const resp = await alice.goto(`${A}/?name=alice`);
    assert.equal(resp.status(), 200);
    assert.match(resp.headers()['content-security-policy'] || '', /default-src 'self'/);
    assert.match(await alice.title(), /Switchboard demo/);
    await bob.goto(`${B}/?name=bob`);
    ok('node A and node B serve the demo page at / (with a same-origin CSP)');

    // Every control has an accessible name, and the live regions are marked.
    const unnamed = await alice.evaluate(() => [...document.querySelectorAll('input, select, button')]
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
      .map((el) => el.id || el.outerHTML.slice(0, 60)));
    assert.deepEqual(unnamed, [], 'controls without an accessible name');
    assert.equal(await alice.getAttribute('#status', 'role'), 'status');
    assert.equal(await alice.getAttribute('#feed', 'role'), 'log');
    assert.equal(await alice.getByLabel('Name', { exact: true }).inputValue(), 'alice');
    ok('every control has an accessible name; the status and the feed are live regions');

    await alice.click('#connect');
    await waitConnected(alice, ALICE, NODE_A);
    await bob.click('#connect');
    await waitConnected(bob, BOB, NODE_B);
    assert.ok(framesA.some((f) => JSON.parse(f).event === 'welcome'), 'alice received a welcome frame');
    ok(`alice is connected to ${NODE_A}, bob to ${NODE_B}; the status line says so`);

    // 2. The node panel shows node A live, asked over the page's socket.
    await alice.locator('#node-live[data-live="yes"]').waitFor(WAIT);
    await alice.locator('#stat-node', { hasText: NODE_A }).waitFor(WAIT);
    await alice.locator('#stat-broker', { hasText: 'connected' }).waitFor(WAIT);
    await alice.locator('#stat-connections', { hasText: '1' }).waitFor(WAIT);
    ok('the node panel shows node A, its broker connected and 1 connection');

    // Behind a round-robin balancer, which sends each request to the other
    // node, the panel shows the node the page's socket is on, every second.
    const dave = await ctx.newPage();
    dave.on('pageerror', (err) => pageErrors.push(`dave: ${err.message}`));
    await dave.goto(`${RR}/?name=dave`);
    await dave.click('#connect');
    await dave.locator('#status[data-state="connected"]').waitFor(WAIT);
    const daveNode = (await dave.locator('#status-text').textContent()).match(/to node (\S+)$/)[1];
    await dave.evaluate(() => {
      const node = document.getElementById('stat-node');
      window.shownNodes = [];
      new MutationObserver(() => window.shownNodes.push(node.textContent))
        .observe(node, { childList: true, characterData: true, subtree: true });
    });
    await dave.waitForFunction(() => window.shownNodes.length >= 3, null, WAIT);
    const shown = await dave.evaluate(() => window.shownNodes);
    assert.deepEqual([...new Set(shown)], [daveNode], `panel updates ${JSON.stringify(shown)} behind the balancer`);
    await dave.close();
    ok(`behind a round-robin balancer the panel shows ${daveNode}, the node of the page's socket, at every update`);

    // 3. Both join one room; alice sees bob join, across nodes.
    await joinRoom(alice, 'lobby');
    await joinRoom(bob, 'lobby');
    await feedItem(alice, { kind: 'system', text: `${BOB} joined #lobby` }).waitFor(WAIT);
    await alice.locator('#people li[data-online="yes"]', { hasText: BOB }).waitFor(WAIT);
    // bob joined after alice: he learns that she is there from the room's
    // presence (protocol section 7), across the nodes, not from an event.
    await bob.locator('#people li[data-online="yes"]', { hasText: ALICE }).filter({ hasText: '#lobby' }).waitFor(WAIT);
    ok('alice sees "bob joined #lobby" and bob in People; bob, who joined later, finds alice there from the room\'s presence');

    // 4. A room message from alice reaches bob on the other node, and alice.
    await sendTo(alice, { room: 'lobby' }, 'Hello from alice on node A');
    await feedItem(bob, { kind: 'room', from: ALICE, text: 'Hello from alice on node A' }).waitFor(WAIT);
    await feedItem(alice, { kind: 'room', from: ALICE, text: 'Hello from alice on node A' }).waitFor(WAIT);
    assert.equal(await feedItem(alice, { kind: 'room', from: ALICE, text: 'Hello from alice' }).getAttribute('class'), 'msg room mine');
    await sendTo(bob, { room: 'lobby' }, 'Hi alice, bob on node B here');
    await feedItem(alice, { kind: 'room', from: BOB, text: 'bob on node B here' }).waitFor(WAIT);
    ok('room messages cross the nodes both ways; the sender sees its own, marked as mine');

    // 5. A direct message from bob reaches alice; bob's copy is acknowledged.
    await sendTo(bob, { user: ALICE }, 'psst: a direct message');
    await feedItem(alice, { kind: 'direct', from: BOB, text: 'psst: a direct message' }).waitFor(WAIT);
    await bob.locator('#feed li.msg.direct.mine .ack', { hasText: '✓' }).waitFor(WAIT);
    // A direct message to nobody is refused with user_offline.
    await sendTo(bob, { user: 'nobody-here' }, 'hello?');
    await feedItem(bob, { kind: 'system', text: 'Error user_offline' }).waitFor(WAIT);
    ok('a direct message crosses the nodes and is acknowledged; one to an offline user shows user_offline');

    // 6. With a token: carol's identity comes from the token, which travels
    // in the subprotocol offer, never in the URL.
    const carol = await ctx.newPage();
    carol.on('pageerror', (err) => pageErrors.push(`carol: ${err.message}`));
    const carolURLs = [];
    carol.on('websocket', (ws) => carolURLs.push(ws.url()));
    await carol.goto(`${B}/`);
    await carol.click('#auth summary');
    await carol.fill('#token', TOKEN);
    await carol.click('#connect');
    await waitConnected(carol, 'carol', NODE_B);
    assert.equal(await carol.inputValue('#name'), 'carol', 'the name field shows the token\'s sub');
    assert.deepEqual(carolURLs.map((u) => new URL(u).search), [''], 'no token or client_id in the WebSocket URL');
    await sendTo(alice, { user: 'carol' }, 'hi carol, from node A');
    await feedItem(carol, { kind: 'direct', from: ALICE, text: 'hi carol, from node A' }).waitFor(WAIT);
    await carol.close();
    await feedItem(alice, { kind: 'system', text: 'carol disconnected' }).waitFor(WAIT);
    ok('carol connects with a token (sent as the bearer subprotocol, not in the URL), is named by it, and gets a direct message');

    // 7. A backend pushes an event to the room through node A's API.
    const res = await fetch(`${A}/api/publish`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ room: 'lobby', payload: { event: 'deploy', version: '1.4.2' } }),
    });
    const reply = await res.json();
    assert.equal(res.status, 200, JSON.stringify(reply));
    // The room's stream numbers it (docs/protocol.md, section 6).
    assert.equal(typeof reply.epoch, 'string', JSON.stringify(reply));
    assert.ok(Number.isInteger(reply.offset) && reply.offset > 0, JSON.stringify(reply));
    assert.deepEqual(reply, { local_recipients: 1, broker_accepted: true, offset: reply.offset, epoch: reply.epoch });
    for (const page of [alice, bob]) {
      await feedItem(page, { kind: 'event', from: 'deploy', text: '"version":"1.4.2"' }).waitFor(WAIT);
    }
    ok('an event published with POST /api/publish on node A shows on both pages');

    // 8. Message rates appear once two stats samples are in.
    await alice.waitForFunction(() => /^\d/.test(document.getElementById('stat-out').textContent), null, WAIT);
    const shotA = join(OUT, 'demo-node-a.png');
    const shotB = join(OUT, 'demo-node-b.png');
    await alice.screenshot({ path: shotA });
    await bob.screenshot({ path: shotB });
    ok(`message rates show on the node panel; screenshots: ${shotA} ${shotB}`);

    // 9. Node A goes away: alice's page says so and keeps trying; bob sees
    // alice leave.
    await control('/stop-a');
    await alice.locator('#status[data-state="reconnecting"]').waitFor(WAIT);
    await alice.locator('#node-live[data-live="no"]').waitFor(WAIT);
    await feedItem(alice, { kind: 'system', text: 'node shutting down' }).waitFor(WAIT);
    await feedItem(bob, { kind: 'system', text: `${ALICE} left #lobby` }).waitFor(WAIT);
    await bob.locator('#people li[data-online="no"]', { hasText: ALICE }).waitFor(WAIT);
    ok('when node A stops, alice\'s page shows "reconnecting" and the node unreachable; bob sees alice leave and go offline');

    // While alice is away, bob writes to the room: with history on, her
    // page gets these when it rejoins, each once.
    const missed = [1, 2, 3].map((i) => `sent while alice was away ${i}`);
    for (const text of missed) {
      await sendTo(bob, { room: 'lobby' }, text);
      await feedItem(bob, { kind: 'room', from: BOB, text }).waitFor(WAIT);
    }
    ok('bob sends three room messages while node A is down');

    // 10. Node A is back on the same port: the page reconnects by itself,
    // rejoins #lobby, and messages flow again.
    await control('/start-a');
    await alice.locator('#status[data-state="connected"]').waitFor({ timeout: 20000 });
    await waitConnected(alice, ALICE, NODE_A);
    await feedItem(alice, { kind: 'system', text: `Reconnected to node ${NODE_A} as ${ALICE}` }).waitFor(WAIT);
    await alice.locator('#rooms li[data-room="lobby"]:not([data-pending])').waitFor(WAIT);
    await feedItem(bob, { kind: 'system', text: `${ALICE} joined #lobby` }).waitFor(WAIT);
    await sendTo(bob, { room: 'lobby' }, 'welcome back, alice');
    await feedItem(alice, { kind: 'room', from: BOB, text: 'welcome back, alice' }).waitFor(WAIT);
    await sendTo(alice, { user: BOB }, 'thanks, I am back');
    await feedItem(bob, { kind: 'direct', from: ALICE, text: 'thanks, I am back' }).waitFor(WAIT);
    await alice.locator('#node-live[data-live="yes"]').waitFor(WAIT);
    ok('after node A restarts on the same port, alice reconnects and rejoins #lobby on her own; room and direct messages flow again');

    // 10b. The rejoin recovered what was sent meanwhile, in order, once each.
    await feedItem(alice, { kind: 'system', text: 'Rejoined #lobby: recovered 3 missed messages.' }).waitFor(WAIT);
    const texts = await alice.locator('#feed li.msg.room').evaluateAll((els) => els.map((e) => e.querySelector('.text').textContent));
    const recovered = texts.filter((t) => t.startsWith('sent while alice was away'));
    assert.deepEqual(recovered, missed, `alice's recovered messages: ${JSON.stringify(recovered)}`);
    const offsets = await alice.locator('#feed li.msg.room[data-offset]').evaluateAll((els) => els.map((e) => Number(e.dataset.offset)));
    assert.equal(new Set(offsets).size, offsets.length, `an offset shown twice: ${offsets}`);
    ok('alice\'s page recovered the three messages sent while her node was restarted, in order, each once');

    // 11. Disconnecting on purpose does not reconnect, and others see it.
    await bob.click('#disconnect');
    await bob.locator('#status[data-state="idle"]', { hasText: 'Disconnected' }).waitFor(WAIT);
    await feedItem(alice, { kind: 'system', text: `${BOB} disconnected` }).waitFor(WAIT);
    assert.equal(await bob.locator('#connect').isEnabled(), true);
    ok('bob disconnects on purpose: his page stays disconnected and alice sees him go');

    const after = join(OUT, 'demo-after-restart.png');
    await alice.screenshot({ path: after });
    ok(`screenshot after the restart: ${after}`);

    assert.deepEqual(pageErrors, [], 'uncaught errors in the pages');
    ok('no uncaught script errors in either page');
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
  console.log(`${checks.length} passed, 0 failed`);
}

const timer = setTimeout(() => {
  console.error(`browser test: not done after ${TIMEOUT_MS} ms`);
  process.exit(2);
}, TIMEOUT_MS);

main().then(() => {
  clearTimeout(timer);
}, (err) => {
  console.error(`not ok - after ${checks.length} checks: ${err.stack || err}`);
  process.exit(1);
});
