package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Result is the outcome of one scenario run against one target.
type Result struct {
	Scenario string `json:"scenario"`
	Server   string `json:"server"` // switchboard or baseline
	Where    string `json:"where"`  // external, inprocess or child
	Nodes    int    `json:"nodes"`
	Clients  int    `json:"clients"`

	Connect *ConnectStats `json:"connect,omitempty"`

	Sent             int64    `json:"sent,omitempty"`
	Expected         int64    `json:"expected,omitempty"`
	Received         int64    `json:"received,omitempty"`
	Lost             int64    `json:"lost"`
	Errors           int64    `json:"errors"`
	Closed           int64    `json:"closed"`
	OutOfOrder       int64    `json:"out_of_order"`
	Truncated        bool     `json:"truncated,omitempty"`
	Seconds          float64  `json:"seconds,omitempty"`
	DeliveriesPerSec float64  `json:"deliveries_per_sec,omitempty"`
	Latency          *Latency `json:"latency,omitempty"`
	// ServerCPUPerDelivery is the server process's CPU time per delivery, in
	// microseconds; only when the tool runs the server in a child process.
	ServerCPUPerDelivery float64 `json:"server_cpu_us_per_delivery,omitempty"`
	// Level and Offered name the --offered load of the run (deliveries/s).
	Level   string  `json:"level,omitempty"`
	Offered float64 `json:"offered_deliveries_per_sec,omitempty"`
	// Processes is how many load processes held the clients.
	Processes int `json:"processes,omitempty"`

	Idle     *IdleStats     `json:"idle,omitempty"`
	Churn    *ChurnStats    `json:"churn,omitempty"`
	Recovery *RecoveryStats `json:"recovery,omitempty"`
	Presence *PresenceStats `json:"presence,omitempty"`
	// Redis is what the shared Redis (or each cluster primary) did during
	// a room or broadcast run.
	Redis *RedisShards `json:"redis,omitempty"`
}

// ConnectStats describe the connect phase.
type ConnectStats struct {
	Seconds float64    `json:"seconds"`
	PerSec  float64    `json:"per_sec"`
	Failed  int        `json:"failed"`
	Latency Latency    `json:"latency"`
	hist    *histogram // the dial-to-welcome times, for merging across load processes
}

// run is one scenario run against one target.
type run struct {
	o     *options
	t     *target
	log   io.Writer // progress
	runID string
	cpu0  time.Duration
	phase atomic.Pointer[phaseInfo] // written by the scenario, read by progress
	// pool holds the clients when they are spread over load processes
	// (--processes); nil when this process holds them.
	pool *workerPool
}

// phaseInfo names what a run is doing; detail, if set, adds live counts.
type phaseInfo struct {
	name   string
	detail func() string
}

func newRun(o *options, t *target, log io.Writer) *run {
	r := &run{o: o, t: t, log: log, runID: strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
	r.setPhase("starting", nil)
	return r
}

func (r *run) setPhase(name string, detail func() string) {
	r.phase.Store(&phaseInfo{name: name, detail: detail})
}

// progress prints the phase every second until ctx ends.
func (r *run) progress(ctx context.Context) {
	if r.o.quiet {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p := r.phase.Load()
			d := ""
			if p.detail != nil {
				d = p.detail()
			}
			fmt.Fprintf(r.log, "[%s %s %4.0fs] %s %s\n", r.t.kind, r.o.scenario, time.Since(start).Seconds(), p.name, d)
		}
	}
}

// result starts a Result with the run's identity.
func (r *run) result(clients int) *Result {
	return &Result{Scenario: r.o.scenario, Server: r.t.kind, Where: r.t.where, Nodes: len(r.t.urls), Clients: clients}
}

// clientSpec says where client i connects and as whom.
type clientSpec struct {
	user string
	node int
	room int
}

// userID names client i, sharing ids when --users is set.
func (r *run) userID(i int) string {
	if r.o.users > 0 {
		i %= r.o.users
	}
	return "b" + r.runID + "-" + strconv.Itoa(i)
}

// roomName is the name of room i in this run.
func (r *run) roomName(i int) string { return "bench-" + r.runID + "-" + strconv.Itoa(i) }

// connect opens every client, dialWorkers at a time, each waiting for its
// welcome. A failed dial is counted; connect returns an error only when
// every dial failed or ctx ended.
func (r *run) connect(ctx context.Context, specs []clientSpec, rs *runState) ([]*loadClient, *ConnectStats, error) {
	clients := make([]*loadClient, len(specs))
	lat := new(histogram)
	var done, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	r.setPhase("connecting", func() string { return fmt.Sprintf("%d/%d (%d failed)", done.Load(), len(specs), failed.Load()) })
	start := time.Now()
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for w := 0; w < min(r.o.dialWorkers, len(specs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(specs) || ctx.Err() != nil {
					return
				}
				s := specs[i]
				url, err := wsURL(r.t.urls[s.node], s.user)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				c := &loadClient{index: i, user: s.user, room: s.room, run: rs, trackPos: r.o.scenario == "recover"}
				do := dialOptions{url: url, timeout: r.o.timeout, readBuf: 4096}
				if n := len(r.o.sourceIPs); n > 0 {
					do.localIP = r.o.sourceIPs[i%n]
				}
				t0 := time.Now()
				if err := dialClient(ctx, do, c); err != nil {
					failed.Add(1)
					err = fmt.Errorf("client %d: %w", i, err)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				lat.Record(time.Since(t0))
				clients[i] = c
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	cs := &ConnectStats{Seconds: el.Seconds(), PerSec: float64(done.Load()) / el.Seconds(), Failed: int(failed.Load()), Latency: lat.Summary(), hist: lat}
	if p := firstErr.Load(); p != nil && !r.o.quiet {
		fmt.Fprintf(r.log, "connect: %d failed; first: %v\n", failed.Load(), *p)
	}
	if done.Load() == 0 {
		if p := firstErr.Load(); p != nil {
			return clients, cs, *p
		}
		return clients, cs, errors.Join(ctx.Err(), errors.New("no client connected"))
	}
	return clients, cs, ctx.Err()
}

// closeAll closes every client, dialWorkers at a time.
func (r *run) closeAll(clients []*loadClient) {
	r.setPhase("closing", nil)
	ch := make(chan *loadClient)
	var wg sync.WaitGroup
	for w := 0; w < r.o.dialWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				c.close(2 * time.Second)
			}
		}()
	}
	for _, c := range clients {
		if c != nil {
			ch <- c
		}
	}
	close(ch)
	wg.Wait()
}

// joinAll makes every client join its room (waiting for the ack).
func (r *run) joinAll(ctx context.Context, clients []*loadClient) error {
	var done atomic.Int64
	r.setPhase("joining", func() string { return fmt.Sprintf("%d/%d", done.Load(), len(clients)) })
	ch := make(chan *loadClient)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for w := 0; w < r.o.dialWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				if err := r.join(ctx, c, true); err != nil {
					select {
					case errc <- fmt.Errorf("client %d: join: %w", c.index, err):
					default:
					}
					continue
				}
				done.Add(1)
			}
		}()
	}
	for _, c := range clients {
		if c != nil && c.room >= 0 {
			ch <- c
		}
	}
	close(ch)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// join sends join_room (or leave_room) with an id and waits for its ack.
func (r *run) join(ctx context.Context, c *loadClient, in bool) error {
	typ := "leave_room"
	if in {
		typ = "join_room"
	}
	id := typ[:1] + strconv.Itoa(c.index)
	msg := `{"type":"` + typ + `","room":"` + r.roomName(c.room) + `","id":"` + id + `"}`
	if err := c.send([]byte(msg)); err != nil {
		return err
	}
	_, err := c.await(ctx, r.o.timeout, "ack", id)
	return err
}

// quiesce waits until the nodes have stopped sending (their messages_out
// counters hold still for 300 ms), so that a measured phase does not start
// while presence events of the setup are still being delivered.
func (r *run) quiesce(ctx context.Context, within time.Duration) bool {
	r.setPhase("settling", nil)
	deadline := time.Now().Add(within)
	last, stable := int64(-1), 0
	for time.Now().Before(deadline) && stable < 3 {
		st, err := sumStats(ctx, r.t.urls)
		if err != nil {
			return false
		}
		if st.MessagesOut == last {
			stable++
		} else {
			stable = 0
		}
		last = st.MessagesOut
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return stable >= 3
}

// startCPU notes the server's CPU time before a measured phase.
func (r *run) startCPU() {
	if r.t.pid != 0 {
		r.cpu0, _ = cpuTime(r.t.pid)
	}
}

// cpuPerDelivery is the server CPU per delivery since startCPU, in microseconds.
func (r *run) cpuPerDelivery(deliveries int64) float64 {
	if r.t.pid == 0 || deliveries == 0 {
		return 0
	}
	c, err := cpuTime(r.t.pid)
	if err != nil {
		return 0
	}
	return float64(c-r.cpu0) / float64(time.Microsecond) / float64(deliveries)
}

// clientTotals adds up the per-client counters into res.
func clientTotals(res *Result, clients []*loadClient) {
	for _, c := range clients {
		if c == nil {
			continue
		}
		res.OutOfOrder += c.outOfOrder.Load()
		if c.closed.Load() {
			res.Closed++
		}
	}
}

// median returns the median and range of xs.
func median(xs []float64) (med, lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2], s[0], s[len(s)-1]
}
