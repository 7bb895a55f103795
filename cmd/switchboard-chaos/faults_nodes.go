package main

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Node faults: SIGKILL and drain (SIGTERM), each followed by a restart.

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
// (no fault window: nothing may be lost).
func termNode(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	n := s.randomNode()
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
	res.recovered = time.Since(t0)
	res.detail = fmt.Sprintf("SIGTERM %s (%d clients, exit %d in %v)", old, len(victims), code, took.Round(time.Millisecond))
	return res
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
