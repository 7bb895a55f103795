package main

import (
	"context"
	"fmt"
	"time"
)

// fault is one kind of failure the suite injects under traffic. inject
// returns once the fault is over (a stopped process started again) and
// checks what supervision promises for it; the round then checks the rest.
type fault struct {
	name       string
	needsRedis bool
	needsNodes int
	// skipOn, when set, says why the fault cannot run on a Redis topology
	// ("" when it can).
	skipOn func(topology string) string
	inject func(ctx context.Context, s *suite, round int) faultResult
}

type faultResult struct {
	detail     string
	count      int           // faults of this kind injected
	recovered  time.Duration // fault start to recovery; zero: measured by the round
	violations []string
}

func (r *faultResult) violate(format string, args ...any) {
	r.violations = append(r.violations, fmt.Sprintf(format, args...))
}

var faults = []*fault{
	{name: "session-stop", inject: killSessions(false)},
	{name: "session-panic", inject: killSessions(true)},
	{name: "room-stop", inject: killRooms(false)},
	{name: "room-panic", inject: killRooms(true)},
	{name: "hub-panic", inject: panicHub},
	{name: "subscription-kill", needsRedis: true, inject: killSubscriptions},
	{name: "redis-pause", needsRedis: true, inject: pauseRedis},
	{name: "redis-pubsub-kill", needsRedis: true, inject: killPubSub},
	{name: "redis-stop", needsRedis: true, skipOn: standaloneOnly, inject: stopRedis(false)},
	{name: "redis-crash", needsRedis: true, skipOn: standaloneOnly, inject: stopRedis(true)},
	{name: "sentinel-failover", needsRedis: true, skipOn: sentinelOnly, inject: sentinelFailover},
	{name: "cluster-failover", needsRedis: true, skipOn: clusterOnly, inject: clusterFailover},
	{name: "node-kill", inject: killNode},
	{name: "node-term", inject: termNode},
	{name: "rolling-deploy", needsNodes: 2, inject: rollingDeploy},
	{name: "slow-reader", inject: slowReader},
	{name: "vanish", inject: vanish},
	{name: "client-drop", inject: dropClients},
	{name: "hostile-frames", inject: hostileFrames},
	{name: "mass-exit", needsRedis: true, skipOn: notOnCluster, inject: massExit},
}

var faultByName = func() map[string]*fault {
	m := map[string]*fault{}
	for _, f := range faults {
		m[f.name] = f
	}
	return m
}()

func faultNames() []string {
	var out []string
	for _, f := range faults {
		out = append(out, f.name)
	}
	return out
}

// burst is how many actors one actor-fault round kills: 2 in the short
// form, 1 to 3 in the long one.
func (s *suite) burst() int {
	if s.cfg.Duration == 0 {
		return 2
	}
	return 1 + s.rng.IntN(3)
}

func (s *suite) upNodes() []*nodeProc {
	var out []*nodeProc
	for _, n := range s.nodes {
		if n.isUp() {
			out = append(out, n)
		}
	}
	return out
}

func (s *suite) randomNode() *nodeProc {
	up := s.upNodes()
	return up[s.rng.IntN(len(up))]
}

// clientsOn returns the ready clients connected to node n.
func (s *suite) clientsOn(n *nodeProc) []*client {
	var out []*client
	for _, c := range s.clients {
		if _, cn, ready := c.state(); ready && cn.node == n.idx {
			out = append(out, c)
		}
	}
	return out
}

// waitFor polls cond every 20 ms until it holds or within passes; it
// returns how long it took and whether cond held.
func waitFor(ctx context.Context, within time.Duration, cond func() bool) (time.Duration, bool) {
	t0 := time.Now()
	for {
		if cond() {
			return time.Since(t0), true
		}
		if time.Since(t0) > within || ctx.Err() != nil {
			return time.Since(t0), false
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}
