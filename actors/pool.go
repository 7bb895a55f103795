package actors

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// actorPool runs the mailbox activations of the actors a node holds by the
// hundred thousand (rooms; a broker's actor per channel, Spec.Pooled) on a
// few worker goroutines, from two queues: teardown (an activation that
// began with a Stop, a PoisonPill, an Unwatch or a watched actor's
// Terminated) waits
// behind everything else.
//
// Why: protoactor's default dispatcher starts a goroutine per activation.
// When 100 connections that were each in 1,000 rooms drop at once, 100,000
// rooms wake to tear down at the same instant, then as many channel
// actors, and each time 100,000 goroutines land in the Go scheduler's run
// queue, which is first in, first out. A join
// sent during the exit waited behind all of them at every hop (its read
// loop, made runnable by the network poller, then the hub, then the new
// room): half a second to seconds before its ack, on a node that had spare
// work for nothing else. On the pool, the teardown occupies at most
// maxWorkers goroutines, so everything else keeps its normal latency, and
// a room that starts (a join is coming) or receives a message (a join, a
// publication) goes ahead of the teardown backlog. The workers also run
// activations back to back on stacks that have already grown, which
// costs less than a fresh goroutine per activation.
//
// The class is the kind of message that woke an idle mailbox (see
// poolMailbox.MessagePosted); a message that arrives while an activation
// is queued rides with it, in whichever queue it is. Both queues are
// unbounded: a room's work is never dropped and Schedule never blocks.
// Workers end when both queues are empty, so an idle node holds none.
type actorPool struct {
	mu       sync.Mutex
	urgent   fnQueue
	teardown fnQueue
	workers  int // running workers; guarded by mu
	max      int
}

// poolThroughput is how many messages one activation handles before it
// yields the processor, as protoactor's default dispatcher.
const poolThroughput = 300

func newActorPool() *actorPool {
	return &actorPool{max: 2 * runtime.GOMAXPROCS(0)}
}

// schedule queues fn, an activation, and starts a worker if fewer than
// max are running. Any goroutine; never blocks.
func (p *actorPool) schedule(fn func(), teardown bool) {
	p.mu.Lock()
	if teardown {
		p.teardown.push(fn)
	} else {
		p.urgent.push(fn)
	}
	start := p.workers < p.max
	if start {
		p.workers++
	}
	p.mu.Unlock()
	if start {
		go p.run()
	}
}

// run is a worker: it takes activations, urgent ones first, until both
// queues are empty. The count of workers is lowered under the same lock
// as the last look at the queues, so no activation is ever stranded.
func (p *actorPool) run() {
	for {
		p.mu.Lock()
		fn := p.urgent.pop()
		if fn == nil {
			fn = p.teardown.pop()
		}
		if fn == nil {
			p.workers--
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		fn()
	}
}

// queued reports the activations waiting for a worker (tests).
func (p *actorPool) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.urgent.len() + p.teardown.len()
}

// fnQueue is a FIFO of activations that frees its storage as it drains.
type fnQueue struct {
	items []func()
	head  int
}

func (q *fnQueue) push(fn func()) { q.items = append(q.items, fn) }

func (q *fnQueue) len() int { return len(q.items) - q.head }

func (q *fnQueue) pop() func() {
	if q.head == len(q.items) {
		if q.items != nil {
			q.items, q.head = nil, 0 // drained: let a burst's array go
		}
		return nil
	}
	fn := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	return fn
}

// poolMailbox is one actor's link to the pool: it is the actor's
// dispatcher and its mailbox's middleware, so it sees each message as it is posted
// and classes the activation the mailbox asks for right after. Two posts
// that race may class an activation wrongly; that only changes its place
// in line, never whether it runs.
type poolMailbox struct {
	pool     *actorPool
	teardown atomic.Bool // the last message posted was a teardown
}

var (
	_ actor.Dispatcher        = (*poolMailbox)(nil)
	_ actor.MailboxMiddleware = (*poolMailbox)(nil)
)

// pooled are the props options that put one new actor on the pool; each
// actor needs its own (they hold its class).
func (p *actorPool) pooled() []actor.PropsOption {
	mb := &poolMailbox{pool: p}
	return []actor.PropsOption{actor.WithDispatcher(mb), actor.WithMailbox(actor.Unbounded(mb))}
}

// Schedule implements actor.Dispatcher.
func (m *poolMailbox) Schedule(fn func()) { m.pool.schedule(fn, m.teardown.Load()) }

// Throughput implements actor.Dispatcher.
func (m *poolMailbox) Throughput() int { return poolThroughput }

// MessagePosted implements actor.MailboxMiddleware: a watched actor's
// Terminated, a watcher's Unwatch (a stopping session unwatches its rooms
// just before they hear of its end), a Stop and a PoisonPill are teardown;
// everything else, the actor's Started included (a room starts because a
// join is coming), is urgent.
func (m *poolMailbox) MessagePosted(msg any) {
	switch msg.(type) {
	case *actor.Terminated, *actor.Unwatch, *actor.Stop, *actor.PoisonPill:
		m.teardown.Store(true)
	default:
		m.teardown.Store(false)
	}
}

// MailboxStarted implements actor.MailboxMiddleware.
func (*poolMailbox) MailboxStarted() {}

// MessageReceived implements actor.MailboxMiddleware.
func (*poolMailbox) MessageReceived(any) {}

// MailboxEmpty implements actor.MailboxMiddleware.
func (*poolMailbox) MailboxEmpty() {}

// running is the number of workers (tests).
func (p *actorPool) running() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers
}
