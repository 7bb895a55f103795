// Switchboard demo client: one WebSocket to the node that served this page,
// speaking protocol v1 (docs/protocol.md), and a live view of the node that
// socket is on, asked over the socket itself. Plain JavaScript, no
// dependencies.

const ROOM_NAME = /^[A-Za-z0-9_\-.:@]{1,128}$/;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10000;
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

// Client state. `rooms` is what the user asked to be in: after a reconnect
// the page joins them again, since a new connection starts in no room.
const state = {
  ws: null,
  wanted: false,        // the user wants a connection (reconnect when it drops)
  attempt: 0,           // reconnect attempts since the last welcome
  retryTimer: 0,
  countdownTimer: 0,
  me: '',
  node: '',
  everConnected: false,
  rooms: new Map(),     // room -> 'pending' | 'joined'
  people: new Map(),    // user -> { online: bool, rooms: Set }
  pending: new Map(),   // message id -> { el, kind, room }
  seq: 0,
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
function message({ kind, where, from, text, mine = false, sending = false }) {
  const li = el('li', `msg ${kind}` + (mine ? ' mine' : ''));
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

// ---------------------------------------------------------------- socket

function nextID() {
  state.seq += 1;
  return 'm' + state.seq;
}

function send(obj) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  state.ws.send(JSON.stringify(obj));
  return true;
}

// wsURL is the node's /ws next to this page: relative, so that the page
// also works when the node is mounted under a path prefix.
function wsURL() {
  const url = new URL('ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  url.hash = '';
  const name = ui.name.value.trim();
  // With a token the node takes the id from its sub; a different
  // client_id would be refused, so none is sent.
  if (name && !ui.token.value.trim()) url.searchParams.set('client_id', name);
  return url.href;
}

function open() {
  clearTimeout(state.retryTimer);
  clearInterval(state.countdownTimer);
  const token = ui.token.value.trim();
  let ws;
  try {
    // Browsers cannot set headers on a WebSocket: the token travels as the
    // second value of the ["bearer", TOKEN] subprotocol offer.
    ws = token ? new WebSocket(wsURL(), ['bearer', token]) : new WebSocket(wsURL());
  } catch (err) {
    setStatus('failed', 'Cannot connect: ' + err.message);
    state.wanted = false;
    setFormUI();
    return;
  }
  state.ws = ws;
  setStatus(state.attempt ? 'reconnecting' : 'connecting', state.attempt ? `Reconnecting (attempt ${state.attempt})…` : 'Connecting…');
  ws.addEventListener('message', (e) => {
    let ev;
    try { ev = JSON.parse(e.data); } catch { return; }
    if (ev && typeof ev.event === 'string') onEvent(ev);
  });
  ws.addEventListener('close', (e) => onClose(ws, e));
}

function onClose(ws, e) {
  if (state.ws !== ws) return;
  state.ws = null;
  setConnectedUI(false);
  for (const [name, st] of state.rooms) if (st === 'joined') state.rooms.set(name, 'pending');
  renderRooms();
  failPending('connection lost before the node confirmed');
  statsOffline();
  if (!state.wanted) {
    setStatus('idle', 'Disconnected');
    return;
  }
  if (e.code === 4001) {
    state.wanted = false;
    setFormUI();
    setStatus('failed', 'Token expired: paste a fresh token and connect again');
    system('The node closed the connection: token expired (4001).', true);
    return;
  }
  const why = e.code === 1001 ? 'node shutting down' : e.code === 1013 ? 'too slow to read' :
    e.code === 1008 ? 'policy: ' + (e.reason || 'refused') : e.code === 1009 ? 'message too large' :
    e.code === 1006 ? (state.everConnected ? 'connection lost' : 'node unreachable or refused the handshake') :
    `closed (${e.code}${e.reason ? ': ' + e.reason : ''})`;
  if (state.attempt === 0) system(`Disconnected: ${why}.`, true);
  scheduleReconnect();
}

// scheduleReconnect waits BACKOFF_FIRST_MS x 2^attempt (at most
// BACKOFF_MAX_MS), with jitter so that a restarted node is not hit by every
// page at the same instant.
function scheduleReconnect() {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.attempt);
  const delay = Math.round(base / 2 + Math.random() * base / 2);
  state.attempt += 1;
  const at = Date.now() + delay;
  const tick = () => {
    const s = Math.max(0, Math.ceil((at - Date.now()) / 1000));
    setStatus('reconnecting', `Reconnecting in ${s} s (attempt ${state.attempt})`);
  };
  tick();
  clearInterval(state.countdownTimer);
  state.countdownTimer = setInterval(tick, 250);
  state.retryTimer = setTimeout(() => { clearInterval(state.countdownTimer); open(); }, delay);
}

function failPending(why) {
  for (const [, p] of state.pending) {
    if (p.el) {
      const ack = p.el.querySelector('.ack');
      ack.textContent = 'not sent';
      ack.title = why;
    }
  }
  state.pending.clear();
}

// ---------------------------------------------------------------- events

function onEvent(ev) {
  switch (ev.event) {
    case 'welcome': return onWelcome(ev);
    case 'chat': return onChat(ev);
    case 'direct_message':
      person(ev.from);
      renderPeople();
      message({ kind: 'direct', where: 'DM', from: ev.from, text: ev.content });
      return;
    case 'user_connected': {
      const p = person(ev.user_id);
      if (p) { p.online = true; renderPeople(); }
      system(`${ev.user_id} connected`);
      return;
    }
    case 'user_disconnected': {
      const p = person(ev.user_id);
      if (p) { p.online = false; p.rooms.clear(); renderPeople(); }
      system(`${ev.user_id} disconnected`);
      return;
    }
    case 'user_joined': {
      if (ev.user_id === state.me) return; // our own join is shown on its ack
      const p = person(ev.user_id);
      if (p) { p.online = true; p.rooms.add(ev.room); renderPeople(); }
      system(`${ev.user_id} joined #${ev.room}`);
      return;
    }
    case 'user_left': {
      const p = person(ev.user_id);
      if (p) { p.rooms.delete(ev.room); renderPeople(); }
      system(`${ev.user_id} left #${ev.room}`);
      return;
    }
    case 'ack': return onAck(ev);
    case 'error': return onError(ev);
    case 'stats': return onStats(ev);
    case 'pong': return;
    default: {
      // Events pushed by a backend (POST /api/publish) are shown as sent.
      const { event, ...rest } = ev;
      const body = JSON.stringify(rest);
      message({ kind: 'event', where: 'event', from: event, text: body.length > 400 ? body.slice(0, 400) + '…' : body });
    }
  }
}

function onWelcome(ev) {
  const again = state.everConnected;
  state.me = ev.client_id;
  state.node = ev.node;
  state.attempt = 0;
  state.everConnected = true;
  state.people.delete(state.me);
  setStatus('connected', `Connected as ${ev.client_id} to node ${ev.node}`);
  setConnectedUI(true);
  statsRefused = false;
  pollStats();
  if (!ui.name.value.trim()) ui.name.value = ev.client_id;
  system(again ? `Reconnected to node ${ev.node} as ${ev.client_id}.` : `Connected to node ${ev.node} as ${ev.client_id}.`);
  for (const name of state.rooms.keys()) joinRoom(name, true);
}

function onChat(ev) {
  person(ev.from);
  renderPeople();
  if (ev.room) {
    message({ kind: 'room', where: '#' + ev.room, from: ev.from, text: ev.content, mine: ev.from === state.me });
  } else {
    message({ kind: 'chat', where: 'all', from: ev.from, text: ev.content });
  }
}

function onAck(ev) {
  const p = state.pending.get(String(ev.id));
  if (!p) return;
  state.pending.delete(String(ev.id));
  if (p.kind === 'join') {
    if (state.rooms.has(p.room)) state.rooms.set(p.room, 'joined');
    renderRooms();
    if (!p.rejoin) system(`You joined #${p.room}`);
    if (!ui.roomSelect.value) ui.roomSelect.value = p.room;
  } else if (p.kind === 'leave') {
    system(`You left #${p.room}`);
  } else if (p.el) {
    p.el.querySelector('.ack').textContent = '✓';
  }
}

function onError(ev) {
  if (ev.id === STATS_ID) return statsOff();
  const p = ev.id !== undefined ? state.pending.get(String(ev.id)) : null;
  if (p) {
    state.pending.delete(String(ev.id));
    if (p.kind === 'join') {
      state.rooms.delete(p.room);
      renderRooms();
    } else if (p.el) {
      p.el.querySelector('.ack').textContent = 'failed';
    }
  }
  system(`Error ${ev.code}: ${ev.message}`, true);
}

// ---------------------------------------------------------------- actions

function joinRoom(name, rejoin = false) {
  const id = nextID();
  state.rooms.set(name, 'pending');
  renderRooms();
  if (send({ type: 'join_room', room: name, id })) state.pending.set(id, { kind: 'join', room: name, rejoin });
}

function leaveRoom(name) {
  state.rooms.delete(name);
  renderRooms();
  const id = nextID();
  if (send({ type: 'leave_room', room: name, id })) state.pending.set(id, { kind: 'leave', room: name });
}

ui.connectForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = ui.name.value.trim();
  if (name.length > 128) { system('Names are at most 128 characters.', true); return; }
  state.wanted = true;
  state.attempt = 0;
  setFormUI();
  open();
});

ui.disconnect.addEventListener('click', () => {
  state.wanted = false;
  clearTimeout(state.retryTimer);
  clearInterval(state.countdownTimer);
  setFormUI();
  if (state.ws) state.ws.close(1000, 'bye');
  else setStatus('idle', 'Disconnected');
});

ui.retryNow.addEventListener('click', () => { if (state.wanted && !state.ws) open(); });

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
  const id = nextID();
  let msg; let entry;
  if (ui.toRoom.checked) {
    const room = ui.roomSelect.value;
    if (!room) { system('Join a room first, or pick Direct or Everyone.', true); return; }
    msg = { type: 'room_message', room, content: text, id };
    // The node echoes room messages to their sender: no local copy.
  } else if (ui.toUser.checked) {
    const to = ui.dmUser.value.trim();
    if (!to) { system('Whom to? Type a user id or pick someone from People.', true); ui.dmUser.focus(); return; }
    msg = { type: 'direct_message', target_user: to, content: text, id };
    entry = { kind: 'direct', where: 'DM → ' + to, from: state.me, text, mine: true, sending: true };
  } else {
    msg = { type: 'chat', content: text, id };
    entry = { kind: 'chat', where: 'all', from: state.me, text, mine: true, sending: true };
  }
  if (!send(msg)) { system('Not connected.', true); return; }
  state.pending.set(id, { kind: msg.type, el: entry ? message(entry) : null });
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
// A node started with --stats-command=false refuses the question (the id
// tells its error apart); the page then stops asking that connection.
const STATS_ID = 'node-panel';
let statsAsked = 0; // when the unanswered question was sent; 0 when none
let statsRefused = false;

function pollStats() {
  if (statsRefused) return;
  if (statsAsked && performance.now() - statsAsked > 2 * STATS_EVERY_MS) statsOffline('not answering');
  if (send({ type: 'stats', id: STATS_ID }) && !statsAsked) statsAsked = performance.now();
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
