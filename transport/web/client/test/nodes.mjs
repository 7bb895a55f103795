// Real parts for the client's tests: switchboard nodes (the real binary,
// started as child processes on free loopback ports), a real redis-server,
// a TCP relay that can cut connections, and HS256 tokens.
//
// SB_BIN names the node binary (make test passes bin/switchboard); without
// it the tests build one with `go build` into a temporary directory.

import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { Switchboard } from '../switchboard.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../../../..');

let binary;
export function nodeBinary() {
  if (binary) return binary;
  if (process.env.SB_BIN) {
    binary = resolve(process.env.SB_BIN);
    return binary;
  }
  const dir = join(tmpdir(), 'switchboard-client-test');
  mkdirSync(dir, { recursive: true });
  binary = join(dir, 'switchboard');
  execFileSync('go', ['build', '-o', binary, './cmd/switchboard'], { cwd: repo, stdio: 'inherit' });
  return binary;
}

export function freePort() {
  return new Promise((ok, fail) => {
    const srv = net.createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

// waitFor polls cond until it is true, or fails after ms with what.
export async function waitFor(cond, what, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// once resolves with the arguments of emitter's next `name` event that
// passes filter.
export function once(emitter, name, filter = () => true, ms = 10000) {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => { off(); fail(new Error(`no ${name} event within ${ms} ms`)); }, ms);
    const off = emitter.on(name, (...args) => {
      if (!filter(...args)) return;
      clearTimeout(timer);
      off();
      ok(args);
    });
  });
}

/** A switchboard node process, restartable on the same port. */
export class Node {
  constructor(args = [], { port } = {}) {
    this.args = args;
    this.port = port;
    this.proc = null;
    this.log = [];
  }

  get url() { return `ws://127.0.0.1:${this.port}/ws`; }
  get http() { return `http://127.0.0.1:${this.port}`; }

  async start() {
    if (!this.port) this.port = await freePort();
    const proc = spawn(nodeBinary(), ['--addr', `127.0.0.1:${this.port}`, '--log-format', 'json', ...this.args],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.exited = new Promise((ok) => proc.once('exit', (code, signal) => ok({ code, signal })));
    let buf = '';
    await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`node did not listen within 20 s: ${this.log.join('\n')}`)), 20000);
      proc.stderr.on('data', (chunk) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          this.log.push(line);
          if (this.log.length > 200) this.log.shift();
          if (line.includes('switchboard node listening')) { clearTimeout(timer); ok(); }
        }
      });
      proc.exited.then(({ code }) => { clearTimeout(timer); fail(new Error(`node exited (${code}): ${this.log.join('\n')}`)); });
    });
    return this;
  }

  /** stop sends SIGTERM (the node drains: clients get 1001) and waits for the exit. */
  async stop(signal = 'SIGTERM') {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    proc.kill(signal);
    await proc.exited;
  }
}

export async function startRedis() {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.exited = new Promise((ok) => proc.once('exit', ok));
  let out = '';
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`redis-server not ready: ${out}`)), 10000);
    proc.stdout.on('data', (c) => {
      out += c;
      if (out.includes('Ready to accept connections')) { clearTimeout(timer); ok(); }
    });
    proc.once('error', fail);
  });
  return { url: `redis://127.0.0.1:${port}`, stop: async () => { proc.kill('SIGTERM'); await proc.exited; } };
}

export function hasRedis() {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Relay is a TCP relay in front of a node: cut() ends every connection
 * through it, and while refusing it closes new ones at once (a node that
 * cannot be reached, without stopping it).
 */
export class Relay {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.sockets = new Set();
    this.refusing = false;
  }

  async start() {
    this.server = net.createServer((client) => {
      if (this.refusing) { client.destroy(); return; }
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise((ok) => this.server.listen(0, '127.0.0.1', ok));
    this.port = this.server.address().port;
    return this;
  }

  get url() { return `ws://127.0.0.1:${this.port}/ws`; }

  cut() { for (const s of this.sockets) s.destroy(); }

  async close() {
    this.cut();
    await new Promise((ok) => this.server.close(ok));
  }
}

/** token signs an HS256 JWT for sub that expires in seconds. */
export function token(secret, sub, seconds) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64({ sub, iat: now, exp: now + seconds });
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** client makes a Switchboard with the ws package, connected, and closed by the test's end. */
export async function client(t, url, options = {}) {
  const sb = new Switchboard(url, { WebSocket, backoff: { initial: 50, max: 500 }, ...options });
  t.after(() => sb.close());
  const connected = once(sb, 'state', (s) => s === 'connected');
  sb.connect();
  await connected;
  return sb;
}

export { repo, existsSync };
