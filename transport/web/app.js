// Switchboard demo page, built on the JavaScript client the node serves at
// /switchboard.js (docs/client.md): one connection to the node that served
// this page, which the client keeps, rejoining its rooms and recovering what
// it missed, and a live view of the node that connection is on, asked over
// the connection itself. Plain JavaScript, no build step.

import { Switchboard } from '../switchboard.js';

const ROOM_NAME = /^[A-Za-z0-9_\-.:@]{1,128}$/;
const FEED_MAX = 500; // older entries are dropped so a long session stays light
const STATS_EVERY_MS = 1000;
const SPARK_POINTS = 60;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'), statusText: $('status-text'), retryNow: $('retry-now'),
  connectForm: $('connect-form'), name: $('name'), token: $('token'),
  connect: $('connect'), disconnect: $('disconnect'),
  joinForm: $('join-form'), roomInput: $('room-input'), join: $('join'),
  rooms: $('rooms'), roomsEmpty: $('rooms-empty'),
  people: $('people'), peopleEmpty: $('people-empty'),
  feed: $('feed'), clear: $('clear'),
  compose: $('compose'), message: $('message'), send: $('send'),
  toRoom: $('to-room'), toUser: $('to-user'), toAll: $('to-all'),
  roomSelect: $('room-select'), dmUser: $('dm-user'),
};

// Page state. The client (state.sb) owns the connection and the rooms'
// positions; `rooms` is what the page shows: pending until the node
// confirmed the join or, after a reconnect, the rejoin.
const state = {
  sb: null,             // the client while the user wants a connection
  wanted: false,
  countdownTimer: 0,
  me: '',
  node: '',
  everConnected: false,
  wasConnected: false,  // the last state was connected: a drop is news
  rooms: new Map(),     // room -> 'pending' | 'joined'
  people: new Map(),    // user -> { online: bool, rooms: Set }
};

// ---------------------------------------------------------------- status

function setStatus(kind, text) {
  ui.status.dataset.state = kind;
  // The status is a live region: rewriting the same text would make screen
  // readers announce it again on every countdown tick.
  if (ui.statusText.textContent !== text) ui.statusText.textContent = text;
  ui.retryNow.hidden = kind !== 'reconnecting';
  document.title = (kind === 'connected' ? '● ' : '○ ') + 'Switchboard demo';
}

function setConnectedUI(live) {
  ui.join.disabled = !live;
  ui.message.disabled = !live;
  ui.send.disabled = !live;
}

function setFormUI() {
  const busy = state.wanted;
  ui.connect.disabled = busy;
  ui.disconnect.disabled = !busy;
  ui.name.disabled = busy;
  ui.token.disabled = busy;
}

// ---------------------------------------------------------------- feed

function clock(d = new Date()) {
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function addEntry(li) {
  const stick = ui.feed.scrollHeight - ui.feed.scrollTop - ui.feed.clientHeight < 40;
  ui.feed.append(li);
  while (ui.feed.childElementCount > FEED_MAX) ui.feed.firstElementChild.remove();
  if (stick) ui.feed.scrollTop = ui.feed.scrollHeight;
  return li;
}

function system(text, error = false) {
  const li = el('li', 'msg system' + (error ? ' error' : ''));
  li.append(el('span', 'time', clock()), el('span', 'text', text));
  return addEntry(li);
}

// message renders one chat line. kind: room | direct | chat | event.
function message({ kind, where, from, text, mine = false, sending = false, offset }) {
  const li = el('li', `msg ${kind}` + (mine ? ' mine' : ''));
  if (offset !== undefined) li.dataset.offset = offset;
  li.dataset.kind = kind;
  if (from) li.dataset.from = from;
  li.append(el('span', 'time', clock()), el('span', 'where', where), el('span', 'from', from || ''));
  const ack = el('span', 'ack', sending ? 'sending…' : '');
  li.append(ack, el('span', 'text', text));
  return addEntry(li);
}

// ---------------------------------------------------------------- people & rooms

function person(user) {
  if (!user || user === state.me) return null;
  let p = state.people.get(user);
  if (!p) {
    p = { online: true, rooms: new Set() };
    state.people.set(user, p);
  }
  return p;
}

function renderPeople() {
  ui.people.replaceChildren();
  const names = [...state.people.keys()].sort((a, b) => a.localeCompare(b));
  for (const name of names) {
    const p = state.people.get(name);
    const li = el('li');
    li.dataset.online = p.online ? 'yes' : 'no';
    const b = el('button');
    b.type = 'button';
    b.title = `Send ${name} a direct message`;
    b.setAttribute('aria-label', `${name}, ${p.online ? 'online' : 'offline'}: send a direct message`);
    b.append(el('span', 'dot'), el('span', 'who', name));
    if (p.rooms.size) b.append(el('span', 'where', [...p.rooms].map((r) => '#' + r).join(' ')));
    b.addEventListener('click', () => {
      ui.toUser.checked = true;
      ui.dmUser.value = name;
      ui.message.focus();
    });
    li.append(b);
    ui.people.append(li);
  }
  ui.peopleEmpty.hidden = names.length > 0;
}

function renderRooms() {
  ui.rooms.replaceChildren();
  const selected = ui.roomSelect.value;
  ui.roomSelect.replaceChildren();
  const names = [...state.rooms.keys()].sort((a, b) => a.localeCompare(b));
  for (const name of names) {
    const li = el('li');
    if (state.rooms.get(name) !== 'joined') li.dataset.pending = '';
    li.dataset.room = name;
    li.append(el('span', '', '#' + name));
    const leave = el('button', '', '×');
    leave.type = 'button';
    leave.setAttribute('aria-label', `Leave ${name}`);
    leave.addEventListener('click', () => leaveRoom(name));
    li.append(leave);
    ui.rooms.append(li);
    const opt = el('option', '', '#' + name);
    opt.value = name;
    ui.roomSelect.append(opt);
  }
  if (!names.length) {
    const opt = el('option', '', '(join a room)');
    opt.value = '';
    ui.roomSelect.append(opt);
  } else if (names.includes(selected)) {
    ui.roomSelect.value = selected;
  }
  ui.roomsEmpty.hidden = names.length > 0;
}

// ---------------------------------------------------------------- connection

// wsURL is the node's /ws next to this page: relative, so that the page
// also works when the node is mounted under a path prefix.
function wsURL() {
  const url = new URL('ws', location.href);
  url.search = '';
  url.hash = '';
  return url.href;
}

function why(info) {
  const c = info.code;
  if (info.status) return `the node refused the connection (HTTP ${info.status})`;
  return c === 1001 ? 'node shutting down' : c === 1013 ? 'too slow to read' :
    c === 1008 ? 'policy: ' + (info.reason || 'refused') : c === 1009 ? 'message too large' :
    c === 4001 ? 'token expired' :
    c === 1006 ? (state.everConnected ? 'connection lost' : 'node unreachable or refused the handshake') :
    `closed (${c}${info.reason ? ': ' + info.reason : ''})`;
}

function connect() {
  const token = ui.token.value.trim();
  const name = ui.name.value.trim();
  // With a token the node names the client by its sub; the client then
  // sends no client_id, and the token travels in the subprotocol offer.
  const sb = new Switchboard(wsURL(), { clientId: name || undefined, token: token || undefined });
  state.sb = sb;
  sb.on('state', (s, info) => onState(sb, s, info));
  sb.on('chat', (ev) => onChat(ev));
  sb.on('direct', (ev) => {
    person(ev.from);
    renderPeople();
    message({ kind: 'direct', where: 'DM', from: ev.from, text: ev.content });
  });
  sb.on('user_connected', (ev) => {
    const p = person(ev.user_id);
    if (p) { p.online = true; renderPeople(); }
    system(`${ev.user_id} connected`);
  });
  sb.on('user_disconnected', (ev) => {
    const p = person(ev.user_id);
    if (p) { p.online = false; p.rooms.clear(); renderPeople(); }
    system(`${ev.user_id} disconnected`);
  });
  sb.on('disconnect', (info) => {
    if (state.wasConnected) system(`Disconnected: ${why(info)}.`, true);
    state.wasConnected = false;
  });
  sb.on('recovered', (ev) => {
    state.rooms.set(ev.room, 'joined');
    renderRooms();
    const n = ev.offset - ev.since.offset;
    system(`Rejoined #${ev.room}: ${n ? `recovered ${n} missed message${n === 1 ? '' : 's'}` : 'nothing missed'}.`);
  });
  sb.on('gap', (ev) => onGap(ev));
  sb.on('error', (err) => system(`Error ${err.code}: ${err.message}`, true));
  sb.on('event', (ev) => showEvent(ev));
  sb.connect();
}

function onState(sb, s, info) {
  if (sb !== state.sb) return;
  clearInterval(state.countdownTimer);
  if (s === 'connecting') {
    setStatus('connecting', 'Connecting…');
  } else if (s === 'connected') {
    const again = state.everConnected;
    state.me = info.clientId;
    state.node = info.node;
    state.everConnected = true;
    state.wasConnected = true;
    state.people.delete(state.me);
    setStatus('connected', `Connected as ${info.clientId} to node ${info.node}`);
    setConnectedUI(true);
    statsRefused = false;
    pollStats();
    if (!ui.name.value.trim()) ui.name.value = info.clientId;
    system(again ? `Reconnected to node ${info.node} as ${info.clientId}.` : `Connected to node ${info.node} as ${info.clientId}.`);
  } else if (s === 'reconnecting') {
    setConnectedUI(false);
    for (const [name] of state.rooms) state.rooms.set(name, 'pending');
    renderRooms();
    statsOffline();
    const at = Date.now() + (info.delay || 0);
    const tick = () => {
      const left = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      setStatus('reconnecting', `Reconnecting in ${left} s (attempt ${info.attempt || 1})`);
    };
    tick();
    state.countdownTimer = setInterval(tick, 250);
  } else if (s === 'closed') {
    setConnectedUI(false);
    statsOffline();
    if (info.error) {
      // The node refused this token and no other was given.
      state.wanted = false;
      state.sb = null;
      setFormUI();
      const expired = info.error.code === 'token_expired';
      setStatus('failed', expired ? 'Token expired: paste a fresh token and connect again' : 'Refused: ' + info.error.message);
      system(expired ? 'The node closed the connection: token expired (4001).' : info.error.message, true);
    } else {
      setStatus('idle', 'Disconnected');
    }
  }
}

// onGap: the node could not send what this page missed in a room (its
// history was lost or trimmed): show what the node still keeps.
async function onGap(ev) {
  state.rooms.set(ev.room, 'joined');
  renderRooms();
  if (ev.reason === 'skipped') return;
  system(`Some messages in #${ev.room} could not be recovered; showing the room's recent history.`, true);
  const room = state.sb?.rooms.get(ev.room);
  if (!room) return;
  try {
    const h = await room.history({ limit: 20 });
    for (const p of h.publications) {
      if (ev.since && p.epoch === ev.since.epoch && p.offset <= ev.since.offset) continue;
      if (p.event === 'chat') showRoomMessage(p, 'history');
    }
  } catch (err) {
    system(`History of #${ev.room}: ${err.code}`, true);
  }
}

// ---------------------------------------------------------------- events

function showEvent(ev) {
  // Events pushed by a backend (POST /api/publish) are shown as sent,
  // without the stream position the node adds.
  const { event, offset, epoch, ...rest } = ev;
  const body = JSON.stringify(rest);
  message({ kind: 'event', where: 'event', from: event, text: body.length > 400 ? body.slice(0, 400) + '…' : body });
}

function showRoomMessage(ev, extra = '') {
  person(ev.from);
  renderPeople();
  const li = message({ kind: 'room', where: '#' + ev.room, from: ev.from, text: ev.content, mine: ev.from === state.me, offset: ev.offset });
  if (extra) li.classList.add(extra);
}

function onChat(ev) {
  person(ev.from);
  renderPeople();
  message({ kind: 'chat', where: 'all', from: ev.from, text: ev.content });
}

function watchRoom(room) {
  room.on('message', (ev) => showRoomMessage(ev));
  room.on('event', (ev) => showEvent(ev));
  room.on('joined', (ev) => {
    if (ev.user_id === state.me) return; // our own join is shown on its ack
    const p = person(ev.user_id);
    if (p) { p.online = true; p.rooms.add(ev.room); renderPeople(); }
    system(`${ev.user_id} joined #${ev.room}`);
  });
  room.on('left', (ev) => {
    const p = person(ev.user_id);
    if (p) { p.rooms.delete(ev.room); renderPeople(); }
    system(`${ev.user_id} left #${ev.room}`);
  });
  room.on('error', () => {
    state.rooms.delete(room.name);
    renderRooms();
  });
}

// showPresence fills People with who is in the room across the cluster
// (protocol section 7): members on other nodes that joined before us too.
function showPresence(room) {
  room.presence().then((p) => {
    for (const m of p.members) {
      const who = person(m.user_id);
      if (who) { who.online = true; who.rooms.add(room.name); }
    }
    renderPeople();
  }, () => {}); // a node without presence: People fills from events alone
}

// settle shows a sent message's outcome on its line: ✓ on the node's ack,
// the error code otherwise.
function settle(promise, li) {
  const ack = li && li.querySelector('.ack');
  promise.then(() => {
    if (ack) ack.textContent = '✓';
  }, (err) => {
    if (ack) {
      ack.textContent = err.code === 'disconnected' || err.code === 'timeout' ? 'not sent' : 'failed';
      ack.title = err.message;
    }
    system(`Error ${err.code}: ${err.message}`, true);
  });
}

// ---------------------------------------------------------------- actions

function joinRoom(name) {
  state.rooms.set(name, 'pending');
  renderRooms();
  state.sb.join(name).then((room) => {
    if (!state.rooms.has(name)) return;
    watchRoom(room);
    state.rooms.set(name, 'joined');
    renderRooms();
    system(`You joined #${name}`);
    if (!ui.roomSelect.value) ui.roomSelect.value = name;
    showPresence(room);
  }, (err) => {
    state.rooms.delete(name);
    renderRooms();
    system(`Error ${err.code}: ${err.message}`, true);
  });
}

function leaveRoom(name) {
  state.rooms.delete(name);
  renderRooms();
  const room = state.sb?.rooms.get(name);
  if (room) room.leave().then(() => system(`You left #${name}`), (err) => system(`Error ${err.code}: ${err.message}`, true));
}

ui.connectForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = ui.name.value.trim();
  if (name.length > 128) { system('Names are at most 128 characters.', true); return; }
  state.wanted = true;
  state.rooms.clear();
  renderRooms();
  setFormUI();
  connect();
});

ui.disconnect.addEventListener('click', () => {
  state.wanted = false;
  clearInterval(state.countdownTimer);
  setFormUI();
  const sb = state.sb;
  state.rooms.clear();
  renderRooms();
  if (sb) sb.close();
  else setStatus('idle', 'Disconnected');
});

ui.retryNow.addEventListener('click', () => state.sb?.retry());

ui.joinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = ui.roomInput.value.trim();
  if (!ROOM_NAME.test(name)) {
    system('Room names are 1-128 characters of A-Z a-z 0-9 _ - . : @', true);
    return;
  }
  ui.roomInput.value = '';
  if (!state.rooms.has(name)) joinRoom(name);
  ui.roomSelect.value = name;
  ui.toRoom.checked = true;
});

ui.compose.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.message.value;
  if (!text.trim()) return;
  const sb = state.sb;
  if (!sb) { system('Not connected.', true); return; }
  if (ui.toRoom.checked) {
    const room = sb.rooms.get(ui.roomSelect.value);
    if (!room) { system('Join a room first, or pick Direct or Everyone.', true); return; }
    // The node echoes room messages to their sender: no local copy.
    settle(room.publish(text), null);
  } else if (ui.toUser.checked) {
    const to = ui.dmUser.value.trim();
    if (!to) { system('Whom to? Type a user id or pick someone from People.', true); ui.dmUser.focus(); return; }
    settle(sb.direct(to, text), message({ kind: 'direct', where: 'DM → ' + to, from: state.me, text, mine: true, sending: true }));
  } else {
    settle(sb.chat(text), message({ kind: 'chat', where: 'all', from: state.me, text, mine: true, sending: true }));
  }
  ui.message.value = '';
});

ui.clear.addEventListener('click', () => ui.feed.replaceChildren());

// ---------------------------------------------------------------- node panel

const stat = {
  node: $('stat-node'), broker: $('stat-broker'), connections: $('stat-connections'), rooms: $('stat-rooms'),
  users: $('stat-users'), heap: $('stat-heap'), in: $('stat-in'), out: $('stat-out'), uptime: $('stat-uptime'),
  live: $('node-live'), sparkIn: $('spark-in'), sparkOut: $('spark-out'),
};
const series = { in: [], out: [] };
let last = null;

function uptime(s) {
  s = Math.floor(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor(s % 3600 / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor(s % 86400 / 3600)} h`;
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function rate(v) { return v >= 100 ? Math.round(v).toLocaleString() : v.toFixed(1); }

function spark(path, values, top) {
  if (!values.length) { path.setAttribute('d', ''); return; }
  const step = 240 / (SPARK_POINTS - 1);
  const x0 = 240 - step * (values.length - 1);
  path.setAttribute('d', values.map((v, i) => `${i ? 'L' : 'M'}${(x0 + i * step).toFixed(1)},${(58 - (v / top) * 54).toFixed(1)}`).join(''));
}

function push(list, v) {
  list.push(v);
  if (list.length > SPARK_POINTS) list.shift();
}

// The panel describes the node this page's socket is on: the page asks
// that node over the socket ({"type":"stats"}) every second, and the node
// answers {"event":"stats",...}. GET /stats would reach whichever node a
// load balancer picks for that request, not necessarily the socket's.
// A node started with --stats-command=false refuses the question
// (unknown_type); the page then stops asking that connection.
let statsAsked = 0; // when the unanswered question was sent; 0 when none
let statsRefused = false;

function pollStats() {
  const sb = state.sb;
  if (statsRefused || !sb || sb.state !== 'connected') return;
  if (statsAsked) {
    if (performance.now() - statsAsked > 2 * STATS_EVERY_MS) statsOffline('not answering');
    return;
  }
  statsAsked = performance.now();
  sb.stats().then((s) => { if (sb === state.sb) onStats(s); }, (err) => {
    statsAsked = 0;
    if (sb === state.sb && err.code === 'unknown_type') statsOff();
  });
}

function statsOff() {
  statsOffline('off');
  statsRefused = true;
}

function statsOffline(why = 'not connected') {
  statsAsked = 0;
  stat.live.dataset.live = 'no';
  stat.live.textContent = why;
  stat.in.textContent = '–';
  stat.out.textContent = '–';
  last = null;
}

function onStats(s) {
  statsAsked = 0;
  const now = performance.now();
  stat.live.dataset.live = 'yes';
  stat.live.textContent = 'live';
  stat.node.textContent = s.node ?? '–';
  stat.node.title = s.node ?? '';
  const b = s.broker || {};
  stat.broker.textContent = `${b.kind ?? '?'} · ${b.connected ? 'connected' : 'down'}` + (b.outbox ? ` · outbox ${b.outbox}` : '');
  stat.broker.dataset.ok = b.connected ? 'yes' : 'no';
  stat.broker.className = 'small';
  stat.connections.textContent = (s.local_connections ?? 0).toLocaleString();
  stat.rooms.textContent = (s.rooms ?? 0).toLocaleString();
  stat.users.textContent = (s.users ?? 0).toLocaleString();
  stat.uptime.textContent = uptime(s.uptime_seconds ?? 0);
  stat.heap.textContent = bytes(s.heap_bytes ?? 0);
  // Rates come from counter deltas; another node (after a reconnect), or
  // counters that went down (a restart), start a new baseline.
  if (last && last.node === s.node && s.messages_in >= last.in && s.messages_out >= last.out && now > last.at) {
    const dt = (now - last.at) / 1000;
    const rin = (s.messages_in - last.in) / dt;
    const rout = (s.messages_out - last.out) / dt;
    stat.in.textContent = rate(rin);
    stat.out.textContent = rate(rout);
    push(series.in, rin);
    push(series.out, rout);
    const top = Math.max(1, ...series.in, ...series.out);
    spark(stat.sparkIn, series.in, top);
    spark(stat.sparkOut, series.out, top);
  }
  last = { node: s.node, in: s.messages_in, out: s.messages_out, at: now };
}

// ---------------------------------------------------------------- start

const params = new URLSearchParams(location.search);
if (params.get('name')) ui.name.value = params.get('name');
setStatus('idle', 'Not connected');
renderRooms();
renderPeople();
setFormUI();
setConnectedUI(false);
statsOffline();
setInterval(pollStats, STATS_EVERY_MS);
