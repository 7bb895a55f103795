package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"
)

// Behind Redis Sentinel (Config.SentinelMaster) a link dials the server the
// sentinels name as the primary, and keeps checking that they still name
// it. A planned failover (SENTINEL FAILOVER) leaves the old primary up,
// and a master, until the sentinels demote it about 10 s later (they
// reconfigure a server once it has reported the wrong role for 8 s):
// meanwhile a subscription there stays open and hears nothing of what the
// nodes' writers, which follow the switch at once, publish on the new
// primary. Neither a read error nor the liveness probe catches it in time
// (the probe publishes from a connection that may be on the old primary
// too, and only after ProbeIdle of quiet), and once the outbox's FlushWait
// passes, the other nodes' backlog goes into the new primary's stream
// without this node: more than HistorySize of it and the rooms' catch-up
// read cannot fill the gap. So at every tick of its connection actor a
// link asks the sentinels where the primary is, and a link on another
// server is a fault: the connection restarts with backoff on the new
// primary, and its rooms read what they missed.
//
// Sentinels may disagree for a moment: the one that ran the failover knows
// the new primary first, the others learn it from its hello messages
// (every 2 s), and a sentinel that was away may still name a server that
// is long a replica. Each failover raises the configuration epoch, so the
// answer with the highest config-epoch (SENTINEL MASTER) is the newest;
// the dialer and the check both take it, so that they never disagree.
type sentinelWatch struct {
	name     string
	clients  []*goredis.SentinelClient
	checking atomic.Bool // a check is in flight; set and cleared by checkPrimary
}

// errPrimaryMoved: the sentinels name another primary than the server the
// link subscribed on.
var errPrimaryMoved = errors.New("cluster: redis: the sentinels name another primary than the link's server")

func newSentinelWatch(r *Broker) *sentinelWatch {
	w := &sentinelWatch{name: r.cfg.SentinelMaster}
	for _, addr := range r.cfg.Sentinels {
		w.clients = append(w.clients, goredis.NewSentinelClient(&goredis.Options{
			Addr: addr, Password: r.cfg.SentinelPassword, MaxRetries: -1, Protocol: 2, DisableIdentity: true,
			DialTimeout: r.opts.DialTimeout, ReadTimeout: r.opts.ReadTimeout, WriteTimeout: r.opts.WriteTimeout,
			PoolSize: 1,
		}))
	}
	return w
}

func (w *sentinelWatch) close() {
	for _, c := range w.clients {
		_ = c.Close()
	}
}

// primary asks every sentinel (SENTINEL MASTER) and returns the address
// in the answer with the highest config-epoch (see sentinelWatch); an error
// if none answered.
func (w *sentinelWatch) primary(ctx context.Context) (string, error) {
	type answer struct {
		addr  string
		epoch int64
		err   error
	}
	answers := make(chan answer, len(w.clients))
	for _, c := range w.clients {
		go func() {
			m, err := c.Master(ctx, w.name).Result()
			if err != nil {
				answers <- answer{err: err}
				return
			}
			epoch, err := strconv.ParseInt(m["config-epoch"], 10, 64)
			if err != nil || m["ip"] == "" || m["port"] == "" {
				answers <- answer{err: fmt.Errorf("cluster: redis: SENTINEL MASTER %s: unexpected reply %v", w.name, m)}
				return
			}
			answers <- answer{addr: net.JoinHostPort(m["ip"], m["port"]), epoch: epoch}
		}()
	}
	best := answer{epoch: -1}
	var last error
	for range w.clients {
		a := <-answers
		switch {
		case a.err != nil:
			last = a.err
		case a.epoch > best.epoch:
			best = a
		}
	}
	if best.addr == "" {
		return "", fmt.Errorf("cluster: redis: no sentinel named the primary %q: %w", w.name, last)
	}
	return best.addr, nil
}

// checkPrimary asks the sentinels, on a goroutine of its own (one at a
// time), whether they still name the server the link dialled, and fails
// the link if they name another one. No answer is no verdict: a link
// whose Redis is gone fails by itself.
func (l *link) checkPrimary() {
	w, addr := l.sentinel, l.addr.Load()
	if w == nil || addr == nil || !w.checking.CompareAndSwap(false, true) {
		return
	}
	l.r.goTracked(func() {
		defer w.checking.Store(false)
		ctx, cancel := context.WithTimeout(l.r.ctx, l.r.cfg.ProbeTimeout)
		defer cancel()
		if now, err := w.primary(ctx); err == nil && now != *addr {
			l.failed(fmt.Errorf("%w: subscribed on %s, primary %s", errPrimaryMoved, *addr, now))
		}
	})
}

// sentinelReads pins the stream reads, behind Sentinel, to the server the
// pub/sub links were last subscribed on: a room's catch-up read after its
// resubscription must read the stream that numbered what its subscription
// hears. The shared reader (a go-redis FailoverClient) follows a failover
// on its own, when the one sentinel it listens to announces it; after a
// planned failover it read the old primary's stream, still a master, for
// more than a second after the links and the writers had moved: the new
// epoch was unknown there, and the rooms went on past the new primary's
// first publications. Guarded by mu: the connection actors set it, the
// reads' goroutines read it.
type sentinelReads struct {
	mu      sync.Mutex
	current *goredis.Client
	byAddr  map[string]*goredis.Client // one per server the links were on; closed by close
	closed  bool
}

// follow pins the reads to addr, the server a link has just come up on.
func (s *sentinelReads) follow(r *Broker, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return // a link's late dial
	}
	c, ok := s.byAddr[addr]
	if !ok {
		o := r.clientOptions("history")
		o.Addr = addr
		c = goredis.NewClient(o)
		if s.byAddr == nil {
			s.byAddr = make(map[string]*goredis.Client)
		}
		s.byAddr[addr] = c
	}
	s.current = c
}

// client returns the pinned reader, or nil before any link came up.
func (s *sentinelReads) client() *goredis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// close closes every pinned reader; the reads are over.
func (s *sentinelReads) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.byAddr {
		_ = c.Close()
	}
	s.byAddr, s.current, s.closed = nil, nil, true
}

// historyReader is the client of the stream and presence reads: behind
// Sentinel the one pinned to the links' server, once one came up.
func (r *Broker) historyReader() goredis.UniversalClient {
	if c := r.pinned.client(); c != nil {
		return c
	}
	return r.reader
}
