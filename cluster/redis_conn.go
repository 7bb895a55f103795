package cluster

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors"
)

// pubsubConn is the actor of one Redis pub/sub connection shared by many
// channels. It owns the connection (a link: a go-redis PubSub with its read
// loop and its command goroutine), the routing of each channel's messages to
// that channel's subscription actor, and the connection's liveness probe.
// Its fields are touched only by Receive; the link's goroutines talk to it
// with messages.
//
// Life of one incarnation: Started opens a link and asks the bus which
// channels it carries now (the source of truth); the snapshot is subscribed
// in one SUBSCRIBE; once Redis has confirmed every channel, the connection
// is up. Any failure of the link (read or write error, a probe or the
// subscription not confirmed in time) makes it panic with a linkFault, and
// the bus restarts it with backoff: a fresh link, a fresh snapshot.
type pubsubConn struct {
	r     *Redis
	index int
	probe string // this connection's probe channel
	self  *actor.PID
	bus   *actor.PID

	link   *link
	routes map[string]*actor.PID // channel -> subscription actor
	ready  bool                  // the snapshot has arrived; routes is current
	stash  []*delivery           // read before the snapshot arrived

	unconfirmed map[string]struct{} // snapshot channels Redis has not confirmed yet
	up          bool
	startedAt   time.Time

	probeToken string // outstanding probe, "" if none
	probeSent  time.Time
	probeSeq   uint64

	ticker *time.Timer // fires the next connTick
}

// Messages from a link's goroutines. Those that concern the connection's
// state carry the link, so that a late report from a replaced link is
// ignored; deliveries do not: what Redis delivered is routed whichever link
// read it.

// read loop -> connection: Redis confirmed a subscription.
type subscribed struct {
	link    *link
	channel string
}

// read loop -> connection: a probe came back.
type probeEcho struct {
	link  *link
	token string
}

// link goroutines -> connection: the link is broken.
type linkFailed struct {
	link *link
	err  error
}

// timer -> connection: check the probe and the subscription deadline.
type connTick struct{ link *link }

func (*connTick) IgnoreDeadLetterLogging() {}

var (
	errProbeTimeout     = errors.New("cluster: redis: probe not answered in time")
	errSubscribeTimeout = errors.New("cluster: redis: subscription not confirmed in time")
)

func newPubSubConn(r *Redis, index int) *pubsubConn {
	return &pubsubConn{r: r, index: index, probe: r.keys.probeChannel(index)}
}

func (c *pubsubConn) Receive(ctx actor.Context) {
	defer logPanics(c.r.log, "redis-conn")
	// A failed incarnation lets go of its connection at once, not when it
	// is restarted after the backoff: meanwhile that connection could
	// subscribe (its command goroutine may still dial) and be counted by
	// Redis and the other nodes as this node listening, while nothing
	// routes what it reads.
	defer func() {
		if r := recover(); r != nil {
			c.shutdown()
			panic(r)
		}
	}()
	switch m := ctx.Message().(type) {
	case *delivery:
		if !c.ready {
			c.stash = append(c.stash, m)
			return
		}
		c.route(ctx, m)
	case *subscribed:
		if m.link == c.link {
			delete(c.unconfirmed, m.channel)
			c.checkUp()
			if sub := c.routes[m.channel]; sub != nil {
				ctx.Send(sub, confirmed{})
			}
		}
	case *probeEcho:
		if m.link == c.link && m.token == c.probeToken {
			c.r.stats.probeRTT.Store(int64(time.Since(c.probeSent)))
			c.probeToken = ""
		}
	case *linkFailed:
		if m.link == c.link {
			c.fail(m.err)
		}
	case *connTick:
		if m.link == c.link {
			c.tick()
			c.scheduleTick()
		}
	case *snapshot:
		c.applySnapshot(ctx, m)
	case *route:
		if c.ready {
			c.routes[m.channel] = m.sub
			c.link.enqueue(true, m.channel)
		}
	case *unroute:
		if c.ready && m.sub.Equal(c.routes[m.channel]) {
			delete(c.routes, m.channel)
			c.link.enqueue(false, m.channel)
		}
		// Everything routed to the subscription so far is ahead of the
		// pill in its mailbox, and nothing more will be.
		ctx.Poison(m.sub)
	case probeNow:
		if c.up && c.probeToken == "" {
			c.sendProbe()
		}
	case *actors.Crash:
		panic(crashError(m.Reason))
	case *actor.Started:
		c.start(ctx)
	case *actor.Restarting:
		c.shutdown()
	case *actor.Stopping:
		c.shutdown()
	case *actor.Stopped:
		c.shutdown()
	}
}

func (c *pubsubConn) start(ctx actor.Context) {
	c.self, c.bus = ctx.Self(), ctx.Parent()
	c.startedAt = time.Now()
	// What an earlier incarnation read but could not route yet comes
	// first, ahead of anything still in the mailbox.
	c.stash, c.r.carry[c.index] = c.r.carry[c.index], nil
	c.link = openLink(c.r, c.self, c.probe)
	ctx.Request(c.bus, &snapshotQuery{index: c.index})
	c.scheduleTick()
}

// scheduleTick arranges the next connTick, a quarter of the shorter of
// ProbeIdle and ProbeTimeout from now.
func (c *pubsubConn) scheduleTick() {
	every := max(min(c.r.cfg.ProbeIdle, c.r.cfg.ProbeTimeout)/4, 10*time.Millisecond)
	root, self, msg := c.r.host.Root, c.self, &connTick{link: c.link}
	c.ticker = time.AfterFunc(every, func() { root.Send(self, msg) })
}

func (c *pubsubConn) applySnapshot(ctx actor.Context, m *snapshot) {
	c.routes, c.ready = m.routes, true
	c.unconfirmed = make(map[string]struct{}, len(m.routes)+1)
	c.unconfirmed[c.probe] = struct{}{}
	chans := make([]string, 0, len(m.routes)+1)
	chans = append(chans, c.probe)
	for ch := range m.routes {
		c.unconfirmed[ch] = struct{}{}
		chans = append(chans, ch)
	}
	c.link.enqueue(true, chans...)
	stash := c.stash
	c.stash = nil
	for _, d := range stash {
		c.route(ctx, d)
	}
}

func (c *pubsubConn) route(ctx actor.Context, d *delivery) {
	sub := c.routes[d.channel]
	if sub == nil {
		c.r.inflight.Add(-int64(len(d.payload)))
		c.r.stats.unrouted.Add(1)
		return
	}
	ctx.Send(sub, d)
}

// checkUp marks the connection up once Redis has confirmed every channel
// of the snapshot (and the probe channel).
func (c *pubsubConn) checkUp() {
	if c.up || !c.ready || len(c.unconfirmed) > 0 {
		return
	}
	c.up = true
	recovered, outage := c.r.health.set(c.index, true)
	if recovered {
		c.r.stats.recoveryNs.Store(int64(outage))
		c.r.log.Info("redis subscriptions up", "conn", c.index, "channels", len(c.routes), "after", outage)
		c.r.out.signal()
		c.r.pres.kick()
	}
}

// tick enforces the two deadlines: a (re)subscription must be confirmed,
// and a probe answered, within ProbeTimeout. An idle connection probes.
func (c *pubsubConn) tick() {
	now := time.Now()
	switch {
	case !c.up:
		if now.Sub(c.startedAt) > c.r.cfg.ProbeTimeout {
			c.r.stats.probeFailures.Add(1)
			c.fail(errSubscribeTimeout)
		}
	case c.probeToken != "":
		if c.link.lastRead.Load() > c.probeSent.UnixNano() {
			// Redis delivered something since the probe left: the
			// connection is alive, the echo is queued behind a backlog.
			c.probeToken = ""
			return
		}
		if now.Sub(c.probeSent) > c.r.cfg.ProbeTimeout {
			c.r.stats.probeFailures.Add(1)
			c.fail(errProbeTimeout)
		}
	case now.Sub(time.Unix(0, c.link.lastRead.Load())) >= c.r.cfg.ProbeIdle:
		c.sendProbe()
	}
}

// sendProbe publishes a token on the connection's own probe channel, from a
// regular connection: it comes back through the pub/sub connection only if
// Redis still delivers to it.
func (c *pubsubConn) sendProbe() {
	c.probeSeq++
	c.probeToken = strconv.FormatUint(c.probeSeq, 10)
	c.probeSent = time.Now()
	c.r.stats.probes.Add(1)
	c.link.publishProbe(c.probeToken)
}

// fail marks the connection down and panics: the bus restarts it with
// backoff (restartSubscriptionWithBackoff).
func (c *pubsubConn) fail(err error) {
	c.r.health.set(c.index, false)
	c.r.log.Warn("redis pub/sub connection lost", "conn", c.index, actors.KeyErr, err)
	panic(linkFault{err})
}

// shutdown releases the incarnation's link and timer. It runs when the actor
// restarts or stops and must not panic.
func (c *pubsubConn) shutdown() {
	if c.ticker != nil {
		c.ticker.Stop()
		c.ticker = nil
	}
	if c.link != nil {
		c.link.close()
		c.link = nil
	}
	c.up = false
	c.r.health.set(c.index, false)
	// Messages Redis delivered before the fault are not lost with this
	// incarnation: the next one routes them.
	c.r.carry[c.index] = append(c.r.carry[c.index], c.stash...)
	c.stash = nil
}

// link is one incarnation's Redis connection: a go-redis client (for
// probes) and its PubSub (one dedicated connection), a read loop and a
// command goroutine. Its goroutines report to the connection actor with
// messages; close ends them.
type link struct {
	r      *Redis
	self   *actor.PID
	probe  string
	client *redis.Client
	ps     *redis.PubSub

	mu   sync.Mutex // guards ops
	ops  []subOp    // (un)subscriptions waiting for the command goroutine
	wake chan struct{}
	quit chan struct{}
	once sync.Once

	lastRead atomic.Int64 // unix ns of the last read; written by the read loop, read by the actor
	broken   atomic.Bool  // a dial or a connection of this link failed; set by the dialer and linkConn, read by the dialer
}

var errLinkBroken = errors.New("cluster: redis: link broken; a new one replaces it")

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

// subOp is one SUBSCRIBE or UNSUBSCRIBE of some channels.
type subOp struct {
	subscribe bool
	channels  []string
}

// maxChannelsPerCommand bounds one SUBSCRIBE's arguments.
const maxChannelsPerCommand = 1000

func openLink(r *Redis, self *actor.PID, probe string) *link {
	l := &link{r: r, self: self, probe: probe, wake: make(chan struct{}, 1), quit: make(chan struct{})}
	opts := r.clientOptions("sub")
	dial := redis.NewDialer(opts)
	opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		// go-redis reconnects a broken PubSub by itself, inside Receive,
		// and re-subscribes what it remembers, before it reports the
		// error. That zombie subscription would swallow messages until
		// this link is closed; a link dials only until it breaks.
		if l.broken.Load() {
			return nil, errLinkBroken
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			l.broken.Store(true) // one attempt per link: the next one is a new link
			return nil, err
		}
		return &linkConn{Conn: c, broken: &l.broken}, nil
	}
	l.client = redis.NewClient(opts)
	l.ps = l.client.Subscribe(r.ctx)
	l.lastRead.Store(time.Now().UnixNano())
	r.goTracked(l.read)
	r.goTracked(l.write)
	return l
}

// enqueue asks the command goroutine to (un)subscribe channels. Called by the
// connection actor; never blocks.
func (l *link) enqueue(subscribe bool, channels ...string) {
	if len(channels) == 0 {
		return
	}
	l.mu.Lock()
	if n := len(l.ops); n > 0 && l.ops[n-1].subscribe == subscribe {
		l.ops[n-1].channels = append(l.ops[n-1].channels, channels...)
	} else {
		l.ops = append(l.ops, subOp{subscribe: subscribe, channels: append([]string(nil), channels...)})
	}
	l.mu.Unlock()
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
		l.r.host.Root.Send(l.self, &linkFailed{link: l, err: err})
	}
}

// read is the link's read loop. It never waits on anything but the socket:
// messages are handed to the connection actor within the inbound byte
// budget, and dropped (counted) beyond it.
func (l *link) read() {
	r, root := l.r, l.r.host.Root
	budget := int64(r.cfg.InboundBytes)
	for {
		msg, err := l.ps.Receive(r.ctx)
		if err != nil {
			l.failed(err)
			return
		}
		l.lastRead.Store(time.Now().UnixNano())
		switch m := msg.(type) {
		case *redis.Message:
			if m.Channel == l.probe {
				root.Send(l.self, &probeEcho{link: l, token: m.Payload})
				continue
			}
			r.stats.received.Add(1)
			if ownEnvelope(m.Payload, r.keys.ownMarker) {
				r.stats.ownSkipped.Add(1)
				continue
			}
			n := int64(len(m.Payload))
			if r.inflight.Add(n) > budget {
				r.inflight.Add(-n)
				r.stats.dropped.Add(1)
				continue
			}
			root.Send(l.self, &delivery{channel: m.Channel, payload: m.Payload})
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				root.Send(l.self, &subscribed{link: l, channel: m.Channel})
			}
		}
	}
}

// write is the link's command goroutine: it sends the (un)subscriptions the
// actor queued, in order, and reports a failure.
func (l *link) write() {
	for {
		select {
		case <-l.quit:
			return
		case <-l.wake:
		}
		l.mu.Lock()
		ops := l.ops
		l.ops = nil
		l.mu.Unlock()
		for _, op := range ops {
			for chans := op.channels; len(chans) > 0; {
				n := min(len(chans), maxChannelsPerCommand)
				ctx, cancel := context.WithTimeout(l.r.ctx, l.r.cfg.CommandTimeout)
				var err error
				if op.subscribe {
					err = l.ps.Subscribe(ctx, chans[:n]...)
				} else {
					err = l.ps.Unsubscribe(ctx, chans[:n]...)
				}
				cancel()
				if err != nil {
					l.failed(err)
					return
				}
				chans = chans[n:]
			}
		}
	}
}

// publishProbe publishes token on the probe channel from the link's regular
// connection. An error needs no report: the missing echo is the report.
func (l *link) publishProbe(token string) {
	l.r.goTracked(func() {
		ctx, cancel := context.WithTimeout(l.r.ctx, l.r.cfg.ProbeTimeout)
		defer cancel()
		_ = l.client.Publish(ctx, l.probe, token).Err()
	})
}
