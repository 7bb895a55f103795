package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"
)

// workerMain is the worker command: one load process of a --processes run
// (see workerPool). It parses the parent's command line, takes share
// --index of the clients and of --source-ips, and answers the parent's ops
// read from stdin, one JSON line each, on stdout. It closes its clients
// and exits when stdin ends.
func workerMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("worker", stderr)
	index := fs.Int("index", 0, "this worker's share of the clients, 0 to --processes - 1")
	// After "--", the parent's command line, flags and scenario.
	if err := fs.Parse(args); err != nil {
		return err
	}
	o, err := parseOptions(fs.Args(), stderr)
	if err != nil {
		return err
	}
	if *index < 0 || *index >= o.processes {
		return errors.New("worker: --index must be 0 to --processes - 1")
	}
	o.sourceIPs = share(o.sourceIPs, *index, o.processes)
	w := &workerRun{o: o, index: *index, log: stderr}
	defer w.end()
	dec := json.NewDecoder(stdin)
	enc := json.NewEncoder(stdout)
	for {
		var m workerMsg
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := enc.Encode(w.handle(ctx, m)); err != nil {
			return err
		}
	}
}

// share returns part i of n of xs, contiguous; all of xs when it has fewer
// than n elements.
func share[T any](xs []T, i, n int) []T {
	if len(xs) < n {
		return xs
	}
	return xs[i*len(xs)/n : (i+1)*len(xs)/n]
}

// workerRun is a worker's state for the run in progress. Only the worker's
// loop touches it.
type workerRun struct {
	o     *options
	index int
	log   io.Writer

	r       *run
	plan    *fanoutPlan // nil for idle
	lo, hi  int         // this worker's clients: plan specs [lo, hi)
	rs      *runState
	clients []*loadClient
	pubs    []publisher
	ctx     context.Context
	cancel  context.CancelFunc
}

// handle runs one phase and returns its answer.
func (w *workerRun) handle(ctx context.Context, m workerMsg) workerMsg {
	var ans workerMsg
	var err error
	switch m.Op {
	case "connect":
		ans, err = w.connect(ctx, m)
	case "start":
		ans = workerMsg{Op: "sent"}
		if w.plan == nil {
			err = errors.New("start before connect")
			break
		}
		at := time.Unix(0, m.At)
		select {
		case <-time.After(time.Until(at)):
		case <-w.ctx.Done():
		}
		w.rs.start = at
		ans.Sent, ans.Truncated = w.r.sendAll(w.ctx, w.pubs, w.rs, len(w.plan.publisher))
	case "drain":
		ans = workerMsg{Op: "drained"}
		if w.plan == nil {
			err = errors.New("drain before connect")
			break
		}
		var expected int64
		for room, n := range m.Sent {
			if room < len(w.rs.perMsg) {
				expected += n * int64(w.rs.perMsg[room])
			}
		}
		w.rs.expected.Store(expected)
		w.r.drain(w.ctx, w.rs)
		ans.Received, ans.Errors, ans.Hist = w.rs.delivered.Load(), w.rs.errors.Load(), w.rs.latency.Snapshot()
		if w.rs.lastAt.Load() != 0 {
			ans.LastAt = w.rs.lastAt.Load()
		}
	case "close":
		ans = workerMsg{Op: "closed"}
		var res Result
		clientTotals(&res, w.clients)
		ans.Closed, ans.OutOfOrder = res.Closed, res.OutOfOrder
		w.end()
	default:
		ans = workerMsg{Op: m.Op, Err: "unknown op"}
	}
	if err != nil {
		ans.Err = err.Error()
	}
	return ans
}

// connect starts a run: the parent's target and run id, the level's rate and
// messages; it connects this worker's share of the clients and joins their
// rooms.
func (w *workerRun) connect(ctx context.Context, m workerMsg) (workerMsg, error) {
	w.end()
	ans := workerMsg{Op: "connected"}
	o := *w.o
	o.rate, o.messages, o.windowSet = m.Rate, m.Messages, m.WindowSet
	if o.scenario != "idle" && o.messages < 1 {
		return ans, errors.New("connect: no messages")
	}
	w.ctx, w.cancel = context.WithTimeout(ctx, o.duration)
	t := &target{kind: m.Kind, where: whereExternal, urls: m.URLs, stop: func() {}}
	if len(t.urls) == 0 {
		return ans, errors.New("connect: no node URLs")
	}
	r := newRun(&o, t, w.log)
	r.runID = m.RunID
	w.r = r
	go r.progress(w.ctx)
	var cs *ConnectStats
	var err error
	if o.scenario == "idle" {
		specs := r.idleSpecs()
		w.lo, w.hi = w.index*len(specs)/o.processes, (w.index+1)*len(specs)/o.processes
		w.clients, cs, err = r.connect(w.ctx, specs[w.lo:w.hi], nil)
		if err == nil && o.idleRooms > 0 {
			err = r.joinAll(w.ctx, w.clients)
		}
	} else {
		w.plan = r.fanoutPlan()
		n := len(w.plan.specs)
		w.lo, w.hi = w.index*n/o.processes, (w.index+1)*n/o.processes
		w.rs = newRunState(o.messages, w.plan.recipients(w.lo, w.hi))
		w.clients, cs, err = r.connectShare(w.ctx, w.plan, w.lo, w.hi, w.rs)
		w.pubs = r.publishers(w.plan, w.clients, w.lo, w.hi)
	}
	ans.Connect = cs
	if cs != nil {
		ans.ConnectHist = cs.hist.Snapshot()
	}
	return ans, err
}

// end closes the run's clients, if any.
func (w *workerRun) end() {
	if w.r != nil {
		w.r.closeAll(w.clients)
	}
	if w.cancel != nil {
		w.cancel()
	}
	*w = workerRun{o: w.o, index: w.index, log: w.log}
}
