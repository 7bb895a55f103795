package cluster

import (
	"container/list"
	"crypto/rand"
	"time"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// DefaultHistoryBytes bounds the memory the in-process fabric gives to the
// history of all rooms together, whatever clients publish: past it, the
// streams published to least recently are forgotten first (their members
// then recover with recovered:false, never a silent gap).
const DefaultHistoryBytes = 256 << 20

// streamOverhead is what a stream costs beside its publications' bytes
// and its channel's name (measured: about 400 bytes for an empty one).
const streamOverhead = 512

// streams is the in-process fabric's room history: one stream per room
// channel, with its epoch, its top offset and its newest publications. It
// outlives the rooms' actors (a room with no member keeps its history
// until the TTL), and it belongs to the fabric actor: only its Receive
// calls these methods.
//
// A stream nobody published to (a room's position read made it: its
// joiners are told its epoch) is kept apart, in empty, for at most
// port.EmptyStreamTTL, and evicted before any stream with publications: a
// client's read makes none (a history query of a made-up room name
// answers a fresh epoch at 0), so queries and joins of made-up names can
// neither grow the history past its bound nor push real rooms' history
// out.
type streams struct {
	cfg      port.HistoryConfig
	maxBytes int
	bytes    int
	byName   map[string]*list.Element // channel -> *stream in lru or empty
	lru      *list.List               // published to, least recently first
	empty    *list.List               // never published to, oldest first
	now      func() time.Time
}

type stream struct {
	channel string
	epoch   string
	top     uint64
	last    time.Time       // the last publication (or creation)
	ring    []*port.Inbound // the newest publications; ring[(start+i)%cap]
	start   int
	n       int
	bytes   int
	list    *list.List // lru or empty
}

// cost is what st is counted for in streams.bytes.
func (st *stream) cost() int { return st.bytes + streamOverhead + len(st.channel) }

func newStreams(cfg port.HistoryConfig, maxBytes int) *streams {
	if maxBytes <= 0 {
		maxBytes = DefaultHistoryBytes
	}
	return &streams{cfg: cfg, maxBytes: maxBytes, byName: map[string]*list.Element{}, lru: list.New(), empty: list.New(), now: time.Now}
}

// ttl is how long st is kept after its last publication (or creation).
func (s *streams) ttl(st *stream) time.Duration {
	if st.list == s.empty {
		return min(s.cfg.TTL, port.EmptyStreamTTL)
	}
	return s.cfg.TTL
}

// live returns channel's stream if it has one whose TTL has not passed.
func (s *streams) live(channel string) *stream {
	el, ok := s.byName[channel]
	if !ok {
		return nil
	}
	st := el.Value.(*stream)
	if s.now().Sub(st.last) <= s.ttl(st) {
		return st
	}
	s.drop(el)
	return nil
}

// get returns channel's live stream, creating an empty one (a new epoch at
// offset 0) when it has none.
func (s *streams) get(channel string) *stream {
	if st := s.live(channel); st != nil {
		return st
	}
	s.evict() // before: the stream returned is kept
	st := &stream{channel: channel, epoch: newEpoch(), last: s.now(), list: s.empty}
	s.byName[channel] = s.empty.PushBack(st)
	s.bytes += st.cost()
	return st
}

// append numbers env in channel's stream, keeps it and returns what every
// subscriber gets.
func (s *streams) append(channel string, env *wire.Envelope) *port.Inbound {
	st := s.live(channel)
	switch {
	case st == nil:
		st = &stream{channel: channel, epoch: newEpoch(), list: s.lru}
		s.byName[channel] = s.lru.PushBack(st)
		s.bytes += st.cost()
	case st.list == s.empty:
		// Its first publication: kept with the published ones from now on.
		s.empty.Remove(s.byName[channel])
		st.list = s.lru
		s.byName[channel] = s.lru.PushBack(st)
	}
	if st.ring == nil {
		st.ring = make([]*port.Inbound, 0, min(s.cfg.Size, 16))
	}
	st.top++
	st.last = s.now()
	env.Pos = wire.Position{Offset: st.top, Epoch: st.epoch}
	in := port.InboundOf(env)
	size := len(in.Event.JSON) + len(env.Payload) + 64
	if len(st.ring) < s.cfg.Size {
		st.ring = append(st.ring, in)
		st.n++
	} else {
		old := st.ring[st.start]
		st.bytes -= len(old.Event.JSON) + len(old.Envelope.Payload) + 64
		s.bytes -= len(old.Event.JSON) + len(old.Envelope.Payload) + 64
		st.ring[st.start] = in
		st.start = (st.start + 1) % len(st.ring)
	}
	st.bytes += size
	s.bytes += size
	if el, ok := s.byName[channel]; ok {
		s.lru.MoveToBack(el)
	}
	s.evict()
	return in
}

// read answers q on channel's stream.
func (s *streams) read(channel string, q port.StreamQuery) port.StreamRead {
	var st *stream
	if q.Client {
		if st = s.live(channel); st == nil {
			return port.StreamRead{Pos: wire.Position{Epoch: newEpoch()}}
		}
	} else {
		st = s.get(channel)
	}
	res := port.StreamRead{Pos: wire.Position{Offset: st.top, Epoch: st.epoch}}
	if q.PositionOnly {
		return res
	}
	first := st.top - uint64(st.n) + 1 // the oldest kept offset
	after := q.After
	if q.Epoch != st.epoch {
		after = 0
	}
	from := max(after+1, first)
	if q.Limit > 0 && st.top >= from && st.top-from+1 > uint64(q.Limit) {
		from = st.top - uint64(q.Limit) + 1
	}
	at := func(off uint64) *port.Inbound { return st.ring[(st.start+int(off-first))%len(st.ring)] }
	if q.MaxBytes <= 0 {
		for off := from; off <= st.top; off++ {
			res.Pubs = append(res.Pubs, at(off))
		}
		return res
	}
	// Bounded: a Limit query keeps the newest up to the one that passes
	// MaxBytes; any other stops at it (see port.StreamQuery).
	size := 0
	if q.Limit > 0 {
		lo := st.top + 1
		for lo > from && size <= q.MaxBytes {
			lo--
			size += len(at(lo).Event.JSON)
		}
		for off := lo; off <= st.top; off++ {
			res.Pubs = append(res.Pubs, at(off))
		}
		return res
	}
	for off := from; off <= st.top; off++ {
		in := at(off)
		if size += len(in.Event.JSON); size > q.MaxBytes {
			res.Pubs, res.Truncated = nil, true
			break
		}
		res.Pubs = append(res.Pubs, in)
	}
	return res
}

// sweep forgets the streams whose TTL has passed. Both lists are in the
// order of their streams' last publication (or creation): it stops at the
// first live one of each.
func (s *streams) sweep() {
	now := s.now()
	for _, l := range []*list.List{s.empty, s.lru} {
		for el := l.Front(); el != nil; el = l.Front() {
			st := el.Value.(*stream)
			if now.Sub(st.last) <= s.ttl(st) {
				break
			}
			s.drop(el)
		}
	}
}

// evict forgets streams while the history is over its memory bound: the
// empty ones first, oldest first, then the least recently published,
// never the one published to last.
func (s *streams) evict() {
	for s.bytes > s.maxBytes && s.empty.Len() > 0 {
		s.drop(s.empty.Front())
	}
	for s.bytes > s.maxBytes && s.lru.Len() > 1 {
		s.drop(s.lru.Front())
	}
}

func (s *streams) drop(el *list.Element) {
	st := el.Value.(*stream)
	s.bytes -= st.cost()
	delete(s.byName, st.channel)
	st.list.Remove(el)
}

// newEpoch names a new life of a stream: 8 characters of [0-9A-Za-z]
// from crypto/rand, so that a restarted node never reuses one.
func newEpoch() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b [8]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}
