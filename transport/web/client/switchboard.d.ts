// Types of the Switchboard client (switchboard.js). docs/client.md is the manual.

/** Connection states; see the table in docs/client.md. */
export type State = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** Protocol error codes of the node, and the client's own. */
export type ErrorCode =
  | 'invalid_json' | 'invalid_message' | 'unknown_type' | 'invalid_room' | 'not_member'
  | 'user_offline' | 'forbidden' | 'rate_limited' | 'too_many_rooms' | 'unavailable'
  | 'history_disabled'
  // the client's own:
  | 'timeout' | 'queue_full' | 'disconnected' | 'closed' | 'token_expired' | 'unauthorized'
  | 'refused' | 'token' | 'connect'
  | (string & {});

export interface Backoff {
  /** First cap of the wait, in ms. Default 500. */
  initial?: number;
  /** Largest cap, in ms. Default 10000. */
  max?: number;
  /** Growth of the cap per failed attempt. Default 2. */
  factor?: number;
}

/** A WebSocket class: the browser's, or the ws package's in Node. */
export interface WebSocketLike {
  new (url: string, protocols?: string | string[]): any;
}

export interface Options {
  /** The id to ask for without a token (client_id); with a token the node uses its sub. */
  clientId?: string;
  /** A JWT, sent as the ["bearer", token] subprotocol offer. */
  token?: string;
  /**
   * Called for a token before the first connection, when the token expires
   * within 5 s, and after the node refused one (4001, 1008, HTTP 401/403).
   * The client reconnects after a refusal only if it returns a different token.
   */
  getToken?: () => string | undefined | Promise<string | undefined>;
  /** WebSocket implementation; default globalThis.WebSocket. Node 20: `import { WebSocket } from 'ws'`. */
  WebSocket?: WebSocketLike;
  backoff?: Backoff;
  /** ms before a request with no answer rejects with code "timeout" (also bounds the handshake). Default 10000. */
  requestTimeout?: number;
  /** Requests that may wait while (re)connecting; past it they reject with "queue_full". Default 100. */
  queueLimit?: number;
  /** ms of silence after which the client pings the node (0: never). Default 30000. */
  pingAfter?: number;
  /** Random source in [0, 1) for the jitter; default Math.random. */
  random?: () => number;
}

export declare class SwitchboardError extends Error {
  name: 'SwitchboardError';
  code: ErrorCode;
  /** The node's error event, when the node answered with one. */
  event?: ServerEvent;
  /** For closes: the close code, and the HTTP status of a refused handshake (Node only). */
  closeCode?: number;
  status?: number;
  constructor(code: ErrorCode, message?: string, detail?: object);
}

/** Every server frame: a JSON object with an event field. */
export interface ServerEvent {
  event: string;
  [field: string]: unknown;
}

export interface ChatEvent extends ServerEvent {
  event: 'chat';
  from: string;
  content: string;
  room?: string;
  /** With history on: the publication's place in the room's stream. */
  offset?: number;
  epoch?: string;
}

export interface PresenceEvent extends ServerEvent {
  user_id: string;
  room?: string;
}

export interface Position {
  offset: number;
  epoch: string;
}

export interface Ack extends ServerEvent {
  event: 'ack';
  id: string;
  room?: string;
  offset?: number;
  epoch?: string;
  recovered?: boolean;
}

export interface HistoryAnswer extends ServerEvent {
  event: 'history';
  room: string;
  offset: number;
  epoch: string;
  publications: ServerEvent[];
}

export interface PresenceAnswer extends ServerEvent {
  event: 'presence';
  room: string;
  users: number;
  connections: number;
  members: { user_id: string; connections: number }[];
}

export interface RecoveredEvent {
  room: string;
  /** The position the client rejoined from. */
  since: Position;
  /** The room's position when it was rejoined. */
  offset: number;
  epoch: string;
}

export interface GapEvent {
  room: string;
  /**
   * not_recovered: the node could not send what was missed (another epoch,
   * trimmed or expired history); history_off: the node keeps no history;
   * skipped: a live publication came past the next offset.
   */
  reason: 'not_recovered' | 'history_off' | 'skipped';
  since: Position | null;
  offset: number | null;
  epoch: string | null;
}

export interface StateInfo {
  /** connected: the welcome's client id and node; reconnected when it is not the first. */
  clientId?: string;
  node?: string;
  reconnected?: boolean;
  /** reconnecting and closed: why the socket ended. */
  code?: number;
  reason?: string;
  status?: number;
  /** reconnecting: ms until the next attempt, and its number. */
  delay?: number;
  attempt?: number;
  /** closed after a refusal. */
  error?: SwitchboardError;
}

export interface CloseInfo {
  code: number;
  reason: string;
  status?: number;
}

type Off = () => void;

export declare class Room {
  readonly name: string;
  /** joining | joined | left */
  readonly state: 'joining' | 'joined' | 'left';
  /** Offset and epoch of the last publication delivered, or of the join's position. */
  readonly offset: number | null;
  readonly epoch: string | null;
  readonly position: Position | null;
  /** Resolves on the node's ack; rejects with the node's error code. */
  publish(content: string): Promise<Ack>;
  history(options?: { limit?: number }): Promise<HistoryAnswer>;
  /** Who is in the room across the cluster (protocol section 7); nodes of older releases reject with unknown_type. */
  presence(): Promise<PresenceAnswer>;
  leave(): Promise<void>;
  on(name: 'message', fn: (ev: ChatEvent) => void): Off;
  on(name: 'event', fn: (ev: ServerEvent) => void): Off;
  on(name: 'joined' | 'left', fn: (ev: PresenceEvent) => void): Off;
  on(name: 'recovered', fn: (ev: RecoveredEvent) => void): Off;
  on(name: 'gap', fn: (ev: GapEvent) => void): Off;
  on(name: 'error', fn: (err: SwitchboardError) => void): Off;
  off(name: string, fn: (...args: any[]) => void): void;
}

export declare class Switchboard {
  /** url: the node's /ws (ws:, wss:, http: or https:), or several, tried in turn. */
  constructor(url: string | URL | (string | URL)[], options?: Options);
  readonly state: State;
  readonly clientId: string | null;
  readonly node: string | null;
  readonly rooms: Map<string, Room>;
  connect(): void;
  close(): void;
  /** While reconnecting: skip the rest of the backoff wait. */
  retry(): void;
  join(room: string, options?: { since?: Position }): Promise<Room>;
  direct(user: string, content: string): Promise<Ack>;
  chat(content: string): Promise<Ack>;
  stats(): Promise<ServerEvent>;
  on(name: 'state', fn: (state: State, info: StateInfo) => void): Off;
  on(name: 'recovered', fn: (ev: RecoveredEvent) => void): Off;
  on(name: 'gap', fn: (ev: GapEvent) => void): Off;
  on(name: 'chat', fn: (ev: ChatEvent) => void): Off;
  on(name: 'direct', fn: (ev: ServerEvent & { from: string; content: string }) => void): Off;
  on(name: 'user_connected' | 'user_disconnected', fn: (ev: PresenceEvent) => void): Off;
  on(name: 'disconnect', fn: (info: CloseInfo) => void): Off;
  on(name: 'error', fn: (err: SwitchboardError) => void): Off;
  on(name: 'event', fn: (ev: ServerEvent) => void): Off;
  off(name: string, fn: (...args: any[]) => void): void;
}

/** The wait before reconnect attempt `attempt`: uniform in [0, min(max, initial * factor^attempt)). */
export declare function backoffDelay(attempt: number, backoff?: Required<Backoff>, random?: () => number): number;

export default Switchboard;
