package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// client is one regular user of the cluster under test. Its goroutine keeps
// it connected (to its home node when that node is up, else to the next one
// up), in its rooms, and sending numbered messages while traffic is on. The
// read side records everything in the ledger.
type client struct {
	s     *suite
	idx   int
	user  string
	home  int
	rooms []string
	rng   *rand.Rand // used by the client's goroutine only

	mu       sync.Mutex // guards the fields below
	ws       *wsclient.Client
	cur      *conn
	ready    bool // connected and in every room
	moveHome bool // the controller wants it back on its home node
	seq      int
	// A fault that cuts the client's socket may ask it to stay away for
	// holdOff and then to reconnect anywhere but node avoid (-1: none).
	holdOff time.Duration
	avoid   int
}

// session is what the read goroutine of one connection knows; only that
// goroutine touches cn after the welcome, and held. since is fixed before
// the dial.
type session struct {
	c       *client
	node    *nodeProc
	cn      *conn
	welcome chan *conn
	joins   chan string // join acks ("j.…") and failures ("!j.…")
	since   map[string]position
	held    map[string][]heldChat // room -> chats before its join ack
}

func newClient(s *suite, idx int) *client {
	c := &client{s: s, idx: idx, user: fmt.Sprintf("c%02d", idx), home: idx % len(s.nodes), avoid: -1, rng: rand.New(rand.NewPCG(s.cfg.Seed, uint64(idx)))}
	// Each client is in RoomsPerClient consecutive rooms, starting from
	// its group's: the clients of a group (one per node, idx/nodes) share
	// their rooms, so every room has members on every node and room
	// messages cross nodes. (Rooms counted from idx itself, by steps of the
	// node count, put each room's members on one node when the room count
	// is a multiple of it: 6 rooms on 3 nodes did.)
	for k := 0; k < s.cfg.RoomsPerClient; k++ {
		c.rooms = append(c.rooms, roomName((idx/len(s.nodes)+k)%s.cfg.Rooms))
	}
	return c
}

func roomName(i int) string { return fmt.Sprintf("r%d", i) }

// state returns the client's connection, its ledger record and readiness.
func (c *client) state() (*wsclient.Client, *conn, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ws, c.cur, c.ready
}

func (c *client) inRoom(room string) bool {
	for _, r := range c.rooms {
		if r == room {
			return true
		}
	}
	return false
}

// run keeps the client connected until ctx ends. Every wait is bounded.
func (c *client) run(ctx context.Context) {
	defer func() { c.s.ledger.clientGone(c.idx, time.Now()) }()
	for ctx.Err() == nil {
		c.mu.Lock()
		hold, avoid := c.holdOff, c.avoid
		c.holdOff, c.avoid = 0, -1
		c.mu.Unlock()
		if hold > 0 {
			sleepCtx(ctx, hold)
		}
		n := c.s.pickNode(c.home, avoid)
		if n == nil {
			sleepCtx(ctx, 50*time.Millisecond)
			continue
		}
		if err := c.connect(ctx, n); err != nil {
			sleepCtx(ctx, 50*time.Millisecond+time.Duration(c.rng.Int64N(int64(100*time.Millisecond))))
			continue
		}
		c.serve(ctx)
	}
}

func (c *client) connect(ctx context.Context, n *nodeProc) error {
	ss := &session{c: c, node: n, welcome: make(chan *conn, 1), joins: make(chan string, 2*len(c.rooms)),
		since: map[string]position{}, held: map[string][]heldChat{}}
	// Rejoin every room from the last position received there: the node
	// sends what was missed (or says recovered:false).
	for _, room := range c.rooms {
		if p, ok := c.s.ledger.since(c.idx, room); ok {
			ss.since[room] = p
		}
		ss.held[room] = nil
	}
	ws, err := wsclient.Dial(n.wsURL(c.user), wsclient.Options{Timeout: 2 * time.Second, OnEvent: ss.onEvent})
	if err != nil {
		return err
	}
	var cn *conn
	select {
	case cn = <-ss.welcome:
	case <-ws.Closed():
		return fmt.Errorf("closed before welcome")
	case <-time.After(3 * time.Second):
		ws.Abort()
		return fmt.Errorf("no welcome")
	case <-ctx.Done():
		ws.Abort()
		return ctx.Err()
	}
	c.mu.Lock()
	c.ws, c.cur = ws, cn
	c.mu.Unlock()
	for _, room := range c.rooms {
		join := map[string]any{"type": "join_room", "room": room, "id": "j." + cn.id + "." + room}
		if p, ok := ss.since[room]; ok {
			join["since"] = map[string]any{"offset": p.offset, "epoch": p.epoch}
		}
		if err := ws.SendJSON(join); err != nil {
			break
		}
	}
	for left := len(c.rooms); left > 0; left-- {
		select {
		case id := <-ss.joins:
			if strings.HasPrefix(id, "!") {
				c.drop(ws, cn)
				return fmt.Errorf("join refused: %s", id)
			}
		case <-ws.Closed():
			c.drop(ws, cn)
			return fmt.Errorf("closed while joining")
		case <-time.After(5 * time.Second):
			c.drop(ws, cn)
			return fmt.Errorf("join not acknowledged")
		}
	}
	c.mu.Lock()
	c.ready = true
	c.mu.Unlock()
	return nil
}

// drop ends a connection the client gave up on.
func (c *client) drop(ws *wsclient.Client, cn *conn) {
	c.s.ledger.markDead(cn, time.Now())
	ws.Abort()
	c.closed(ws, cn)
}

func (c *client) closed(ws *wsclient.Client, cn *conn) {
	code, _ := ws.CloseCode()
	c.s.ledger.closed(cn, time.Now(), code)
	c.mu.Lock()
	if c.cur == cn {
		c.ready = false
		c.ws = nil
	}
	c.mu.Unlock()
}

// serve sends traffic until the connection ends, ctx ends, or the
// controller asks the client to move home.
func (c *client) serve(ctx context.Context) {
	ws, cn, _ := c.state()
	for {
		wait := c.s.cfg.SendEvery/2 + time.Duration(c.rng.Int64N(int64(c.s.cfg.SendEvery)))
		select {
		case <-ws.Closed():
			c.closed(ws, cn)
			return
		case <-ctx.Done():
			c.s.ledger.markDead(cn, time.Now())
			_ = ws.Close()
			c.closed(ws, cn)
			return
		case <-time.After(wait):
		}
		c.mu.Lock()
		move := c.moveHome
		c.moveHome = false
		c.mu.Unlock()
		if move && cn.node != c.home {
			c.s.ledger.markDead(cn, time.Now())
			_ = ws.Close()
			c.closed(ws, cn)
			return
		}
		if c.s.traffic.Load() {
			c.sendRandom()
		}
	}
}

// sendRandom sends one numbered message: mostly room messages, some direct
// messages and some broadcasts (which reach every client).
func (c *client) sendRandom() {
	switch p := c.rng.IntN(100); {
	case p < 60:
		c.send(kindRoom, c.rooms[c.rng.IntN(len(c.rooms))], -1, 16+c.rng.IntN(200))
	case p < 85:
		t := c.rng.IntN(len(c.s.clients) - 1)
		if t >= c.idx {
			t++
		}
		c.send(kindDirect, "", t, 16+c.rng.IntN(200))
	default:
		c.send(kindChat, "", -1, 16+c.rng.IntN(100))
	}
}

// send writes one numbered message of about size bytes. It is registered in
// the ledger first, so its ack and copies always find it. It reports whether
// the frame was written.
func (c *client) send(k kind, room string, target, size int) bool {
	c.mu.Lock()
	ws, cn, ready := c.ws, c.cur, c.ready
	if !ready || ws == nil {
		c.mu.Unlock()
		return false
	}
	c.seq++
	seq := c.seq
	c.mu.Unlock()
	m := &message{id: c.user + "." + strconv.Itoa(seq), seq: seq, kind: k, room: room, target: target, from: cn, sent: time.Now()}
	content := m.id + "|" + strings.Repeat("x", max(size-len(m.id)-1, 0))
	var frame map[string]any
	switch k {
	case kindRoom:
		frame = map[string]any{"type": "room_message", "room": room, "content": content, "id": m.id}
	case kindChat:
		frame = map[string]any{"type": "chat", "content": content, "id": m.id}
	case kindDirect:
		frame = map[string]any{"type": "direct_message", "target_user": c.s.clients[target].user, "content": content, "id": m.id}
	}
	c.s.ledger.sent(m)
	if err := ws.SendJSON(frame); err != nil {
		c.s.ledger.unsent(m)
		return false
	}
	return true
}

// onEvent runs on the connection's read goroutine.
func (ss *session) onEvent(ev *wsclient.Event) {
	l := ss.c.s.ledger
	switch ev.Event {
	case "welcome":
		cn := &conn{
			id:     fmt.Sprintf("%s#%d", ss.c.user, ss.c.s.connSeq.Add(1)),
			client: ss.c.idx, user: ss.c.user, node: ss.node.idx, nodeID: ev.Node, opened: ev.At,
		}
		l.addConn(cn)
		ss.cn = cn
		ss.welcome <- cn
	case "ack", "error":
		var id string
		if json.Unmarshal(ev.ID, &id) != nil || id == "" {
			return
		}
		if strings.HasPrefix(id, "j.") {
			if ev.Event == "error" {
				id = "!" + id
			} else if ss.cn != nil {
				ss.joinAcked(ev, id[strings.LastIndexByte(id, '.')+1:])
			}
			select {
			case ss.joins <- id:
			default:
			}
			return
		}
		l.reply(id, ev.Event == "ack", ev.Code)
	case "chat", "direct_message":
		if ss.cn == nil {
			return
		}
		id, _, ok := strings.Cut(ev.Content, "|")
		if !ok {
			return
		}
		if ev.Event != "chat" || ev.Room == "" {
			l.delivered(id, ss.cn)
			return
		}
		p := position{ev.Offset, ev.Epoch}
		if held, waiting := ss.held[ev.Room]; waiting {
			ss.held[ev.Room] = append(held, heldChat{id: id, pos: p})
			return
		}
		l.roomChat(ss.cn, ev.Room, id, p)
	case "user_disconnected", "user_left":
		if ss.cn != nil && strings.HasPrefix(ev.UserID, specialPrefix) {
			ss.c.s.presence.record(ev.UserID, ev.Event, ss.cn, ev.At)
		}
	}
}

// joinAcked records the join ack of room with what came before it. Read
// goroutine.
func (ss *session) joinAcked(ev *wsclient.Event, room string) {
	held, waiting := ss.held[room]
	if !waiting {
		return // a retry's second ack
	}
	delete(ss.held, room)
	var since *position
	if p, ok := ss.since[room]; ok {
		since = &p
	}
	ss.c.s.ledger.roomJoined(ss.cn, room, since, position{ev.Offset, ev.Epoch}, ev.Epoch != "", ev.Recovered, ev.At, held)
}

// presenceLog records when regular clients learned that a special client
// (slow reader, vanished peer) was gone.
type presenceLog struct {
	mu   sync.Mutex
	seen map[string][]presenceSeen // user -> sightings
}

type presenceSeen struct {
	event string
	by    *conn
	at    time.Time
}

func (p *presenceLog) record(user, event string, by *conn, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[string][]presenceSeen{}
	}
	p.seen[user] = append(p.seen[user], presenceSeen{event: event, by: by, at: at})
}

// firstPerNode returns, for event about user, the earliest sighting by a
// client on each node index.
func (p *presenceLog) firstPerNode(user, event string) map[int]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int]time.Time{}
	for _, s := range p.seen[user] {
		if s.event != event {
			continue
		}
		if t, ok := out[s.by.node]; !ok || s.at.Before(t) {
			out[s.by.node] = s.at
		}
	}
	return out
}

func (p *presenceLog) forget(user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.seen, user)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
