// Switchboard client: one WebSocket to a Switchboard node (docs/protocol.md),
// kept open across drops and node restarts, with the rooms it joined rejoined
// and their missed publications recovered. docs/client.md is the manual.
//
// No dependencies. In browsers the global WebSocket is used; in Node 20 pass
// one (the `ws` package) as the WebSocket option.
//
// Connection states (one transition function, #setState):
//
//   state         meaning                                   next
//   closed        not connected, not trying (start, close(),  connecting (connect())
//                 or a refusal no new token cures)
//   connecting    first socket of connect() being opened    connected, reconnecting, closed
//   connected     welcome received: requests are sent        reconnecting, closed
//   reconnecting  socket lost; waiting out the backoff or   connected, closed
//                 opening the next socket
//
// Requests made while connecting or reconnecting wait in a bounded queue and
// go out, behind the rejoins, once the node welcomes the new socket.

const OPEN = 1;
const DEFAULT_BACKOFF = Object.freeze({ initial: 500, max: 10000, factor: 2 });
const DEFAULT_REQUEST_TIMEOUT = 10000; // ms; every request with an id, and the handshake
const DEFAULT_QUEUE_LIMIT = 100; // requests waiting for a connection
const DEFAULT_PING_AFTER = 30000; // ms of silence before the client probes the node
const TOKEN_REFRESH_MARGIN = 5000; // ms: a token expiring this soon is refreshed first

// Close codes after which the same credentials would be refused again
// (docs/protocol.md, section 4): reconnect only with a new token.
const REFUSED = new Set([1008, 4001]);

// Commands answered by an event without their id, then by their ack
// (docs/protocol.md, section 2): the event is the request's answer.
const ANSWERED_BEFORE_ACK = { stats: 'stats', pong: 'ping' };
// A node answers rate_limited to a history or presence query while
// QUERIES_OUT of the connection's wait for their answers: the client holds
// the others back and sends each when one is answered.
const QUERIES = new Set(['history', 'presence']);
const QUERIES_OUT = 4;

/** An error from the node (its protocol error code) or from the client. */
export class SwitchboardError extends Error {
  constructor(code, message, detail) {
    super(message || code);
    this.name = 'SwitchboardError';
    this.code = code;
    if (detail) Object.assign(this, detail);
    this.code = code;
  }
}

/**
 * backoffDelay is the wait before reconnect attempt `attempt` (0 for the
 * first): full jitter, uniform in [0, min(max, initial * factor^attempt)).
 */
export function backoffDelay(attempt, backoff = DEFAULT_BACKOFF, random = Math.random) {
  const cap = Math.min(backoff.max, backoff.initial * backoff.factor ** attempt);
  return Math.floor(random() * cap);
}

// tokenExpiry reads a JWT's exp (ms since the epoch) without verifying it:
// only to refresh a token before the node would refuse it.
function tokenExpiry(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4))).exp;
    return typeof exp === 'number' ? exp * 1000 : Infinity;
  } catch {
    return Infinity;
  }
}

class Emitter {
  #handlers = new Map();

  /** on adds a handler; it returns a function that removes it. */
  on(name, fn) {
    if (!this.#handlers.has(name)) this.#handlers.set(name, new Set());
    this.#handlers.get(name).add(fn);
    return () => this.off(name, fn);
  }

  off(name, fn) {
    this.#handlers.get(name)?.delete(fn);
  }

  // emit calls every handler; one that throws does not stop the others or
  // the client: its error is rethrown on its own, as an uncaught error.
  emit(name, ...args) {
    for (const fn of [...(this.#handlers.get(name) || [])]) {
      try {
        fn(...args);
      } catch (err) {
        queueMicrotask(() => { throw err; });
      }
    }
  }
}

/** A room this client is in. Made by Switchboard.join. */
export class Room extends Emitter {
  #sb;
  /** offset and epoch of the last publication delivered (or the join's position). */
  offset = null;
  epoch = null;
  /** joining | joined | left */
  state = 'joining';

  constructor(sb, name) {
    super();
    this.#sb = sb;
    this.name = name;
  }

  /** position is where the room's stream was last seen, for a later since. */
  get position() {
    return this.epoch === null ? null : { offset: this.offset, epoch: this.epoch };
  }

  publish(content) {
    if (this.state === 'left') return Promise.reject(new SwitchboardError('not_member', `not in room ${this.name}`));
    return this.#sb._request({ type: 'room_message', room: this.name, content });
  }

  history({ limit } = {}) {
    const frame = { type: 'history', room: this.name };
    if (limit !== undefined) frame.limit = limit;
    return this.#sb._request(frame);
  }

  presence() {
    return this.#sb._request({ type: 'presence', room: this.name });
  }

  leave() {
    return this.#sb._leave(this);
  }

  // _publication delivers a room event unless it repeats one already
  // delivered (same epoch, offset not past the last one).
  _publication(ev) {
    if (Number.isInteger(ev.offset) && typeof ev.epoch === 'string') {
      if (ev.epoch === this.epoch && ev.offset <= this.offset) return false;
      if (ev.epoch === this.epoch && ev.offset > this.offset + 1) {
        this._gap({ reason: 'skipped', since: this.position, offset: ev.offset - 1, epoch: ev.epoch });
      }
      this.offset = ev.offset;
      this.epoch = ev.epoch;
    }
    this.emit(ev.event === 'chat' ? 'message' : 'event', ev);
    return true;
  }

  // _position takes a join ack's position: the stream's top when joined.
  _position(ack) {
    if (!Number.isInteger(ack.offset) || typeof ack.epoch !== 'string') return;
    if (ack.epoch === this.epoch) {
      this.offset = Math.max(this.offset, ack.offset);
    } else {
      this.epoch = ack.epoch;
      this.offset = ack.offset;
    }
  }

  _gap(info) {
    const ev = { room: this.name, ...info };
    this.emit('gap', ev);
    this.#sb._emit('gap', ev);
  }
}

/**
 * Switchboard is one logical connection to a cluster: it reconnects,
 * rejoins and recovers on its own until close().
 */
export class Switchboard extends Emitter {
  #urls;
  #opts;
  #WebSocket;
  #state = 'closed';
  #ws = null;
  #urlIndex = -1;
  #attempt = 0; // failed attempts since the last welcome
  #retryTimer = null;
  #handshakeTimer = null;
  #pingTimer = null;
  #lastFrame = 0;
  #token;
  #freshToken = false; // the next attempt asks getToken first
  #seq = 0;
  #pending = new Map(); // id -> request sent on the current socket
  #queue = []; // requests waiting for a connection
  #held = []; // queries waiting for one of QUERIES_OUT to be answered
  #rooms = new Map(); // name -> Room
  #generation = 0; // bumped by connect() and close(): stale async work stops

  /** clientId and node of the current connection (from its welcome). */
  clientId = null;
  node = null;

  constructor(url, options = {}) {
    super();
    this.#urls = (Array.isArray(url) ? url : [url]).map((u) => {
      const parsed = new URL(String(u), globalThis.location?.href);
      if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
      if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
      return parsed;
    });
    if (!this.#urls.length) throw new TypeError('switchboard: no URL');
    this.#WebSocket = options.WebSocket || globalThis.WebSocket;
    if (typeof this.#WebSocket !== 'function') {
      throw new TypeError('switchboard: no WebSocket implementation: pass one, e.g. { WebSocket } from the ws package');
    }
    this.#opts = {
      clientId: options.clientId,
      getToken: options.getToken,
      backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
      requestTimeout: options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT,
      queueLimit: options.queueLimit ?? DEFAULT_QUEUE_LIMIT,
      pingAfter: options.pingAfter ?? DEFAULT_PING_AFTER,
      random: options.random || Math.random,
    };
    this.#token = options.token;
  }

  /** connecting | connected | reconnecting | closed */
  get state() {
    return this.#state;
  }

  /** rooms is the rooms joined (or being joined), by name. */
  get rooms() {
    return new Map(this.#rooms);
  }

  connect() {
    if (this.#state !== 'closed') return;
    this.#generation += 1;
    this.#attempt = 0;
    this.#setState('connecting');
    this.#open(this.#generation);
  }

  /** close ends the connection for good: nothing is rejoined or sent. */
  close() {
    this.#generation += 1;
    const ws = this.#ws;
    this.#detach();
    if (ws) {
      try { ws.close(1000, 'bye'); } catch { /* already closing */ }
    }
    for (const room of this.#rooms.values()) room.state = 'left';
    this.#rooms.clear();
    this.#rejectAll(new SwitchboardError('closed', 'the client was closed'));
    this.#setState('closed', { code: 1000, reason: 'closed by the client' });
  }

  /** retry ends the current backoff wait: the next socket opens now. */
  retry() {
    if (this.#state !== 'reconnecting' || this.#ws) return;
    clearTimeout(this.#retryTimer);
    this.#open(this.#generation);
  }

  /** join resolves with the Room once the node acknowledged the join. */
  join(name, { since } = {}) {
    const existing = this.#rooms.get(name);
    if (existing && existing._joined) return existing._joined;
    const room = new Room(this, name);
    if (since) {
      room.offset = since.offset;
      room.epoch = since.epoch;
    }
    this.#rooms.set(name, room);
    room._joined = this._request(this.#joinFrame(room), { room, join: true }).then(
      () => room,
      (err) => {
        if (this.#rooms.get(name) === room) this.#rooms.delete(name);
        room.state = 'left';
        throw err;
      },
    );
    return room._joined;
  }

  direct(user, content) {
    return this._request({ type: 'direct_message', target_user: user, content });
  }

  chat(content) {
    return this._request({ type: 'chat', content });
  }

  /** stats asks the node this socket is on about itself. */
  stats() {
    return this._request({ type: 'stats' });
  }

  _emit(name, ...args) {
    this.emit(name, ...args);
  }

  // ------------------------------------------------------------ requests

  _request(frame, meta = {}) {
    return new Promise((resolve, reject) => {
      if (this.#state === 'closed') {
        reject(new SwitchboardError('closed', `not connected: call connect() first (${frame.type})`));
        return;
      }
      const req = { frame: { ...frame, id: 'r' + ++this.#seq }, resolve, reject, ...meta };
      req.timer = setTimeout(() => {
        this.#forget(req);
        reject(new SwitchboardError('timeout', `no answer from the node within ${this.#opts.requestTimeout} ms (${frame.type})`));
      }, this.#opts.requestTimeout);
      if (this.#state === 'connected' && this.#ws) {
        this.#send(req);
      } else if (this.#queue.length >= this.#opts.queueLimit) {
        clearTimeout(req.timer);
        reject(new SwitchboardError('queue_full', `${this.#opts.queueLimit} requests already wait for a connection (${frame.type})`));
      } else {
        this.#queue.push(req);
      }
    });
  }

  #send(req) {
    if (QUERIES.has(req.frame.type) && this.#queriesOut() >= QUERIES_OUT) {
      this.#held.push(req);
      return;
    }
    this.#pending.set(req.frame.id, req);
    this.#ws.send(JSON.stringify(req.frame));
  }

  #queriesOut() {
    let n = 0;
    for (const req of this.#pending.values()) if (QUERIES.has(req.frame.type)) n++;
    return n;
  }

  // #sendHeld sends the held queries that now fit.
  #sendHeld() {
    while (this.#held.length > 0 && this.#state === 'connected' && this.#ws && this.#queriesOut() < QUERIES_OUT) {
      this.#send(this.#held.shift());
    }
  }

  #forget(req) {
    const out = this.#pending.delete(req.frame.id);
    for (const list of [this.#queue, this.#held]) {
      const i = list.indexOf(req);
      if (i >= 0) list.splice(i, 1);
    }
    if (out && QUERIES.has(req.frame.type)) this.#sendHeld();
  }

  #rejectAll(err) {
    for (const req of [...this.#pending.values(), ...this.#held, ...this.#queue]) {
      clearTimeout(req.timer);
      req.reject(err);
    }
    this.#pending.clear();
    this.#held = [];
    this.#queue = [];
  }

  #joinFrame(room) {
    const frame = { type: 'join_room', room: room.name };
    if (room.epoch !== null) frame.since = { offset: room.offset, epoch: room.epoch };
    return frame;
  }

  _leave(room) {
    if (this.#rooms.get(room.name) !== room) return Promise.resolve();
    this.#rooms.delete(room.name);
    room.state = 'left';
    if (this.#state !== 'connected') return Promise.resolve(); // a new socket is in no room
    return this._request({ type: 'leave_room', room: room.name }).catch((err) => {
      if (err.code !== 'not_member') throw err;
    });
  }

  // ------------------------------------------------------------ connection

  #setState(state, info = {}) {
    if (state === this.#state) return;
    this.#state = state;
    this.emit('state', state, info);
  }

  async #open(gen) {
    let token = this.#token;
    const getToken = this.#opts.getToken;
    if (getToken && (this.#freshToken || !token || tokenExpiry(token) - Date.now() < TOKEN_REFRESH_MARGIN)) {
      try {
        token = await getToken();
      } catch (err) {
        if (gen !== this.#generation) return;
        this.emit('error', new SwitchboardError('token', `getToken failed: ${err?.message || err}`));
        this.#retry({ code: 1006, reason: 'getToken failed' });
        return;
      }
      if (gen !== this.#generation) return;
      this.#freshToken = false;
      this.#token = token;
    }
    this.#urlIndex = (this.#urlIndex + 1) % this.#urls.length;
    const url = new URL(this.#urls[this.#urlIndex]);
    // With a token the node names the client by its sub; a client_id that
    // differs would be refused, so none is sent.
    if (this.#opts.clientId && !token) url.searchParams.set('client_id', this.#opts.clientId);
    let ws;
    try {
      // The token travels as the second value of the ["bearer", TOKEN]
      // subprotocol offer: browsers cannot set headers, and URLs are logged.
      ws = token ? new this.#WebSocket(url.href, ['bearer', token]) : new this.#WebSocket(url.href);
    } catch (err) {
      this.emit('error', new SwitchboardError('connect', `cannot open ${url.href}: ${err?.message || err}`));
      this.#retry({ code: 1006, reason: String(err?.message || err) });
      return;
    }
    this.#ws = ws;
    let refusedStatus = 0;
    ws.onmessage = (e) => {
      if (this.#ws !== ws) return;
      let ev;
      try { ev = JSON.parse(typeof e.data === 'string' ? e.data : String(e.data)); } catch { return; }
      if (ev && typeof ev.event === 'string') this.#onEvent(ev);
    };
    // A refused handshake reaches a browser as a bare close (1006); the ws
    // package says which HTTP status refused it.
    ws.onerror = (e) => {
      const m = /Unexpected server response: (\d+)/.exec(String(e?.message || e?.error?.message || ''));
      if (m) refusedStatus = Number(m[1]);
    };
    ws.onclose = (e) => {
      if (this.#ws !== ws) return;
      this.#lost({ code: e.code, reason: e.reason || '', status: refusedStatus || undefined });
    };
    this.#handshakeTimer = setTimeout(() => {
      if (this.#ws === ws) this.#drop(ws, 'no welcome from the node in time');
    }, this.#opts.requestTimeout);
  }

  // #drop gives up a socket without waiting for its close handshake (a dead
  // peer may never answer), and handles the loss at once.
  #drop(ws, reason) {
    this.#detach();
    try { ws.close(4000, reason.slice(0, 100)); } catch { /* not open yet */ }
    this.#lost({ code: 1006, reason }, true);
  }

  #detach() {
    const ws = this.#ws;
    // A no-op error handler stays: the ws package throws an error event
    // that nobody listens to.
    if (ws) {
      ws.onmessage = ws.onclose = null;
      ws.onerror = () => {};
    }
    this.#ws = null;
    clearTimeout(this.#handshakeTimer);
    clearTimeout(this.#pingTimer);
    this.#pingTimer = null;
    clearTimeout(this.#retryTimer);
  }

  // #lost handles the end of the current socket: requests in flight fail
  // (the node may or may not have taken them) but first joins, queued ones
  // keep waiting, and the client reconnects unless it was closed or refused.
  async #lost(info, detached = false) {
    if (!detached) this.#detach();
    const gen = this.#generation;
    // A first join is safe to send again (a new socket is in no room): it
    // waits for the next socket instead of failing.
    const joins = [...this.#pending.values()].filter((req) => req.join && this.#rooms.get(req.room.name) === req.room);
    for (const req of joins) this.#pending.delete(req.frame.id);
    this.#queue.unshift(...joins);
    for (const req of this.#pending.values()) {
      clearTimeout(req.timer);
      req.reject(new SwitchboardError('disconnected', `the connection was lost before the node answered (${req.frame.type}); it may or may not have taken it`, { closeCode: info.code }));
    }
    this.#pending.clear();
    for (const room of this.#rooms.values()) if (room.state === 'joined') room.state = 'joining';
    this.emit('disconnect', info);
    const refused = REFUSED.has(info.code) || info.status === 401 || info.status === 403;
    if (refused) {
      // No request may go to the lost socket while getToken runs.
      this.#setState('reconnecting', info);
      const used = this.#token;
      let next;
      if (this.#opts.getToken) {
        try { next = await this.#opts.getToken(); } catch { next = undefined; }
      }
      if (gen !== this.#generation) return;
      if (!next || next === used) {
        this.#generation += 1;
        const err = new SwitchboardError(info.code === 4001 ? 'token_expired' : info.status ? 'unauthorized' : 'refused',
          `the node refused the connection (${info.status ? 'HTTP ' + info.status : info.code}${info.reason ? ': ' + info.reason : ''}) and no new token was given`, { closeCode: info.code, status: info.status });
        this.#rejectAll(err);
        this.#setState('closed', { ...info, error: err });
        return;
      }
      this.#token = next;
      this.#retry(info, 0);
      return;
    }
    // A drain (1001) sends the clients elsewhere at once: the node is going
    // away, not failing.
    this.#retry(info, info.code === 1001 && this.#attempt === 0 ? 0 : undefined);
  }

  #retry(info, delay) {
    if (this.#state === 'closed') return;
    if (delay === undefined) delay = backoffDelay(this.#attempt, this.#opts.backoff, this.#opts.random);
    this.#attempt += 1;
    const gen = this.#generation;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      if (gen === this.#generation) this.#open(gen);
    }, delay);
    if (this.#state === 'reconnecting') {
      this.emit('state', 'reconnecting', { ...info, delay, attempt: this.#attempt });
    } else {
      this.#setState('reconnecting', { ...info, delay, attempt: this.#attempt });
    }
  }

  // #alive restarts the silence timer: after pingAfter ms without a frame
  // the client pings, and drops a socket whose pong does not come in time.
  // The timer is set once per silence, not once per frame.
  #alive() {
    this.#lastFrame = Date.now();
    if (!this.#opts.pingAfter || this.#pingTimer !== null || this.#state !== 'connected') return;
    const ws = this.#ws;
    const check = () => {
      this.#pingTimer = null;
      if (this.#ws !== ws) return;
      const quiet = Date.now() - this.#lastFrame;
      if (quiet < this.#opts.pingAfter) {
        this.#pingTimer = setTimeout(check, this.#opts.pingAfter - quiet);
        return;
      }
      this._request({ type: 'ping' }).then(() => this.#alive(), (err) => {
        if (err.code === 'timeout' && this.#ws === ws) this.#drop(ws, 'no pong from the node in time');
      });
    };
    this.#pingTimer = setTimeout(check, this.#opts.pingAfter);
  }

  // ------------------------------------------------------------ events

  #onEvent(ev) {
    this.#alive();
    if (ev.id !== undefined && ev.id !== null) {
      const req = this.#pending.get(String(ev.id));
      if (req) {
        this.#pending.delete(req.frame.id);
        clearTimeout(req.timer);
        if (ev.event === 'error') {
          req.reject(new SwitchboardError(ev.code, ev.message, { event: ev }));
        } else {
          if (req.room) this.#joinAcked(req, ev);
          req.resolve(req.answer || ev);
        }
        if (QUERIES.has(req.frame.type)) this.#sendHeld();
        return;
      }
    }
    // stats and ping are answered by an event without the id, then acked.
    const asked = ANSWERED_BEFORE_ACK[ev.event];
    if (asked) {
      for (const req of this.#pending.values()) {
        if (req.frame.type === asked && !req.answer) { req.answer = ev; return; }
      }
    }
    switch (ev.event) {
      case 'welcome': return this.#onWelcome(ev);
      case 'chat':
        if (ev.room !== undefined) return this.#toRoom(ev);
        return this.emit('chat', ev);
      case 'direct_message': return this.emit('direct', ev);
      case 'user_joined': case 'user_left': {
        const room = this.#rooms.get(ev.room);
        if (room) room.emit(ev.event === 'user_joined' ? 'joined' : 'left', ev);
        return;
      }
      case 'user_connected': case 'user_disconnected': return this.emit(ev.event, ev);
      case 'error': return this.emit('error', new SwitchboardError(ev.code, ev.message, { event: ev }));
      case 'pong': case 'ack': return;
      default: {
        // A server-side publication to a room carries the room only if its
        // payload names it; else its epoch, which is one room's stream's
        // own, tells the room, so that its offset counts for the rejoin.
        if (typeof ev.room === 'string' && this.#rooms.has(ev.room)) return this.#toRoom(ev);
        const room = typeof ev.epoch === 'string' && Number.isInteger(ev.offset) && this.#roomOfEpoch(ev.epoch);
        if (room) return room._publication(ev);
        return this.emit('event', ev);
      }
    }
  }

  #roomOfEpoch(epoch) {
    let found = null;
    for (const room of this.#rooms.values()) {
      if (room.epoch !== epoch) continue;
      if (found) return null;
      found = room;
    }
    return found;
  }

  #toRoom(ev) {
    const room = this.#rooms.get(ev.room);
    if (room) room._publication(ev);
  }

  #onWelcome(ev) {
    clearTimeout(this.#handshakeTimer);
    this.clientId = ev.client_id;
    this.node = ev.node;
    const again = this.#attempt > 0 || this.#state === 'reconnecting';
    this.#attempt = 0;
    this.#setState('connected', { clientId: ev.client_id, node: ev.node, reconnected: again });
    this.#alive();
    // Rejoins go first: the node takes a connection's commands in order, so
    // queued room requests follow the joins they need.
    const queued = this.#queue;
    this.#queue = [];
    for (const room of this.#rooms.values()) {
      if (queued.some((q) => q.room === room)) continue; // its first join is queued
      this.#rejoin(room);
    }
    for (const req of queued) {
      if (req.room) req.frame = { ...this.#joinFrame(req.room), id: req.frame.id };
      this.#send(req);
    }
    this.#sendHeld();
  }

  #rejoin(room) {
    const since = room.position;
    const ws = this.#ws;
    this._request(this.#joinFrame(room), { room, rejoin: true, since }).catch((err) => {
      if (this.#rooms.get(room.name) !== room || this.#ws !== ws) return;
      if (err.code === 'unavailable' || err.code === 'timeout') {
        setTimeout(() => {
          if (this.#ws === ws && this.#rooms.get(room.name) === room) this.#rejoin(room);
        }, backoffDelay(0, this.#opts.backoff, this.#opts.random));
        return;
      }
      this.#rooms.delete(room.name);
      room.state = 'left';
      room.emit('error', err);
      this.emit('error', new SwitchboardError(err.code, `rejoining ${room.name} failed: ${err.message}`, { room: room.name }));
    });
  }

  #joinAcked(req, ack) {
    const room = req.room;
    if (this.#rooms.get(room.name) !== room) return;
    const since = req.frame.since;
    room._position(ack);
    room.state = 'joined';
    if (!req.rejoin && !since) return;
    if (ack.recovered === true) {
      const ev = { room: room.name, since, offset: ack.offset, epoch: ack.epoch };
      room.emit('recovered', ev);
      this.emit('recovered', ev);
    } else {
      // recovered:false, or a node with history off, which sends no
      // position: what was published meanwhile is lost to this client.
      room._gap({ reason: since ? 'not_recovered' : 'history_off', since: since || null, offset: ack.offset ?? null, epoch: ack.epoch ?? null });
    }
  }
}

export default Switchboard;
