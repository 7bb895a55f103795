package redis

import (
	"context"
	"errors"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Room history on Redis (docs/protocol.md, section 6). Each room has a
// stream of its newest publications, PREFIX:stream:{ROOM}, and a metadata
// hash, PREFIX:stream-meta:{ROOM}, with the stream's epoch and top offset
// (and, per publishing node life, the last msg_id it numbered). One script
// numbers a publication, stores it and publishes it, so that pub/sub order
// is offset order and no publication is numbered without being stored.
// Both keys expire HistoryTTL after the last publication; a room whose
// metadata is gone (expired, or Redis lost its data) gets a new epoch at
// its next publication or read: its members then recover with
// recovered:false, never across a silent gap. The room name is the keys'
// hash tag, so that both live on one Redis Cluster shard.
//
// An epoch also ends when the primary changes (a Sentinel failover):
// replication is asynchronous, so the new primary may lack the last
// publications the old one numbered and delivered, and numbering on from
// its shorter stream would give two publications one offset. The
// metadata records the replication id of the primary that numbered
// (INFO replication's master_replid, which a promotion changes), and a
// publication on another primary starts a new epoch.

// streamKeys are a room channel's stream and metadata keys; on a cluster
// they carry the room's partition tag first (PREFIX:stream:{TAG}:{ROOM}),
// the slot of the partition's channel that appendScript publishes on.
// There a slot that moves to another shard, like a failover, starts a new
// epoch (another primary's replication id).
func (k *keyspace) streamKeys(channel string) (meta, stream string) {
	room := channel[len(k.prefix)+len(":room:"):]
	tag := k.roomTag(room)
	return k.prefix + ":stream-meta:" + tag + "{" + room + "}", k.prefix + ":stream:" + tag + "{" + room + "}"
}

// appendScript: KEYS meta, stream; ARGV channel, size, ttl (ms), a fresh
// epoch, msg_id origin, msg_id seq, the envelope template's three
// literals (wire.StreamTemplate: literal, #offset, literal, epoch,
// literal), the publish command (SPUBLISH on a cluster) and what goes in
// front of the published envelope (a routed frame's header on a cluster's
// partition channel, wire.RoutedHeader; the stream stores the bare
// envelope). It returns {epoch, offset, duplicate, subscribers}: a
// publication whose msg_id this origin numbered already (a command sent
// again after a connection fault) is not numbered twice.
//
// Each entry also holds c, the running total of the stored bytes of its
// life up to it (the metadata's bytes is the top's): what a recovery
// after offset N would read is bytes - c(N), known without reading it.
var appendScript = goredis.NewScript(`
local meta, stream = KEYS[1], KEYS[2]
local size, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local origin, seq = ARGV[5], tonumber(ARGV[6])
local replid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)') or ''
local epoch = redis.call('HGET', meta, 'epoch')
if epoch and redis.call('HGET', meta, 'replid') ~= replid then
  epoch = false
end
if not epoch then
  redis.call('DEL', stream)
  epoch = ARGV[4]
  redis.call('HSET', meta, 'epoch', epoch, 'top', 0, 'replid', replid, 'bytes', 0)
end
local mark = 'o:' .. origin
local last = redis.call('HGET', meta, mark)
if last then
  local lseq, loff = string.match(last, '^(%d+):(%d+)$')
  if lseq and tonumber(lseq) >= seq then
    local off = 0
    if tonumber(lseq) == seq then off = tonumber(loff) end
    return {epoch, off, 1, 0}
  end
end
local top = redis.call('HINCRBY', meta, 'top', 1)
local data = ARGV[7] .. top .. ARGV[8] .. '"' .. epoch .. '"' .. ARGV[9]
local total = redis.call('HINCRBY', meta, 'bytes', #data)
redis.call('XADD', stream, 'MAXLEN', size, '0-' .. top, 'd', data, 'c', total)
redis.call('HSET', meta, mark, seq .. ':' .. top)
redis.call('PEXPIRE', meta, ttl)
redis.call('PEXPIRE', stream, ttl)
local n = redis.call(ARGV[10], ARGV[1], ARGV[11] .. data)
return {epoch, top, 0, n}
`)

// readScript: KEYS meta, stream; ARGV a fresh epoch, ttl (ms), after,
// limit, position only ("1"), the epoch after counts in, max bytes (0: no
// bound), a client's read ("1"). It returns {epoch, top, {entries},
// truncated}: the publications after offset after (from 1 if the stream's
// epoch is another), or the newest limit of them, oldest first.
//
// A stream with no metadata gets the fresh epoch at offset 0, kept for
// ttl (the room's position read: its joiners are told that epoch, which
// the first publication then continues). A client's read of such a
// stream (a history query, a recovery) writes nothing: it answers the
// fresh epoch at 0, which no later read repeats (a since naming it
// answers recovered:false), so that queries of made-up room names cannot
// fill Redis with keys.
//
// Max bytes bounds what a read costs Redis, the wire and the node: the
// entries are read in chunks, and a limit read stops at the newest entry
// that passes the bound (it is included); any other read that would pass
// it returns no entry (truncated = 1: the asker, a recovery, gives up, and
// Redis sends it nothing it would throw away), decided from the entries'
// running totals without reading them where they have one (entries of an
// older version of this script do not: they are read up to the bound).
// Entry ids are 0-OFFSET.
var readScript = goredis.NewScript(`
local meta, stream = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  if ARGV[8] == '1' then
    return {ARGV[1], 0, {}, 0}
  end
  redis.call('DEL', stream)
  epoch = ARGV[1]
  local replid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)') or ''
  redis.call('HSET', meta, 'epoch', epoch, 'top', 0, 'replid', replid)
  redis.call('PEXPIRE', meta, tonumber(ARGV[2]))
  return {epoch, 0, {}, 0}
end
local top = tonumber(redis.call('HGET', meta, 'top'))
if ARGV[5] == '1' then
  return {epoch, top, {}, 0}
end
local after, limit, maxb = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[7])
if ARGV[6] ~= epoch then after = 0 end
if maxb <= 0 then maxb = math.huge end
local out, size, truncated = {}, 0, 0
if limit > 0 then
  local newest, hi = {}, top
  while #newest < limit and hi > after and size <= maxb do
    local chunk = redis.call('XREVRANGE', stream, '0-' .. hi, '0-' .. (after + 1), 'COUNT', math.min(8, limit - #newest))
    if #chunk == 0 then break end
    for i = 1, #chunk do
      local d = chunk[i][2][2]
      newest[#newest + 1] = d
      size = size + #d
      if size > maxb then break end
    end
    hi = tonumber(string.match(chunk[#chunk][1], '^0%-(%d+)$')) - 1
  end
  for i = #newest, 1, -1 do out[#out + 1] = newest[i] end
else
  if maxb ~= math.huge then
    -- What the read would take, from the running totals (appendScript),
    -- when the entry at after has one: past max bytes, nothing is read.
    local total, base = tonumber(redis.call('HGET', meta, 'bytes') or ''), nil
    if after == 0 then
      base = 0
    else
      local e = redis.call('XRANGE', stream, '0-' .. after, '0-' .. after)
      if #e == 1 and e[1][2][3] == 'c' then base = tonumber(e[1][2][4]) end
    end
    if total and base and total - base > maxb then
      return {epoch, top, {}, 1}
    end
  end
  local lo = after + 1
  while lo <= top and truncated == 0 do
    local chunk = redis.call('XRANGE', stream, '0-' .. lo, '0-' .. top, 'COUNT', 8)
    if #chunk == 0 then break end
    for i = 1, #chunk do
      local d = chunk[i][2][2]
      size = size + #d
      if size > maxb then
        truncated = 1
        out = {}
        break
      end
      out[#out + 1] = d
    end
    lo = tonumber(string.match(chunk[#chunk][1], '^0%-(%d+)$')) + 1
  end
end
return {epoch, top, out, truncated}
`)

// newEpoch names a new life of a stream: 8 characters of [0-9A-Za-z].
func newEpoch() string { return randomID(8) }

// Append implements port.Broker: the outbox runs appendScript for env,
// in queue order with every other publish.
func (r *Broker) Append(channel string, env *wire.Envelope, done func(wire.Position, error)) error {
	if !r.running.Load() || r.host.History.Size == 0 {
		return port.ErrUnavailable
	}
	return r.out.append(channel, env, done)
}

// streamParts are the parts of wire.StreamTemplate that are the same for
// every envelope: an append keeps only the last one (outItem.rest).
var streamParts = wire.StreamTemplate(&wire.Envelope{}).Parts

// appendArgs are appendScript's arguments for it.
func (o *outbox) appendArgs(it *outItem) []any {
	h, k := o.r.host.History, &o.r.keys
	header := ""
	if k.cluster {
		header = wire.RoutedHeader(it.channel)
	}
	return []any{k.wireChannel(it.channel), h.Size, h.TTL.Milliseconds(), newEpoch(), k.origin, strconv.FormatUint(it.seq, 10),
		streamParts[0], streamParts[2], it.rest, k.publishCommand(), header}
}

// appendResult reads appendScript's reply: the position, whether it was a
// duplicate, and how many subscribers its PUBLISH reached (0 for a
// duplicate: it was not published again).
func appendResult(cmd goredis.Cmder) (wire.Position, bool, int64, error) {
	vals, err := cmd.(*goredis.Cmd).Slice()
	if err != nil {
		return wire.Position{}, false, 0, err
	}
	if len(vals) != 4 {
		return wire.Position{}, false, 0, errBadReply
	}
	epoch, _ := vals[0].(string)
	off, _ := vals[1].(int64)
	dup, _ := vals[2].(int64)
	heard, _ := vals[3].(int64)
	return wire.Position{Offset: uint64(off), Epoch: epoch}, dup == 1, heard, nil
}

// Read implements port.Broker: readScript, through readAsync.
func (r *Broker) Read(channel string, q port.StreamQuery, done func(port.StreamRead, error)) {
	r.readAsync(q.Client, func() error {
		res, err := r.read(channel, q)
		if err == nil {
			done(res, nil)
		}
		return err
	}, func() { done(port.StreamRead{}, port.ErrUnavailable) })
}

// readAsync runs read (a stream read or a presence query) on the reader
// connection, in a goroutine of its own, at most maxReads at a time, of
// which at most maxClientReads a client asked for (client: a history or
// presence query, a recovery), so that a flood of queries cannot take the
// rooms' own reads (positions, catch-ups). A client's read that finds its
// share taken waits for a turn, up to clientReadWait and with at most
// maxClientWaits others (the clients of a drained node rejoin their rooms
// with since all at once). When read fails, when no turn comes and while
// Redis is unreachable, unavailable is called instead.
//
// Unreachable means the outbox writer's last round trip failed and no
// pub/sub connection is up. The writer's flag alone lags a recovery: the
// pub/sub connections come back first, and the writer learns it only at
// its next round trip. Refused meanwhile, the catch-up read that a room
// makes right after its resubscription (what was published while its
// subscription was down) would leave the room going on past a gap that
// history still holds.
func (r *Broker) readAsync(client bool, read func() error, unavailable func()) {
	if up, _ := r.health.upCount(); !r.running.Load() || r.closed.Load() || r.out.failing.Load() && up == 0 {
		unavailable()
		return
	}
	refuse := func() {
		r.stats.readsRefused.Add(1)
		unavailable()
	}
	if !client {
		if !r.takeRead(false) {
			refuse()
			return
		}
		go r.runRead(false, read, unavailable)
		return
	}
	select {
	case r.clientReads <- struct{}{}:
		if !r.takeRead(true) {
			refuse()
			return
		}
		go r.runRead(true, read, unavailable)
		return
	default:
	}
	if r.clientWaits.Add(1) > maxClientWaits {
		r.clientWaits.Add(-1)
		refuse()
		return
	}
	go func() {
		t := time.NewTimer(clientReadWait)
		defer t.Stop()
		select {
		case r.clientReads <- struct{}{}:
			r.clientWaits.Add(-1)
		case <-t.C:
			r.clientWaits.Add(-1)
			refuse()
			return
		case <-r.ctx.Done():
			r.clientWaits.Add(-1)
			refuse()
			return
		}
		if !r.takeRead(true) {
			refuse()
			return
		}
		r.runRead(true, read, unavailable)
	}()
}

// takeRead takes a token of reads; a client's, which holds a token of
// clientReads already, gives that back when none is free.
func (r *Broker) takeRead(client bool) bool {
	select {
	case r.reads <- struct{}{}:
		return true
	default:
		if client {
			<-r.clientReads
		}
		return false
	}
}

// runRead runs a read that holds its tokens, and gives them back.
func (r *Broker) runRead(client bool, read func() error, unavailable func()) {
	defer func() {
		<-r.reads
		if client {
			<-r.clientReads
		}
	}()
	if err := read(); err != nil {
		r.stats.readFailures.Add(1)
		unavailable()
	}
}

// evalRead runs a read-only script by EVALSHA (loading it once per Redis
// life), so that the ACL docs/operations.md gives needs no EVAL, with the
// reads' bound on its time.
func (r *Broker) evalRead(script *goredis.Script, keys []string, args ...any) ([]any, error) {
	ctx, cancel := context.WithTimeout(r.ctx, min(r.cfg.CommandTimeout, 2*time.Second))
	defer cancel()
	reader := r.historyReader()
	vals, err := script.EvalSha(ctx, reader, keys, args...).Slice()
	if goredis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = loadScript(ctx, reader, script); err == nil {
			vals, err = script.EvalSha(ctx, reader, keys, args...).Slice()
		}
	}
	return vals, err
}

// maxScriptOffset is the largest offset readScript is given: Lua writes
// numbers of 15 digits or more in exponent form ("0-1e+14" is no stream
// id), so a since past it (past any stream's top: it reads nothing, and
// the recovery answers recovered:false) is read as if it were this one.
const maxScriptOffset = 1e14 - 2

// maxReads bounds the stream reads in flight, maxClientReads those of
// them that clients asked for: the rooms' own always have the rest. Past
// its share, a client's read waits up to clientReadWait for a turn, with
// at most maxClientWaits others.
const (
	maxReads       = 64
	maxClientReads = maxReads / 2
	maxClientWaits = 4096
	clientReadWait = time.Second
)

func (r *Broker) read(channel string, q port.StreamQuery) (port.StreamRead, error) {
	meta, stream := r.keys.streamKeys(channel)
	posOnly := "0"
	if q.PositionOnly {
		posOnly = "1"
	}
	client := "0"
	if q.Client {
		client = "1"
	}
	vals, err := r.evalRead(readScript, []string{meta, stream},
		newEpoch(), min(r.host.History.TTL, port.EmptyStreamTTL).Milliseconds(), min(q.After, maxScriptOffset), q.Limit, posOnly, q.Epoch, q.MaxBytes, client)
	if err != nil {
		return port.StreamRead{}, err
	}
	if len(vals) != 4 {
		return port.StreamRead{}, errBadReply
	}
	epoch, _ := vals[0].(string)
	top, _ := vals[1].(int64)
	entries, _ := vals[2].([]any)
	truncated, _ := vals[3].(int64)
	res := port.StreamRead{Pos: wire.Position{Offset: uint64(top), Epoch: epoch}, Pubs: make([]*port.Inbound, 0, len(entries)), Truncated: truncated == 1}
	for _, e := range entries {
		s, _ := e.(string)
		in, err := port.NewInbound([]byte(s))
		if err != nil || in.Envelope.Pos.Offset == 0 {
			r.stats.invalid.Add(1)
			continue
		}
		res.Pubs = append(res.Pubs, in)
	}
	r.stats.reads.Add(1)
	return res, nil
}

var errBadReply = errors.New("cluster: redis: unexpected reply from a script")

// append queues a room publication for appendScript; port.ErrUnavailable
// when the outbox is full. Any goroutine.
func (o *outbox) append(channel string, env *wire.Envelope, done func(wire.Position, error)) error {
	o.mu.Lock()
	if o.closed || len(o.items)-o.head >= o.limit {
		o.mu.Unlock()
		o.r.stats.refused.Add(1)
		return port.ErrUnavailable
	}
	// Numbered under the lock, as push does: the msg_id makes the script
	// number it once, however often the command is sent.
	o.seq++
	env.MsgID = wire.MsgID{Origin: o.r.keys.origin, Seq: o.seq}
	t := wire.StreamTemplate(env).Parts
	o.add(outItem{kind: outAppend, channel: channel, seq: o.seq, rest: t[4], appended: done})
	o.mu.Unlock()
	o.signal()
	return nil
}
