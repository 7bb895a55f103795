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
// Each pooled actor has a poolMailbox, the project's own protoactor
// Mailbox: it queues its messages and asks the pool for an activation
// itself, without a dispatcher. The class of an activation is the kind of
// message that woke the idle mailbox (see teardownClass). A message that
// arrives while an activation is queued rides with it, except that an
// urgent message (a join to a room whose last member just left) promotes a
// queued teardown activation: it is queued again as urgent, and whichever
// copy a worker reaches first runs the mailbox; the other finds it no
// longer queued and does nothing.
//
// An activation runs until its mailbox is empty, so a few actors with long
// backlogs (a big room's burst after a broker outage) can hold every
// worker. An urgent activation that finds the workers at max and none of
// them taking work for stallAfter gets a worker of its own (up to
// 4 x max), as the goroutine per activation it replaces would have.
//
// Teardown is not starved by steady urgent work: it gets one activation
// after every teardownTurn urgent ones that passed it.
//
// Both queues are unbounded (an entry per queued mailbox, and one stale
// entry, which does nothing when reached, per promotion): a room's work is
// never dropped and Schedule never blocks. Workers end when both queues are empty, so an
// idle node holds none.
type actorPool struct {
	mu       sync.Mutex
	urgent   fifo[activation]
	teardown fifo[activation]
	workers  int // running workers; guarded by mu
	passed   int // urgent activations taken in a row while teardown waited; guarded by mu
	max      int
	// took is when a worker last took an activation (unix ns).
	took atomic.Int64
}

// poolThroughput is how many messages one activation handles before it
// yields the processor, as protoactor's default dispatcher.
const poolThroughput = 300

// teardownTurn: after teardownTurn urgent activations have passed a
// waiting teardown, the next activation is a teardown, so that steady
// urgent work (busy rooms) never holds the
// teardown back for good (members' leaves, idle rooms' stops), while a
// join's activations still pass nearly all of a mass exit's backlog.
const teardownTurn = 8

// yieldEvery is how long a worker runs activations back to back before it
// yields its processor. A mass exit keeps every worker busy for seconds;
// the Go scheduler preempts a running goroutine only after 10 ms, so each
// hop of a join made meanwhile (its read loop, the hub, the room, the
// broker's actors) waited up to that long per worker ahead of it.
const yieldEvery = time.Millisecond

// stallAfter is how long the workers, all busy, may take nothing from the
// queues before an urgent activation gets an extra worker.
const stallAfter = 2 * time.Millisecond

func newActorPool() *actorPool {
	return &actorPool{max: 2 * runtime.GOMAXPROCS(0)}
}

// activation is one queued run: of a pooled actor's mailbox (mb), which
// may be queued twice (promoted) and runs only if still queued, or of fn.
type activation struct {
	mb *poolMailbox
	fn func()
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
	yielded := time.Now().UnixNano()
	for {
		p.mu.Lock()
		var a activation
		ok := false
		if p.passed >= teardownTurn {
			a, ok = p.teardown.pop(poolQueueKeep)
		}
		if ok {
			p.passed = 0
		} else if a, ok = p.urgent.pop(poolQueueKeep); ok && p.teardown.len() > 0 {
			p.passed++
		} else if !ok {
			a, ok = p.teardown.pop(poolQueueKeep)
			p.passed = 0
		}
		if !ok {
			p.workers--
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		now := time.Now().UnixNano()
		p.took.Store(now)
		if now-yielded > int64(yieldEvery) {
			// Let the goroutines waiting for a processor run (a join's
			// read loop, the hub, a broker's connection) rather than
			// leave them behind a worker until the scheduler preempts it.
			runtime.Gosched()
			yielded = now
		}
		if a.mb != nil {
			a.mb.activate()
		} else {
			a.fn()
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

// fifo is a queue whose storage follows its length: the taken front is
// dropped when the array is full, before append would grow it, and once
// drained the array is let go unless it has at most keep slots.
type fifo[T any] struct {
	items []T
	head  int
}

func (q *fifo[T]) push(v T) {
	if len(q.items) == cap(q.items) && q.head > 0 && 2*q.head >= len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, v)
}

func (q *fifo[T]) len() int { return len(q.items) - q.head }

// pop returns the oldest item, false when empty.
func (q *fifo[T]) pop(keep int) (T, bool) {
	var zero T
	if q.head == len(q.items) {
		return zero, false
	}
	v := q.items[q.head]
	q.items[q.head] = zero
	q.head++
	if q.head == len(q.items) {
		if cap(q.items) > keep {
			q.items = nil // drained: let a burst's array go
		} else {
			q.items = q.items[:0]
		}
		q.head = 0
	}
	return v, true
}

// poolMailbox is a pooled actor's mailbox: protoactor's Mailbox, over
// two queues (system messages first, as protoactor's own), that schedules
// its activations on the pool directly. Its queues hold no storage while
// empty (but for a few slots): a node holds two pooled actors per room,
// mostly idle, and protoactor's default mailbox kept a ring buffer, a
// system queue and a dispatcher closure for each. Every field but pool is
// guarded by mu.
type poolMailbox struct {
	pool    *actorPool
	invoker actor.MessageInvoker

	mu        sync.Mutex
	sys, user fifo[any]
	state     mailboxState
	teardown  bool // queued: as teardown
	promoted  bool // queued: an urgent copy is queued too
	suspended bool // a failure is being handled (protoactor's SuspendMailbox)
}

type mailboxState uint8

const (
	mailboxIdle    mailboxState = iota
	mailboxQueued               // an activation waits in the pool
	mailboxRunning              // a worker runs it
)

var _ actor.Mailbox = (*poolMailbox)(nil)

// pooled are the props options that put an actor on the pool.
func (p *actorPool) pooled() []actor.PropsOption {
	return []actor.PropsOption{actor.WithMailbox(p.newMailbox)}
}

func (p *actorPool) newMailbox() actor.Mailbox { return &poolMailbox{pool: p} }

// teardownMessage is implemented by the project's messages that end
// something (a member's leave, a room's retirement): like protoactor's
// own, they are teardown on the pool.
type teardownMessage interface{ teardown() }

// teardownClass reports whether msg wakes a mailbox as teardown: a
// watched actor's Terminated, a watcher's Unwatch, a Stop, a PoisonPill
// and the project's teardown messages (a leave: a stopping session leaves
// each of its rooms). Everything else, the actor's Started included (a
// room starts because a join is coming), is urgent.
func teardownClass(msg any) bool {
	switch msg.(type) {
	case *actor.Terminated, *actor.Unwatch, *actor.Stop, *actor.PoisonPill, teardownMessage:
		return true
	}
	return false
}

// PostUserMessage implements actor.Mailbox. protoactor's MessageBatch is
// not unpacked: nothing here sends one to a pooled actor.
func (m *poolMailbox) PostUserMessage(msg any) { m.post(msg, false) }

// PostSystemMessage implements actor.Mailbox.
func (m *poolMailbox) PostSystemMessage(msg any) { m.post(msg, true) }

func (m *poolMailbox) post(msg any, system bool) {
	teardown := teardownClass(msg)
	m.mu.Lock()
	if system {
		m.sys.push(msg)
	} else {
		m.user.push(msg)
	}
	switch {
	case m.state == mailboxIdle:
		m.state, m.teardown, m.promoted = mailboxQueued, teardown, false
	case m.state == mailboxQueued && m.teardown && !teardown && !m.promoted:
		m.promoted = true
	default:
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	m.pool.schedule(activation{mb: m}, teardown)
}

// activate runs the mailbox if it is still queued (a promoted one is
// queued twice), until it has nothing it may handle.
func (m *poolMailbox) activate() {
	m.mu.Lock()
	if m.state != mailboxQueued {
		m.mu.Unlock()
		return
	}
	m.state = mailboxRunning
	m.mu.Unlock()
	for {
		m.run()
		m.mu.Lock()
		if m.sys.len() == 0 && (m.suspended || m.user.len() == 0) {
			m.state = mailboxIdle
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
	}
}

// run handles messages, system ones first, until the mailbox is empty or
// suspended, as protoactor's default mailbox does: a panic is handed to
// the actor's supervision (EscalateFailure, which suspends the mailbox).
func (m *poolMailbox) run() {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	for i := 1; ; i++ {
		if i%poolThroughput == 0 {
			runtime.Gosched()
		}
		m.mu.Lock()
		if msg, _ = m.sys.pop(msgQueueKeep); msg != nil {
			switch msg.(type) {
			case *actor.SuspendMailbox:
				m.suspended = true
				m.mu.Unlock()
			case *actor.ResumeMailbox:
				m.suspended = false
				m.mu.Unlock()
			default:
				m.mu.Unlock()
				m.invoker.InvokeSystemMessage(msg)
			}
			continue
		}
		if m.suspended {
			m.mu.Unlock()
			return
		}
		msg, _ = m.user.pop(msgQueueKeep)
		m.mu.Unlock()
		if msg == nil {
			return
		}
		m.invoker.InvokeUserMessage(msg)
	}
}

// RegisterHandlers implements actor.Mailbox; the dispatcher is not used.
func (m *poolMailbox) RegisterHandlers(invoker actor.MessageInvoker, _ actor.Dispatcher) {
	m.invoker = invoker
}

// Start implements actor.Mailbox.
func (*poolMailbox) Start() {}

// UserMessageCount implements actor.Mailbox.
func (m *poolMailbox) UserMessageCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.user.len()
}

// poolQueueKeep is how many slots the pool's drained queues keep: light
// load drains them at every activation, and a new array each time would
// be garbage on the hot path.
const poolQueueKeep = 64

// msgQueueKeep is how many slots a pooled actor's drained queue keeps:
// an idle actor holds almost nothing.
const msgQueueKeep = 4
