package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxPendingBytes is the nodes' outbound budget per connection: well above
// any burst a reading client gets (the flood sends 128 KiB at a time), small
// enough that a slow reader is cut after a few MiB.
const maxPendingBytes = 1 << 20

// suite is one run: the processes, the clients and the ledger. The
// controller goroutine (run) owns everything not marked otherwise.
type suite struct {
	cfg      config
	rng      *rand.Rand
	prefix   string        // broker channel prefix of this run
	redis    redisTopology // nil with NoRedis
	nodes    []*nodeProc
	clients  []*client
	ledger   *ledger
	presence presenceLog
	traffic  atomic.Bool  // read by client goroutines
	connSeq  atomic.Int64 // connection numbering, by read goroutines
	specials atomic.Int64 // special client numbering

	base         baseline
	lastNodeKill time.Time // when a node was last SIGKILLed (its presence entries linger until reaped)
	failovers    int       // sentinel or cluster failovers so far: their kind goes in turns
	report       report
	wg           sync.WaitGroup
	stopCli      context.CancelFunc
}

// run executes the whole suite and returns its report. An error means the
// suite could not run (build, start); violations are in the report.
func run(ctx context.Context, cfg config) (*report, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	s := &suite{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed))}
	s.prefix = fmt.Sprintf("chaos%d", s.rng.IntN(1e6))
	s.ledger = newLedger(250*time.Millisecond, time.Second, 500*time.Millisecond)
	if cfg.HistorySize > 0 {
		s.ledger.enableRecovery(cfg.HistorySize)
	}
	s.report = report{Faults: map[string]int{}, Recovery: map[string]time.Duration{}, Skipped: map[string]string{}, Started: time.Now()}

	dir := cfg.WorkDir
	removeDir := false
	if dir == "" {
		d, err := os.MkdirTemp("", "switchboard-chaos-")
		if err != nil {
			return nil, err
		}
		dir, removeDir = d, true
	}
	s.report.LogDir = dir
	defer func() {
		if removeDir && len(s.report.Violations) == 0 {
			_ = os.RemoveAll(dir)
		}
	}()
	if err := s.start(ctx, dir); err != nil {
		s.teardown()
		return nil, err
	}
	topo := "in-process broker"
	if s.redis != nil {
		topo = "redis " + s.redis.kind()
	}
	s.printf("chaos: %d nodes, %d clients, %d rooms, %s, seed %d, prefix %s, logs in %s\n",
		cfg.Nodes, cfg.Clients, cfg.Rooms, topo, cfg.Seed, s.prefix, dir)
	s.rounds(ctx)
	s.finish(ctx)
	s.report.Took = time.Since(s.report.Started)
	return &s.report, nil
}

func (s *suite) printf(format string, args ...any) { fmt.Fprintf(s.cfg.Out, format, args...) }

// start builds and starts Redis, the nodes and the clients, and takes the
// baseline.
func (s *suite) start(ctx context.Context, dir string) error {
	bin := s.cfg.NodeBin
	if bin == "" {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		b, err := buildNode(bctx, dir, s.cfg.Race)
		if err != nil {
			return err
		}
		bin = b
	}
	args := []string{
		"--enable-kill", "--pprof", "--log-format", "json", "--channel-prefix", s.prefix,
		"--ping-interval", s.cfg.PingInterval.String(), "--pong-timeout", s.cfg.PongTimeout.String(),
		"--drain-timeout", s.cfg.DrainTimeout.String(), "--max-pending-bytes", strconv.Itoa(maxPendingBytes), "--rate-limit", "-1",
		"--history-size", strconv.Itoa(max(s.cfg.HistorySize, 0)),
	}
	if !s.cfg.NoRedis {
		t, err := newTopology(ctx, s.cfg.RedisTopology, dir, s.prefix, bin)
		if err != nil {
			return err
		}
		s.redis = t
		if err := t.start(ctx); err != nil {
			return err
		}
		args = append(args, t.nodeArgs()...)
	}
	for i := 0; i < s.cfg.Nodes; i++ {
		n, err := newNodeProc(i, bin, dir, args)
		if err != nil {
			return err
		}
		s.nodes = append(s.nodes, n)
		if err := n.start(ctx, 15*time.Second); err != nil {
			return err
		}
	}
	s.base.init()
	for _, n := range s.nodes {
		s.base.empty[n.nodeID()] = s.quietGoroutines(n)
		n.setOpen(true)
	}
	cctx, cancel := context.WithCancel(context.Background())
	s.stopCli = cancel
	for i := 0; i < s.cfg.Clients; i++ {
		s.clients = append(s.clients, newClient(s, i))
	}
	for _, c := range s.clients {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); c.run(cctx) }()
	}
	if err := s.waitHome(ctx, 20*time.Second); err != nil {
		return err
	}
	if v := s.checkQuiet(ctx, 0); len(v) > 0 {
		return fmt.Errorf("the cluster is not consistent before any fault: %s", strings.Join(v, "; "))
	}
	return nil
}

// pickNode is the node a client should connect to: its home if up, else the
// next one up; never avoid (-1: none) while another is up. Called by client
// goroutines.
func (s *suite) pickNode(home, avoid int) *nodeProc {
	var fallback *nodeProc
	for i := 0; i < len(s.nodes); i++ {
		if n := s.nodes[(home+i)%len(s.nodes)]; n.accepting() {
			if n.idx != avoid {
				return n
			}
			fallback = n
		}
	}
	return fallback
}

// waitHome moves every client back to its home node and waits until all
// are connected there and in their rooms.
func (s *suite) waitHome(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		notHome := 0
		for _, c := range s.clients {
			c.mu.Lock()
			if !c.ready || c.cur.node != c.home {
				notHome++
				if c.ready {
					c.moveHome = true
				}
			}
			c.mu.Unlock()
		}
		if notHome == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d clients not back home and ready within %v", notHome, within)
		}
		sleepCtx(ctx, 20*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// waitReady waits until every client is connected (anywhere) and in its rooms.
func (s *suite) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		n := 0
		for _, c := range s.clients {
			if _, _, ready := c.state(); !ready {
				n++
			}
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d clients not ready within %v", n, within)
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// quiesce waits until every live sender has its replies and copies stop
// arriving, bounded.
func (s *suite) quiesce(ctx context.Context) {
	deadline := time.Now().Add(8 * time.Second)
	for s.ledger.pendingFromLive() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		sleepCtx(ctx, 20*time.Millisecond)
	}
	last, stableSince := -1, time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		n := s.ledger.copies()
		if n != last {
			last, stableSince = n, time.Now()
		} else if time.Since(stableSince) > 500*time.Millisecond {
			return
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// rounds injects faults until the duration elapses (or, in the short
// form, each kind once per deck, cfg.Rounds decks).
func (s *suite) rounds(ctx context.Context) {
	kinds := s.enabledFaults()
	if len(kinds) == 0 {
		return
	}
	deadline := time.Now().Add(s.cfg.Duration)
	var deck []*fault
	decks := 0
	for i := 1; ctx.Err() == nil; i++ {
		if len(deck) == 0 {
			if s.cfg.Duration == 0 && decks == s.cfg.Rounds {
				return
			}
			decks++
			deck = append(deck, kinds...)
			if s.cfg.Duration > 0 {
				s.rng.Shuffle(len(deck), func(a, b int) { deck[a], deck[b] = deck[b], deck[a] })
			}
		}
		f := deck[0]
		deck = deck[1:]
		s.round(ctx, i, f)
		if s.cfg.Duration > 0 && time.Now().After(deadline) {
			return
		}
	}
}

// enabledFaults are the kinds this run injects. A kind the topology cannot
// take is skipped, with its reason in the report.
func (s *suite) enabledFaults() []*fault {
	var out []*fault
	for _, f := range faults {
		if f.needsRedis && s.cfg.NoRedis || f.needsNodes > s.cfg.Nodes {
			continue
		}
		if len(s.cfg.Faults) > 0 && !contains(s.cfg.Faults, f.name) {
			continue
		}
		if s.redis != nil && f.skipOn != nil {
			if why := f.skipOn(s.redis.kind()); why != "" {
				s.report.Skipped[f.name] = why
				s.printf("skipping %s on redis %s: %s\n", f.name, s.redis.kind(), why)
				continue
			}
		}
		out = append(out, f)
	}
	return out
}

// round is one fault under traffic, then quiet checks.
func (s *suite) round(ctx context.Context, i int, f *fault) {
	s.report.Rounds = i
	nviol := len(s.report.Violations)
	s.traffic.Store(true)
	sleepCtx(ctx, s.phase())
	t0 := time.Now()
	res := f.inject(ctx, s, i)
	if err := s.waitReady(ctx, 20*time.Second); err != nil {
		s.report.violate(i, "%s: %v", f.name, err)
	}
	if res.recovered == 0 {
		res.recovered = time.Since(t0)
	}
	sleepCtx(ctx, s.phase())
	s.traffic.Store(false)
	s.quiesce(ctx)
	t := s.ledger.evaluate()
	s.report.Totals.add(&t)
	s.report.Faults[f.name] += res.count
	if res.recovered > s.report.Recovery[f.name] {
		s.report.Recovery[f.name] = res.recovered
	}
	for _, v := range res.violations {
		s.report.violate(i, "%s: %s", f.name, v)
	}
	if t.Lost > 0 || t.Unanswered > 0 {
		s.report.violate(i, "%s: %d lost, %d unanswered: %s", f.name, t.Lost, t.Unanswered, strings.Join(t.Examples, "; "))
	}
	if t.streamProblems() > 0 {
		s.report.violate(i, "%s: room streams: %d silent gaps, %d repeated or reordered, %d duplicates, %d copies at another offset, %d unexplained recovered:false, %d acks without recovered: %s",
			f.name, t.StreamGaps, t.StreamRepeats, t.RoomDups, t.OffsetMismatch, t.RecoveredFalse[lostOther], t.NoRecoveredFlag, strings.Join(t.StreamExamples, "; "))
	}
	closes := s.ledger.closes()
	if n := closes[1013]; n > 0 {
		s.report.violate(i, "%s: %d regular clients were closed as slow consumers (1013)", f.name, n)
	}
	if n := closes[1008] + closes[1009]; n > 0 {
		s.report.violate(i, "%s: %d regular clients were closed for a policy or size violation", f.name, n)
	}
	if err := s.waitHome(ctx, 20*time.Second); err != nil {
		s.report.violate(i, "%s: %v", f.name, err)
	}
	s.ledger.closes() // moving clients home closes their connections normally
	for _, v := range s.checkQuiet(ctx, i) {
		s.report.violate(i, "%s: after the fault: %s", f.name, v)
	}
	status := "ok"
	if n := len(s.report.Violations) - nviol; n > 0 {
		status = fmt.Sprintf("%d VIOLATIONS", n)
	}
	s.printf("round %3d %-19s %-42s recovered %-7v | sent %4d acked %4d refused %3d unconfirmed %2d | pairs %5d delivered %5d excused %4d lost %d dups %d | since %d/%d false %s | closes %s | %s\n",
		i, f.name, res.detail, res.recovered.Round(time.Millisecond), t.Sent, t.Acked, t.Refused, t.Unconfirmed,
		t.Expected, t.Delivered, t.Excused, t.Lost, t.Dups, t.Recovered, t.RecoveredChats, countsString(t.RecoveredFalse), closesString(closes), status)
	for _, v := range s.report.Violations[nviol:] {
		s.printf("    ! %s\n", v)
	}
}

// phase is how long traffic runs before a fault and after its recovery:
// 500 ms in the short form, 0.5 to 2 s in the long one.
func (s *suite) phase() time.Duration {
	if s.cfg.Duration == 0 {
		return 500 * time.Millisecond
	}
	return time.Duration(500+s.rng.IntN(1500)) * time.Millisecond
}

// finish stops traffic, closes every client, checks that each node is back
// to its empty baseline, drains every node and stops Redis.
func (s *suite) finish(ctx context.Context) {
	s.traffic.Store(false)
	s.stopCli()
	s.wg.Wait()
	i := s.report.Rounds + 1
	for _, v := range s.checkEmpty(ctx) {
		s.report.violate(i, "after the last client left: %s", v)
	}
	for _, n := range s.nodes {
		if !n.isUp() {
			continue
		}
		for _, p := range n.logProblems() {
			s.report.violate(i, "%s", p)
		}
		if code, took := n.terminate(s.cfg.DrainTimeout + 2*time.Second); code != 0 {
			s.report.violate(i, "%s: exit code %d after SIGTERM (%v)", n.nodeID(), code, took)
		}
		for _, p := range n.logProblems() {
			s.report.violate(i, "%s", p)
		}
	}
	s.teardown()
}

func (s *suite) teardown() {
	if s.stopCli != nil {
		s.stopCli()
		s.wg.Wait()
	}
	for _, n := range s.nodes {
		n.kill()
	}
	if s.redis != nil {
		s.redis.close()
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
