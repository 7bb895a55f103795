package redis

import (
	"errors"
	"strconv"
	"time"

	"github.com/switchboard-rt/switchboard/actors/port"
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
	r     *Broker
	index int
	probe string // this connection's probe channel
	self  port.Ref
	bus   port.Ref

	link   *link
	routes map[string]port.Ref // channel -> subscription actor
	ready  bool                // the snapshot has arrived; routes is current
	// wired counts the routes each Redis channel carries (keyspace's
	// wireChannel): one each on one Redis; on a cluster a partition's
	// channel carries its rooms, and is subscribed while it has one.
	// live holds those Redis has confirmed on the current link.
	wired map[string]int
	live  map[string]bool
	stash []*delivery // read before the snapshot arrived

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

func newPubSubConn(r *Broker, index int) *pubsubConn {
	return &pubsubConn{r: r, index: index, probe: r.keys.probeChannel(index)}
}

func (c *pubsubConn) Receive(ctx port.Context) {
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
			c.confirm(ctx, m.channel)
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
			c.addRoute(ctx, m.channel, m.sub)
		}
	case *unroute:
		if sub, ok := c.routes[m.channel]; c.ready && ok && m.sub.Equal(sub) {
			delete(c.routes, m.channel)
			w := c.r.keys.wireChannel(m.channel)
			if c.wired[w]--; c.wired[w] <= 0 {
				delete(c.wired, w)
				delete(c.live, w)
				c.link.enqueue(false, w)
			}
		}
		// Everything routed to the subscription so far is ahead of the
		// pill in its mailbox, and nothing more will be.
		ctx.Poison(m.sub)
	case probeNow:
		if c.up && c.probeToken == "" {
			c.sendProbe()
		}
	case *port.Crash:
		panic(crashError(m.Reason))
	case *port.Started:
		c.start(ctx)
	case *port.Restarting:
		c.shutdown()
	case *port.Stopping:
		c.shutdown()
	case *port.Stopped:
		c.shutdown()
	}
}

func (c *pubsubConn) start(ctx port.Context) {
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
	host, self, msg := c.r.host.Actors, c.self, &connTick{link: c.link}
	c.ticker = time.AfterFunc(every, func() { host.Send(self, msg) })
}

// addRoute carries channel for sub: its Redis channel is subscribed if it
// is not yet; a channel already live is confirmed to sub at once.
func (c *pubsubConn) addRoute(ctx port.Context, channel string, sub port.Ref) {
	w := c.r.keys.wireChannel(channel)
	if _, again := c.routes[channel]; !again {
		c.wired[w]++
	}
	c.routes[channel] = sub
	switch {
	case c.wired[w] == 1 && !c.live[w]:
		c.link.enqueue(true, w)
	case c.live[w]:
		ctx.Send(sub, confirmed{})
	}
}

// confirm handles Redis's confirmation of the Redis channel w: the
// connection may be up, and the subscriptions it carries are live.
func (c *pubsubConn) confirm(ctx port.Context, w string) {
	delete(c.unconfirmed, w)
	c.checkUp()
	if c.wired[w] == 0 {
		return
	}
	c.live[w] = true
	k := &c.r.keys
	if !k.cluster || c.index == 0 {
		if sub, ok := c.routes[k.brokerChannel(w)]; ok {
			ctx.Send(sub, confirmed{})
		}
		return
	}
	for _, sub := range c.routes { // a partition's connection carries one channel
		ctx.Send(sub, confirmed{})
	}
}

func (c *pubsubConn) applySnapshot(ctx port.Context, m *snapshot) {
	c.routes, c.ready = m.routes, true
	c.wired, c.live = make(map[string]int, len(m.routes)), make(map[string]bool, len(m.routes))
	c.unconfirmed = make(map[string]struct{}, len(m.routes)+1)
	c.unconfirmed[c.probe] = struct{}{}
	chans := make([]string, 0, len(m.routes)+1)
	chans = append(chans, c.probe)
	for ch := range m.routes {
		w := c.r.keys.wireChannel(ch)
		if c.wired[w]++; c.wired[w] == 1 {
			c.unconfirmed[w] = struct{}{}
			chans = append(chans, w)
		}
	}
	c.link.enqueue(true, chans...)
	stash := c.stash
	c.stash = nil
	for _, d := range stash {
		c.route(ctx, d)
	}
}

func (c *pubsubConn) route(ctx port.Context, d *delivery) {
	sub, ok := c.routes[d.channel]
	if !ok {
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
		c.r.log.Info("redis subscriptions up", "conn", c.index, "channels", len(c.routes), "after", outage,
			"failed_attempts", c.r.outage.recovered())
		c.r.out.signal()
		c.r.pres.kick()
	}
}

// tick enforces the two deadlines: a (re)subscription must be confirmed,
// and a probe answered, within ProbeTimeout. An idle connection probes.
// Behind Sentinel, the link checks that it is still on the primary
// (link_sentinel.go).
func (c *pubsubConn) tick() {
	now := time.Now()
	c.link.checkPrimary()
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
	c.r.outage.failed(c.r.log, c.index, err)
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
