package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Node faults: SIGKILL and drain (SIGTERM), each followed by a restart,
// and a rolling deploy (every node drained and restarted in turn).

// killNode SIGKILLs a node and starts it again. Its clients are dead at
// once and reconnect elsewhere; what its clients had sent but the node had
// not yet handed to Redis is lost (at-most-once).
func killNode(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	n := s.randomNode()
	old := n.nodeID()
	t0 := time.Now()
	for _, c := range s.clientsOn(n) {
		_, cn, _ := c.state()
		s.ledger.markDead(cn, t0)
		s.reconnectJitter(c)
	}
	s.ledger.openWindow(&window{fault: "node-kill", scope: scopeFromNode, node: n.idx, from: t0, to: t0})
	for _, p := range n.logProblems() {
		res.violate("%s", p)
	}
	n.kill()
	s.lastNodeKill = time.Now()
	res.count++
	sleepCtx(ctx, 700*time.Millisecond)
	if err := s.restartNode(ctx, n); err != nil {
		res.violate("%v", err)
	}
	res.recovered = time.Since(t0)
	res.detail = fmt.Sprintf("SIGKILL %s, back as %s", old, n.nodeID())
	return res
}

// termNode drains a node with SIGTERM: its clients get 1001, it exits 0
// within --drain-timeout, and what it acknowledged reaches the other nodes
// (no fault window: nothing may be lost). Its clients rejoin their rooms
// elsewhere with since and are owed what was sent meanwhile.
func termNode(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	res.detail = s.drainAndRestart(ctx, s.randomNode(), &res)
	return res
}

// rollingDeploy drains and restarts every node in turn under traffic, as a
// deploy does: each gets SIGTERM, closes its clients with 1001, exits 0
// within --drain-timeout and starts again on the same port; its clients
// reconnect to the others with since, and are all back before the next
// node goes. Nothing may be lost, duplicated or reordered; recovered:false
// only where history was exceeded.
func rollingDeploy(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	t0 := time.Now()
	var parts []string
	for _, n := range s.nodes {
		if !n.isUp() {
			continue
		}
		parts = append(parts, s.drainAndRestart(ctx, n, &res))
		if err := s.waitReady(ctx, 20*time.Second); err != nil {
			res.violate("after the drain of %s: %v", n.nodeID(), err)
		}
		sleepCtx(ctx, 250*time.Millisecond) // some traffic on the new layout
	}
	res.recovered = time.Since(t0)
	res.detail = fmt.Sprintf("%d nodes in turn: %s", len(parts), strings.Join(parts, ", "))
	return res
}

// drainAndRestart SIGTERMs n, checks its drain (exit 0 within
// --drain-timeout, every client closed with 1001) and starts it again. It
// returns a short description.
func (s *suite) drainAndRestart(ctx context.Context, n *nodeProc, res *faultResult) string {
	old := n.nodeID()
	type victim struct {
		user string
		ws   *wsclient.Client
		cn   *conn
	}
	var victims []victim
	t0 := time.Now()
	for _, c := range s.clientsOn(n) {
		ws, cn, _ := c.state()
		s.ledger.markDead(cn, t0)
		s.reconnectJitter(c)
		victims = append(victims, victim{c.user, ws, cn})
	}
	for _, p := range n.logProblems() {
		res.violate("%s", p)
	}
	code, took := n.terminate(s.cfg.DrainTimeout + 2*time.Second)
	res.count++
	if code != 0 {
		res.violate("%s exited with %d after SIGTERM", old, code)
	}
	if took > s.cfg.DrainTimeout+time.Second {
		res.violate("%s took %v to exit, --drain-timeout is %v", old, took, s.cfg.DrainTimeout)
	}
	wrong := 0
	for _, v := range victims {
		if c, err := v.ws.WaitClosed(3 * time.Second); err != nil || c != 1001 {
			wrong++
			if wrong <= 3 {
				res.violate("%s: closed with %d (%v) by the drain, want 1001", v.user, c, err)
			}
		}
	}
	if err := s.restartNode(ctx, n); err != nil {
		res.violate("%v", err)
	}
	if res.recovered == 0 {
		res.recovered = time.Since(t0)
	}
	return fmt.Sprintf("SIGTERM %s (%d clients, exit %d in %v)", old, len(victims), code, took.Round(time.Millisecond))
}

// restartNode starts a new incarnation of n, measures it empty, then lets
// clients in.
func (s *suite) restartNode(ctx context.Context, n *nodeProc) error {
	if err := n.start(ctx, 15*time.Second); err != nil {
		return err
	}
	s.base.empty[n.nodeID()] = s.quietGoroutines(n)
	n.setOpen(true)
	return nil
}

// reconnectJitter makes c wait 100 to 600 ms before it reconnects, as real
// clients spread their reconnections after a drain or a crash: room
// traffic meanwhile must come back to them by recovery.
func (s *suite) reconnectJitter(c *client) {
	d := time.Duration(100+s.rng.IntN(500)) * time.Millisecond
	c.mu.Lock()
	c.holdOff = d
	c.mu.Unlock()
}
