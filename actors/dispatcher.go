package actors

import (
	"runtime"
	"sync/atomic"
)

// sessionDispatcher runs session mailbox activations on a few worker
// goroutines that take them from a queue, instead of one new goroutine per
// activation.
//
// Why: protoactor's default dispatcher starts a goroutine (`go fn()`) each
// time an idle mailbox receives a message. A room fan-out finds most of its
// members idle, so it started a goroutine per member, and because a new
// goroutine starts with a small stack, each one grew (copied) its stack on
// the way down the session's send path: stack copying was over half of the
// CPU of BenchmarkRoomFanout one_at_a_time. Workers take the activations of
// a fan-out one after the other on a stack that has already grown. Measured
// on 2 cores (docs/benchmarks.md), CPU per delivery one message at a time:
// 3.4 -> 0.7 us with 100 members, 4.6 -> 0.7 us with 1,000, 6.2 -> 2.4 us with
// 10,000; end to end over loopback, 5-14 % less CPU per delivery.
//
// Sessions never block inside Receive (a rule of the design: writes are
// queued, broker calls return at once), so a few workers suffice; an
// activation runs until its mailbox is empty, as with protoactor's own
// dispatcher. Schedule never blocks: when the queue is full (a fan-out to
// tens of thousands of sessions at once) the activation gets a goroutine of
// its own, as before. A worker ends as soon as the queue is empty, so an idle
// node holds no worker goroutine.
//
// Ownership: fields are set by newSessionDispatcher; after that only the
// channel and the atomic counter are used, from any goroutine.
type sessionDispatcher struct {
	throughput int
	maxWorkers int32
	work       chan func() // activations waiting for a worker
	workers    atomic.Int32
}

// Session dispatcher sizing: protoactor's default throughput (messages
// between yields of the processor), four workers per processor, and a queue
// as long as the largest fan-out that stays on the workers.
const (
	sessionThroughput = 300
	sessionQueue      = 16384
)

func newSessionDispatcher() *sessionDispatcher {
	return &sessionDispatcher{
		throughput: sessionThroughput,
		maxWorkers: int32(4 * runtime.GOMAXPROCS(0)),
		work:       make(chan func(), sessionQueue),
	}
}

// Schedule implements actor.Dispatcher. It may be called from any goroutine
// and never blocks.
func (d *sessionDispatcher) Schedule(fn func()) {
	select {
	case d.work <- fn:
	default:
		go fn() // queue full
		return
	}
	d.startWorker()
}

// Throughput implements actor.Dispatcher.
func (d *sessionDispatcher) Throughput() int { return d.throughput }

// startWorker starts a worker unless maxWorkers are running.
func (d *sessionDispatcher) startWorker() {
	if d.workers.Load() >= d.maxWorkers {
		return
	}
	if d.workers.Add(1) > d.maxWorkers {
		d.workers.Add(-1)
		return
	}
	go d.run()
}

// run is a worker: it runs queued activations until the queue is empty.
//
// No activation is stranded: Schedule queues before it reads the worker
// count, and a worker lowers the count before its last look at the queue,
// so either Schedule sees a free slot and starts a worker, or a running
// worker's last look finds the activation.
func (d *sessionDispatcher) run() {
	for {
		select {
		case fn := <-d.work:
			fn()
			continue
		default:
		}
		d.workers.Add(-1)
		if len(d.work) == 0 {
			return
		}
		// Something was queued after the poll: take it on if there is room;
		// if not, the workers counted now will each poll again.
		if d.workers.Add(1) > d.maxWorkers {
			d.workers.Add(-1)
			return
		}
	}
}
