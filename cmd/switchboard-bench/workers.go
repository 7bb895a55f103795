package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// workerPool is the load processes of a --processes run. The parent holds
// no clients: it starts the workers once per invocation and, for each run,
// drives them one phase at a time over their stdin and stdout (connect
// your share, start sending at T, drain, close), measures the servers
// itself (/stats, CPU) and merges what the workers report: counters,
// histograms. Phases are in lock step: a phase ends when every worker has
// answered, so the measured phase starts with every client connected.
//
// Each worker takes a contiguous share of the run's clients (a room's
// members are consecutive, so most rooms sit in one process with their
// publisher) and a contiguous share of --source-ips.
type workerPool struct {
	workers []*worker
}

// worker is one load process. Its stdout carries only protocol lines (one
// JSON workerMsg each); its progress and errors go to stderr.
type worker struct {
	index  int
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    chan workerMsg // closed when its stdout ends
	exited chan struct{}
}

// workerMsg is one line of the protocol, in either direction. Parent ops:
// connect, start, drain, close; each answered by connected, sent, drained,
// closed, with Err set when the phase failed.
type workerMsg struct {
	Op  string `json:"op"`
	Err string `json:"error,omitempty"`

	// connect: the run (the rest of the options are the worker's own
	// command line, the parent's).
	Kind      string   `json:"kind,omitempty"`
	URLs      []string `json:"urls,omitempty"`
	RunID     string   `json:"run_id,omitempty"`
	Rate      float64  `json:"rate,omitempty"`
	Messages  int      `json:"messages,omitempty"`
	WindowSet bool     `json:"window_set,omitempty"`

	// connected
	Connect     *ConnectStats `json:"connect,omitempty"`
	ConnectHist *histSnapshot `json:"connect_hist,omitempty"`

	// start: the schedule's origin (unix nanoseconds)
	At int64 `json:"at,omitempty"`

	// sent (worker): messages sent per room; drain (parent): the sums
	Sent      []int64 `json:"sent,omitempty"`
	Truncated bool    `json:"truncated,omitempty"`

	// drained, closed
	Received   int64         `json:"received,omitempty"`
	Errors     int64         `json:"errors,omitempty"`
	OutOfOrder int64         `json:"out_of_order,omitempty"`
	Closed     int64         `json:"closed,omitempty"`
	LastAt     int64         `json:"last_at,omitempty"`
	Hist       *histSnapshot `json:"hist,omitempty"`
}

// startWorkers starts o.processes workers with the parent's command line.
func startWorkers(o *options) (*workerPool, error) {
	p := &workerPool{}
	for i := 0; i < o.processes; i++ {
		w, err := startWorker(o, i)
		if err != nil {
			p.stop()
			return nil, fmt.Errorf("load process %d: %w", i, err)
		}
		p.workers = append(p.workers, w)
	}
	return p, nil
}

func startWorker(o *options, i int) (*worker, error) {
	args := append([]string{"worker", "--index", strconv.Itoa(i), "--"}, o.args...)
	var cmd *exec.Cmd
	if o.workerCommand != "" {
		line := o.workerCommand
		for _, a := range args {
			line += " " + shellQuote(a)
		}
		cmd = exec.Command("sh", "-c", line)
	} else {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(exe, args...)
	}
	cmd.Env = append(os.Environ(), "SBB_WORKER="+strconv.Itoa(i))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &worker{index: i, cmd: cmd, in: in, out: make(chan workerMsg, 1), exited: make(chan struct{})}
	go func() {
		defer close(w.out)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var m workerMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = workerMsg{Op: "garbled", Err: fmt.Sprintf("not a protocol line: %.200q", sc.Text())}
			}
			w.out <- m
		}
	}()
	go func() { _ = cmd.Wait(); close(w.exited) }()
	return w, nil
}

// shellQuote quotes a for sh.
func shellQuote(a string) string { return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'" }

// stop closes the workers' stdin, which ends them, and waits (bounded).
func (p *workerPool) stop() {
	for _, w := range p.workers {
		_ = w.in.Close()
	}
	for _, w := range p.workers {
		select {
		case <-w.exited:
		case <-time.After(15 * time.Second):
			_ = w.cmd.Process.Kill()
			<-w.exited
		}
	}
	p.workers = nil
}

// all sends each worker its message and waits for every answer of kind
// want. The first failure is returned after every worker has answered (or
// ctx ended), so the next phase (close) finds them all waiting.
func (p *workerPool) all(ctx context.Context, msg func(i int) workerMsg, want string) ([]workerMsg, error) {
	for i, w := range p.workers {
		b, _ := json.Marshal(msg(i))
		if _, err := w.in.Write(append(b, '\n')); err != nil {
			return nil, fmt.Errorf("load process %d: %w", i, err)
		}
	}
	out := make([]workerMsg, len(p.workers))
	var errs []error
	for i, w := range p.workers {
		m, err := w.await(ctx, want)
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		if err != nil {
			errs = append(errs, err)
		}
		out[i] = m
	}
	return out, errors.Join(errs...)
}

// await returns the worker's next answer want. Answers to a phase given up
// on (ctx ended while the worker was in it) are skipped: the worker handles
// ops in order, so the awaited one comes after them.
func (w *worker) await(ctx context.Context, want string) (workerMsg, error) {
	for {
		select {
		case m, ok := <-w.out:
			switch {
			case !ok:
				return m, fmt.Errorf("load process %d exited", w.index)
			case m.Op == "garbled":
				return m, fmt.Errorf("load process %d: %s", w.index, m.Err)
			case m.Op != want:
				continue
			case m.Err != "":
				return m, fmt.Errorf("load process %d: %s", w.index, m.Err)
			}
			return m, nil
		case <-ctx.Done():
			return workerMsg{}, ctx.Err()
		}
	}
}

// connect makes every worker connect its share of run r's clients (and
// join their rooms) and merges their connect figures.
func (p *workerPool) connect(ctx context.Context, r *run) (*ConnectStats, error) {
	r.setPhase("connecting (load processes)", nil)
	ms, err := p.all(ctx, func(int) workerMsg {
		return workerMsg{Op: "connect", Kind: r.t.kind, URLs: r.t.urls, RunID: r.runID, Rate: r.o.rate, Messages: r.o.messages, WindowSet: r.o.windowSet}
	}, "connected")
	cs := &ConnectStats{}
	var h histogram
	done := 0
	for _, m := range ms {
		if c := m.Connect; c != nil {
			cs.Seconds = max(cs.Seconds, c.Seconds)
			cs.Failed += c.Failed
			done += int(c.Latency.N)
		}
		h.Merge(m.ConnectHist)
	}
	if cs.Seconds > 0 {
		cs.PerSec = float64(done) / cs.Seconds
	}
	cs.Latency = h.Summary()
	return cs, err
}

// close makes every worker close its clients and adds up what they saw
// before closing (connections the server closed, frames out of order).
// It runs even after ctx ended, bounded by its own time.
func (p *workerPool) close(r *run, res *Result) {
	r.setPhase("closing (load processes)", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*r.o.timeout+30*time.Second)
	defer cancel()
	ms, err := p.all(ctx, func(int) workerMsg { return workerMsg{Op: "close"} }, "closed")
	for _, m := range ms {
		res.Closed += m.Closed
		res.OutOfOrder += m.OutOfOrder
	}
	if err != nil && !r.o.quiet {
		fmt.Fprintf(r.log, "closing the load processes' clients: %v\n", err)
	}
}

// remoteFanout runs the room or broadcast scenario with the clients in the
// workers: the parent starts the schedule, sums what was sent and merges
// the deliveries.
func (r *run) remoteFanout(ctx context.Context) (*Result, error) {
	p := r.fanoutPlan()
	res := r.result(len(p.specs))
	res.Processes = len(r.pool.workers)
	cs, err := r.pool.connect(ctx, r)
	res.Connect = cs
	defer r.pool.close(r, res)
	if err != nil {
		return res, err
	}
	r.quiesce(ctx, 30*time.Second)
	shards := r.redisBefore(ctx)
	r.startCPU()
	// Every worker starts the same schedule at the same instant, a little
	// ahead so that the start message reaches them all before it.
	start := time.Now().Add(100 * time.Millisecond)
	r.setPhase("publishing (load processes)", nil)
	ms, err := r.pool.all(ctx, func(int) workerMsg { return workerMsg{Op: "start", At: start.UnixNano()} }, "sent")
	if err != nil {
		return res, err
	}
	sent := make([]int64, len(p.publisher))
	for _, m := range ms {
		for room, n := range m.Sent {
			if room < len(sent) {
				sent[room] += n
			}
		}
		res.Truncated = res.Truncated || m.Truncated
	}
	r.setPhase("draining (load processes)", nil)
	ms, err = r.pool.all(ctx, func(int) workerMsg { return workerMsg{Op: "drain", Sent: sent} }, "drained")
	if err != nil {
		return res, err
	}
	var lat histogram
	var received, last int64
	for _, m := range ms {
		received += m.Received
		res.Errors += m.Errors
		last = max(last, m.LastAt)
		lat.Merge(m.Hist)
	}
	var expected int64
	for room, n := range p.total() {
		expected += sent[room] * int64(n)
	}
	end := start
	if last > 0 {
		end = time.Unix(0, last)
	}
	res.Sent = sum(sent)
	finishFanout(res, expected, received, start, end, &lat)
	res.ServerCPUPerDelivery = r.cpuPerDelivery(received)
	r.redisAfter(ctx, shards, res)
	return res, nil
}
