package cluster

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
)

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
