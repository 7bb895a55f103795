package redis

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// link is one incarnation's Redis connection: a go-redis client (for
// probes) and its PubSub (one dedicated connection), a read loop and a
// command goroutine. Its goroutines report to the connection actor with
// messages; close ends them.
type link struct {
	r      *Broker
	self   port.Ref
	probe  string
	client *goredis.Client
	ps     *goredis.PubSub

	// Guarded by mu: what the command goroutine has still to send, and
	// what it has sent that Redis has not answered yet (see next and
	// confirms).
	mu     sync.Mutex
	subs   channelQueue // channels to SUBSCRIBE; sent before any unsubscription
	unsubs channelQueue // channels to UNSUBSCRIBE
	// subsOnWire counts, per channel, the SUBSCRIBEs written whose reply
	// has not been read; staleSubs, how many of those an UNSUBSCRIBE written
	// after them has made stale: their replies confirm nothing.
	subsOnWire map[string]int
	staleSubs  map[string]int

	// unsubsOnWire counts the UNSUBSCRIBE replies still owed: added by the
	// command goroutine before it writes, taken by the read loop.
	unsubsOnWire atomic.Int64

	wake chan struct{}
	quit chan struct{}
	once sync.Once

	lastRead atomic.Int64 // unix ns of the last read; written by the read loop, read by the actor
	broken   atomic.Bool  // a dial or a connection of this link failed; set by the dialer and linkConn, read by the dialer

	// Behind Sentinel (link_sentinel.go): the sentinels, and the server
	// the link's pub/sub connection dialled (its first dial), set by the
	// dialer and read by checkPrimary.
	sentinel *sentinelWatch
	addr     atomic.Pointer[string]
}

var (
	errLinkBroken = errors.New("cluster: redis: link broken; a new one replaces it")
	// errSlotMoved: Redis unsubscribed a sharded channel of the link by
	// itself, which it does when the channel's slot leaves the shard (a
	// migration, a failover): the next link dials the slot's new primary.
	errSlotMoved = errors.New("cluster: redis: sharded channel unsubscribed by the server (its slot moved)")
	// errNotPrimary: the node a partition's link dialled is a replica now.
	errNotPrimary = errors.New("cluster: redis: the slot's node is not a primary (yet)")
)

// linkConn marks its link broken when a read or write fails for any reason
// other than a deadline.
type linkConn struct {
	net.Conn
	broken *atomic.Bool
}

func (c *linkConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.check(err)
	return n, err
}

func (c *linkConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.check(err)
	return n, err
}

func (c *linkConn) check(err error) {
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		c.broken.Store(true)
	}
}

// maxChannelsPerCommand bounds one SUBSCRIBE's or UNSUBSCRIBE's arguments.
// It is also the most UNSUBSCRIBE replies a link lets Redis owe it before
// it sends the next batch: a subscription queued behind a mass exit then
// waits for at most two batches of replies, not for the whole exit.
const maxChannelsPerCommand = 1000

func openLink(r *Broker, self port.Ref, probe string) *link {
	l := &link{r: r, self: self, probe: probe, wake: make(chan struct{}, 1), quit: make(chan struct{}),
		subsOnWire: make(map[string]int), staleSubs: make(map[string]int)}
	if r.cfg.SentinelMaster != "" {
		l.sentinel = newSentinelWatch(r)
	}
	opts := r.clientOptions("sub")
	dial := goredis.NewDialer(opts)
	opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		// go-redis reconnects a broken PubSub by itself, inside Receive,
		// and re-subscribes what it remembers, before it reports the
		// error. That zombie subscription would swallow messages until
		// this link is closed; a link dials only until it breaks.
		if l.broken.Load() {
			return nil, errLinkBroken
		}
		if r.cfg.SentinelMaster != "" || r.keys.cluster {
			var primary string
			var err error
			if r.keys.cluster {
				primary, err = r.slotPrimary(ctx, keySlot(probe))
			} else {
				primary, err = l.sentinel.primary(ctx)
			}
			if err != nil {
				l.broken.Store(true)
				return nil, err
			}
			addr = primary
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			l.broken.Store(true) // one attempt per link: the next one is a new link
			return nil, err
		}
		// The PubSub dials first (its read loop starts at once; probes
		// are sent only once it is up): the first address is the one the
		// subscriptions are on, and behind Sentinel the reads follow it
		// from now on, ahead of the first confirmation (sentinelReads).
		if l.addr.CompareAndSwap(nil, &addr) && l.sentinel != nil {
			r.pinned.follow(r, addr)
		}
		return &linkConn{Conn: c, broken: &l.broken}, nil
	}
	if r.keys.cluster {
		// CLUSTER SLOTS may still name a demoted primary, and a replica
		// takes SSUBSCRIBE (it gets the messages late, by replication, and
		// nobody counts them): a link subscribes on a primary only.
		opts.OnConnect = func(ctx context.Context, cn *goredis.Conn) error {
			info, err := cn.Info(ctx, "replication").Result()
			if err == nil && !strings.Contains(info, "role:master") {
				err = errNotPrimary
			}
			if err != nil {
				l.broken.Store(true)
			}
			return err
		}
	}
	l.client = goredis.NewClient(opts)
	l.ps = l.client.Subscribe(r.ctx)
	l.lastRead.Store(time.Now().UnixNano())
	r.goTracked(l.read)
	r.goTracked(l.write)
	return l
}

// enqueue asks the command goroutine to (un)subscribe channels. Called by
// the connection actor; never blocks. A channel's latest request cancels
// an opposite one not sent yet: a room that comes back while its
// unsubscription waits keeps its channel, and is confirmed by a SUBSCRIBE
// that no unsubscription is sent ahead of.
func (l *link) enqueue(subscribe bool, channels ...string) {
	if len(channels) == 0 {
		return
	}
	l.mu.Lock()
	add, cancel := &l.subs, &l.unsubs
	if !subscribe {
		add, cancel = cancel, add
	}
	for _, ch := range channels {
		cancel.remove(ch)
		add.add(ch)
	}
	l.mu.Unlock()
	l.poke()
}

// poke wakes the command goroutine.
func (l *link) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// close ends the link's goroutines: the read loop returns when the PubSub's
// connection closes, the command goroutine on quit.
func (l *link) close() {
	l.once.Do(func() {
		close(l.quit)
		_ = l.ps.Close()
		_ = l.client.Close()
		if l.sentinel != nil {
			l.sentinel.close()
		}
	})
}

func (l *link) closing() bool {
	select {
	case <-l.quit:
		return true
	default:
		return false
	}
}

func (l *link) failed(err error) {
	if !l.closing() {
		l.r.host.Actors.Send(l.self, &linkFailed{link: l, err: err})
	}
}

// read is the link's read loop. It never waits on anything but the socket:
// messages are handed to the connection actor within the inbound byte
// budget, and dropped (counted) beyond it.
func (l *link) read() {
	r, host := l.r, l.r.host.Actors
	budget := int64(r.cfg.InboundBytes)
	for {
		msg, err := l.ps.Receive(r.ctx)
		if err != nil {
			l.failed(err)
			return
		}
		l.lastRead.Store(time.Now().UnixNano())
		switch m := msg.(type) {
		case *goredis.Message:
			if m.Channel == l.probe {
				host.Send(l.self, &probeEcho{link: l, token: m.Payload})
				continue
			}
			r.stats.received.Add(1)
			channel, payload := m.Channel, m.Payload
			if r.keys.cluster {
				if route, env, ok := wire.SplitRouted(payload); ok {
					channel, payload = route, env
				} else {
					channel = r.keys.brokerChannel(channel)
				}
			}
			if wire.EncodedFrom(payload, r.keys.node) {
				r.stats.ownSkipped.Add(1)
				continue
			}
			n := int64(len(payload))
			if r.inflight.Add(n) > budget {
				r.inflight.Add(-n)
				r.stats.dropped.Add(1)
				continue
			}
			host.Send(l.self, &delivery{channel: channel, payload: payload})
		case *goredis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				if l.confirms(m.Channel) {
					host.Send(l.self, &subscribed{link: l, channel: m.Channel})
				}
			case "unsubscribe", "sunsubscribe":
				n := l.unsubsOnWire.Add(-1)
				if m.Kind == "sunsubscribe" && (n < 0 || m.Channel == l.probe) {
					l.failed(errSlotMoved)
					return
				}
				if n == maxChannelsPerCommand-1 {
					l.poke() // room for the next batch
				}
			}
		}
	}
}

// confirms accounts for a SUBSCRIBE reply read on channel and reports
// whether it confirms the channel: it does unless an UNSUBSCRIBE of the
// channel was written after that SUBSCRIBE (a room that stopped and came
// back within a round trip waits for the reply to its own SUBSCRIBE).
func (l *link) confirms(channel string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.subsOnWire[channel]; n > 1 {
		l.subsOnWire[channel] = n - 1
	} else {
		delete(l.subsOnWire, channel)
	}
	switch n := l.staleSubs[channel]; {
	case n == 0:
		return true
	case n == 1:
		delete(l.staleSubs, channel)
	default:
		l.staleSubs[channel] = n - 1
	}
	return false
}

// write is the link's command goroutine: it sends the (un)subscriptions the
// actor queued (see next) and reports a failure.
func (l *link) write() {
	for {
		select {
		case <-l.quit:
			return
		case <-l.wake:
		}
		for {
			subscribe, chans := l.next()
			if len(chans) == 0 {
				break
			}
			ctx, cancel := context.WithTimeout(l.r.ctx, l.r.cfg.CommandTimeout)
			var err error
			switch {
			case l.r.keys.cluster && subscribe:
				err = l.ps.SSubscribe(ctx, chans...)
			case l.r.keys.cluster:
				err = l.ps.SUnsubscribe(ctx, chans...)
			case subscribe:
				err = l.ps.Subscribe(ctx, chans...)
			default:
				err = l.ps.Unsubscribe(ctx, chans...)
			}
			cancel()
			if err != nil {
				l.failed(err)
				return
			}
		}
	}
}

// next takes the channels of the next command, and accounts for them as
// written: subscriptions first, whatever number of unsubscriptions waits;
// unsubscriptions only while Redis owes fewer than maxChannelsPerCommand
// replies to earlier ones (the read loop pokes when it has read enough).
// Without that bound, a mass exit put 100,000 UNSUBSCRIBE replies on the
// wire ahead of a new room's SUBSCRIBE.
func (l *link) next() (subscribe bool, chans []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if chans = l.subs.take(maxChannelsPerCommand); len(chans) > 0 {
		for _, ch := range chans {
			l.subsOnWire[ch]++
		}
		return true, chans
	}
	if l.unsubsOnWire.Load() >= maxChannelsPerCommand {
		return false, nil
	}
	chans = l.unsubs.take(maxChannelsPerCommand)
	for _, ch := range chans {
		if n := l.subsOnWire[ch]; n > 0 {
			l.staleSubs[ch] = n
		}
	}
	l.unsubsOnWire.Add(int64(len(chans)))
	return false, chans
}

// channelQueue is a set of channels that keeps the order they were added
// in. Removing is O(1): a removed channel stays in order until take skips
// it. Its owner guards it.
type channelQueue struct {
	order []string
	set   map[string]struct{}
}

func (q *channelQueue) add(ch string) {
	if _, ok := q.set[ch]; ok {
		return
	}
	if q.set == nil {
		q.set = make(map[string]struct{})
	}
	q.set[ch] = struct{}{}
	q.order = append(q.order, ch)
}

func (q *channelQueue) remove(ch string) { delete(q.set, ch) }

// take removes and returns up to n channels, oldest first.
func (q *channelQueue) take(n int) []string {
	if len(q.set) == 0 {
		q.order = nil
		return nil
	}
	out := make([]string, 0, min(n, len(q.set)))
	i := 0
	for ; i < len(q.order) && len(out) < n; i++ {
		ch := q.order[i]
		if _, ok := q.set[ch]; ok {
			delete(q.set, ch)
			out = append(out, ch)
		}
	}
	q.order = q.order[i:]
	if len(q.set) == 0 {
		q.order = nil
		q.set = nil // a map does not shrink; the next burst makes a fresh one
	}
	return out
}

// publishProbe publishes token on the probe channel from the link's regular
// connection. An error needs no report: the missing echo is the report.
func (l *link) publishProbe(token string) {
	l.r.goTracked(func() {
		ctx, cancel := context.WithTimeout(l.r.ctx, l.r.cfg.ProbeTimeout)
		defer cancel()
		if l.r.keys.cluster {
			_ = l.client.SPublish(ctx, l.probe, token).Err()
		} else {
			_ = l.client.Publish(ctx, l.probe, token).Err()
		}
	})
}
