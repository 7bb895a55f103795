package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// IdleStats describe the memory the nodes hold per idle connection.
type IdleStats struct {
	Connections int64  `json:"connections"` // as reported by the nodes
	Rooms       int64  `json:"rooms"`       // rooms the nodes held during the hold (--idle-rooms)
	RSSBefore   uint64 `json:"rss_before_bytes"`
	RSSAfter    uint64 `json:"rss_after_bytes"`
	// RSSPerConn is (after - before) / connections, in KiB.
	RSSPerConn   float64 `json:"rss_per_conn_kib"`
	HeapPerConn  float64 `json:"heap_per_conn_kib"`
	StackPerConn float64 `json:"stack_per_conn_kib"`
	// GoroutinesPerConn is the node's goroutines per connection.
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	// AfterGC is true when the samples were taken right after the node
	// collected garbage and returned it to the OS (servers this tool starts).
	AfterGC bool `json:"after_gc"`
	// IncludesClients is true when the clients run in the same process as
	// the node (--inprocess without --spawn): the figure is then not the node's.
	IncludesClients bool `json:"includes_clients"`
	// SettledSeconds is from the first dial until the nodes' frame count
	// stopped moving: the connection storm including the events it caused
	// (user_connected to every session with connection events on). Settled
	// is false when that did not happen within the run's time (--duration
	// less the hold and a margin); the memory is then sampled anyway.
	SettledSeconds float64 `json:"settled_seconds"`
	Settled        bool    `json:"settled"`
	// StormCPUPerConn is the node process's CPU from the first dial until
	// settled, per connection, in microseconds (child process only).
	StormCPUPerConn float64 `json:"storm_cpu_per_conn_us,omitempty"`
	// FramesOut is the frames the nodes sent from the first dial until
	// settled (or until the wait gave up): welcomes, plus N(N-1)/2
	// user_connected for N users with connection events on.
	FramesOut int64 `json:"frames_out"`
}

// idleSpecs are the idle scenario's clients, spread over the nodes, each
// in one of --idle-rooms rooms if set.
func (r *run) idleSpecs() []clientSpec {
	n := len(r.t.urls)
	specs := make([]clientSpec, r.o.clients)
	for i := range specs {
		specs[i] = clientSpec{user: r.userID(i), node: i % n, room: -1}
		if r.o.idleRooms > 0 {
			specs[i].room = i % r.o.idleRooms
		}
	}
	return specs
}

// idleScenario holds C connections for --hold and reports the node's memory
// per connection from /stats (rss_bytes) sampled before and after.
func (r *run) idleScenario(ctx context.Context) (*Result, error) {
	o := r.o
	specs := r.idleSpecs()
	res := r.result(len(specs))
	gc := r.gcAll(ctx)
	before, err := sumStats(ctx, r.t.urls)
	if err != nil {
		return res, err
	}
	r.startCPU()
	start := time.Now()
	var clients []*loadClient
	var cs *ConnectStats
	if r.pool != nil {
		res.Processes = len(r.pool.workers)
		cs, err = r.pool.connect(ctx, r)
		defer r.pool.close(r, res)
	} else {
		clients, cs, err = r.connect(ctx, specs, nil)
		defer r.closeAll(clients)
		if err == nil && o.idleRooms > 0 {
			err = r.joinAll(ctx, clients)
		}
	}
	res.Connect = cs
	if err != nil {
		return res, err
	}
	// A storm with connection events on keeps the nodes busy long after the
	// last welcome: wait for it while the run's time allows.
	within := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		within = max(within, time.Until(dl)-o.hold-20*time.Second)
	}
	settled := r.quiesce(ctx, within)
	settledSec := time.Since(start).Seconds()
	stormCPU := r.cpuPerDelivery(int64(o.clients - cs.Failed))
	var framesOut int64
	if mid, err := sumStats(ctx, r.t.urls); err == nil {
		framesOut = mid.MessagesOut - before.MessagesOut
	}
	r.setPhase("holding", nil)
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(o.hold):
	}
	r.gcAll(ctx)
	after, err := sumStats(ctx, r.t.urls)
	if err != nil {
		return res, err
	}
	conns := after.LocalConnections - before.LocalConnections
	st := &IdleStats{Connections: conns, Rooms: after.Rooms - before.Rooms, RSSBefore: before.RSSBytes, RSSAfter: after.RSSBytes, AfterGC: gc,
		IncludesClients: r.t.where == whereInprocess, SettledSeconds: settledSec, Settled: settled, StormCPUPerConn: stormCPU, FramesOut: framesOut}
	if conns > 0 {
		st.RSSPerConn = (float64(after.RSSBytes) - float64(before.RSSBytes)) / float64(conns) / 1024
		st.HeapPerConn = (float64(after.HeapBytes) - float64(before.HeapBytes)) / float64(conns) / 1024
		st.StackPerConn = (float64(after.StackBytes) - float64(before.StackBytes)) / float64(conns) / 1024
		st.GoroutinesPerConn = float64(after.Goroutines-before.Goroutines) / float64(conns)
	}
	res.Idle = st
	res.Lost = int64(o.clients-cs.Failed) - conns
	clientTotals(res, clients)
	return res, nil
}

// gcAll asks every node to collect garbage; true if all of them did.
func (r *run) gcAll(ctx context.Context) bool {
	ok := true
	for _, u := range r.t.urls {
		ok = requestGC(ctx, u) && ok
	}
	return ok
}

// ChurnStats describe the churn scenario.
type ChurnStats struct {
	Cycles  int64   `json:"cycles"`
	Failed  int64   `json:"failed"`
	PerSec  float64 `json:"cycles_per_sec"`
	Latency Latency `json:"cycle_latency"`
	// Leaked is the nodes' connection count after the run minus before it
	// (0 when every session was cleaned up).
	Leaked int64 `json:"leaked"`
}

// churnScenario runs --cycles connect/join/leave/disconnect cycles,
// --concurrency at a time, and checks that the nodes end with the
// connections they started with.
func (r *run) churnScenario(ctx context.Context) (*Result, error) {
	o := r.o
	n := len(r.t.urls)
	res := r.result(o.concurrency)
	before, err := sumStats(ctx, r.t.urls)
	if err != nil {
		return res, err
	}
	var lat histogram
	var next, done, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	r.setPhase("churning", func() string { return fmt.Sprintf("%d/%d cycles (%d failed)", done.Load(), o.cycles, failed.Load()) })
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= o.cycles {
					return
				}
				t0 := time.Now()
				if err := r.cycle(ctx, i, i%n, w); err != nil {
					failed.Add(1)
					err = fmt.Errorf("cycle %d: %w", i, err)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				lat.Record(time.Since(t0))
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if p := firstErr.Load(); p != nil && !o.quiet {
		fmt.Fprintf(r.log, "churn: %d failed; first: %v\n", failed.Load(), *p)
	}
	r.setPhase("checking cleanup", nil)
	left, err := waitConnections(ctx, r.t.urls, before.LocalConnections, 10*time.Second)
	if err != nil {
		return res, err
	}
	res.Churn = &ChurnStats{Cycles: done.Load(), Failed: failed.Load(), PerSec: float64(done.Load()) / el.Seconds(),
		Latency: lat.Summary(), Leaked: left - before.LocalConnections}
	res.Seconds = el.Seconds()
	res.Lost = failed.Load()
	return res, nil
}

// cycle is one churn cycle: connect (welcome), join a room (ack), leave it
// (ack), close. Worker w uses its own room, so rooms are created and stopped
// as their only member comes and goes.
func (r *run) cycle(ctx context.Context, i, node, w int) error {
	url, err := wsURL(r.t.urls[node], r.userID(i))
	if err != nil {
		return err
	}
	c := &loadClient{index: i, room: w}
	do := dialOptions{url: url, timeout: r.o.timeout, readBuf: 4096}
	if n := len(r.o.sourceIPs); n > 0 {
		do.localIP = r.o.sourceIPs[i%n]
	}
	if err := dialClient(ctx, do, c); err != nil {
		return err
	}
	defer c.close(2 * time.Second)
	if err := r.join(ctx, c, true); err != nil {
		return err
	}
	return r.join(ctx, c, false)
}
