package actors

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// actorPool runs the mailbox activations of the actors a node holds by the
// hundred thousand (rooms; a broker's actor per channel, Spec.Pooled) on a
// few worker goroutines, from two queues: teardown (an activation that
// began with a Stop, a PoisonPill, an Unwatch, a watched actor's
// Terminated, a member's leave or a room's retirement) waits behind
// everything else.
//
// Why: protoactor's default dispatcher starts a goroutine per activation.
// When 100 connections that were each in 1,000 rooms drop at once, 100,000
// rooms wake to tear down at the same instant, then as many channel
// actors, and each time 100,000 goroutines land in the Go scheduler's run
// queue, which is first in, first out. A join sent during the exit waited
// behind all of them at every hop (its read loop, made runnable by the
// network poller, then the hub, then the new room): half a second to
// seconds before its ack. On the pool, the teardown occupies at most max
// goroutines, so everything else keeps its normal latency, and a room that
// starts (a join is coming) or receives a message (a join, a publication)
// goes ahead of the teardown backlog. The workers also run activations
// back to back on stacks that have already grown, which costs less than a
// fresh goroutine per activation.
//
// The class is the kind of message that woke an idle mailbox (see
// poolMailbox.MessagePosted). A message that arrives while an activation
// is queued rides with it, except that an urgent message (a join to a room
// whose last member just left) promotes a queued teardown activation: it
// is queued again as urgent, and whichever copy a worker reaches first
// runs it (claim).
//
// An activation runs until its mailbox is empty, so a few actors with long
// backlogs (a big room's burst after a broker outage) can hold every
// worker. An urgent activation that finds the workers at max and none of
// them taking work for stallAfter gets a worker of its own (up to
// 4 x max), as the goroutine per activation it replaces would have.
//
// Both queues are unbounded (each holds at most one entry per pooled
// actor, two for a promoted one): a room's work is never dropped and
// Schedule never blocks. Workers end when both queues are empty, so an
// idle node holds none.
type actorPool struct {
	mu       sync.Mutex
	urgent   fnQueue
	teardown fnQueue
	workers  int // running workers; guarded by mu
	max      int
	// took is when a worker last took an activation (unix ns).
	took atomic.Int64
}

// poolThroughput is how many messages one activation handles before it
// yields the processor, as protoactor's default dispatcher.
const poolThroughput = 300

// stallAfter is how long the workers, all busy, may take nothing from the
// queues before an urgent activation gets an extra worker.
const stallAfter = 2 * time.Millisecond

func newActorPool() *actorPool {
	return &actorPool{max: 2 * runtime.GOMAXPROCS(0)}
}

// activation is one queued run of a mailbox: fn, or a teardown that an
// urgent message may promote (pr), which may be queued twice: the first
// worker to claim it runs it.
type activation struct {
	fn func()
	pr *promotable
}

// schedule queues a, and starts a worker if fewer than max are running,
// or if a is urgent and the workers have taken nothing for stallAfter.
// Any goroutine; never blocks.
func (p *actorPool) schedule(a activation, teardown bool) {
	p.mu.Lock()
	if teardown {
		p.teardown.push(a)
	} else {
		p.urgent.push(a)
	}
	start := p.workers < p.max ||
		(!teardown && p.workers < 4*p.max && time.Now().UnixNano()-p.took.Load() > int64(stallAfter))
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
		a, ok := p.urgent.pop()
		if !ok {
			a, ok = p.teardown.pop()
		}
		if !ok {
			p.workers--
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		p.took.Store(time.Now().UnixNano())
		switch {
		case a.pr == nil:
			a.fn()
		case a.pr.claim.CompareAndSwap(false, true):
			a.pr.mb.queued.CompareAndSwap(a.pr, nil)
			a.pr.fn()
		}
	}
}

// queued reports the activations waiting for a worker (tests).
func (p *actorPool) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.urgent.len() + p.teardown.len()
}

// running is the number of workers (tests).
func (p *actorPool) running() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers
}

// fnQueue is a FIFO of activations whose storage follows its length: the
// taken front is dropped when the array is full, before append would grow
// it, and the array is let go when the queue drains.
type fnQueue struct {
	items []activation
	head  int
}

func (q *fnQueue) push(a activation) {
	if len(q.items) == cap(q.items) && q.head > 0 && 2*q.head >= len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, a)
}

func (q *fnQueue) len() int { return len(q.items) - q.head }

func (q *fnQueue) pop() (activation, bool) {
	if q.head == len(q.items) {
		if q.items != nil {
			q.items, q.head = nil, 0 // drained: let a burst's array go
		}
		return activation{}, false
	}
	a := q.items[q.head]
	q.items[q.head] = activation{}
	q.head++
	return a, true
}

// poolMailbox is one actor's link to the pool: it is the actor's
// dispatcher and its mailbox's middleware, so it sees each message as it
// is posted and classes the activation the mailbox asks for right after.
// Two posts that race may class an activation wrongly; that only changes
// its place in line, never whether it runs.
type poolMailbox struct {
	pool     *actorPool
	teardown atomic.Bool // the last message posted was a teardown
	// queued is the teardown activation waiting in the pool, if any, for
	// an urgent message to promote.
	queued atomic.Pointer[promotable]
}

// promotable is a teardown activation that an urgent message may queue
// again, once, as urgent: one allocation per teardown.
type promotable struct {
	mb       *poolMailbox
	fn       func()
	claim    atomic.Bool // a worker took it
	promoted atomic.Bool // queued again as urgent
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
func (m *poolMailbox) Schedule(fn func()) {
	if !m.teardown.Load() {
		m.pool.schedule(activation{fn: fn}, false)
		return
	}
	pr := &promotable{mb: m, fn: fn}
	m.queued.Store(pr)
	m.pool.schedule(activation{pr: pr}, true)
}

// Throughput implements actor.Dispatcher.
func (m *poolMailbox) Throughput() int { return poolThroughput }

// teardownMessage is implemented by the project's messages that end
// something (a member's leave, a room's retirement): like protoactor's
// own, they are teardown on the pool.
type teardownMessage interface{ teardown() }

// MessagePosted implements actor.MailboxMiddleware: a watched actor's
// Terminated, a watcher's Unwatch, a Stop, a PoisonPill and the project's
// teardown messages (a leave: a stopping session leaves each of its rooms)
// are teardown; everything else, the actor's Started included (a room
// starts because a join is coming), is urgent, and promotes a teardown
// activation already queued.
func (m *poolMailbox) MessagePosted(msg any) {
	switch msg.(type) {
	case *actor.Terminated, *actor.Unwatch, *actor.Stop, *actor.PoisonPill, teardownMessage:
		m.teardown.Store(true)
		return
	}
	m.teardown.Store(false)
	if pr := m.queued.Load(); pr != nil && !pr.claim.Load() && pr.promoted.CompareAndSwap(false, true) {
		m.pool.schedule(activation{pr: pr}, false)
	}
}

// MailboxStarted implements actor.MailboxMiddleware.
func (*poolMailbox) MailboxStarted() {}

// MessageReceived implements actor.MailboxMiddleware.
func (*poolMailbox) MessageReceived(any) {}

// MailboxEmpty implements actor.MailboxMiddleware.
func (*poolMailbox) MailboxEmpty() {}
