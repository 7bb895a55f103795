// Command switchboard-bench loads a Switchboard deployment and measures it:
// fan-out throughput and latency in rooms, broadcast, memory per idle
// connection, connection churn, and room recovery after a mass
// reconnection. It can start the nodes itself
// (--inprocess, optionally in a child process with --spawn) and run the same
// scenario against a bare-gws fan-out server (--baseline), so that every
// figure comes with a reference measured in the same run on the same
// machine. --offered measures latency at given loads, open-loop, against
// both; --processes spreads the clients over several load processes, on
// this machine or others. The nodes it starts may share one Redis (--redis)
// or a Redis Cluster (--redis-cluster, or --start-redis-cluster N for a
// local one); room and broadcast runs then report each primary's CPU per
// message and how rooms and messages spread over the shards. Every run is
// bounded in time and counts. See docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "serve":
		err = serveMain(ctx, os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "worker":
		err = workerMain(ctx, os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
	default:
		_, err = benchMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchboard-bench:", err)
		os.Exit(1)
	}
}

// benchMain parses args, runs the scenario against each target --repeat
// times and writes the summary and the JSON line to stdout.
func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) (*Report, error) {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return nil, err
	}
	if o.startCluster > 0 {
		lc, err := startLocalCluster(ctx, o.startCluster)
		if err != nil {
			return nil, err
		}
		defer lc.stop()
		o.redisCluster = lc.addrs
	}
	so := serverOptions{readBuffer: o.readBuffer, cpuProfile: o.cpuProfile, redisURL: o.redisURL, historySize: o.historySize, noConnEvents: o.connEvents == "off",
		clusterAddrs: o.redisCluster, partitions: o.partitions}
	// The idle scenario measures a node's memory growth, so each repeat gets
	// servers of its own: memory freed by the previous run would otherwise be
	// reused and hide part of the growth.
	fresh := o.scenario == "idle" && len(o.nodes) == 0
	var targets []*target
	stopTargets := func() {
		for _, t := range targets {
			t.stop()
		}
		targets = nil
	}
	defer stopTargets()
	startTargets := func() error {
		where := whereInprocess
		if o.spawn {
			where = whereChild
		}
		switch {
		case len(o.nodes) > 0:
			t, _ := startTarget(kindSwitchboard, whereExternal, 0, o.nodes, so)
			targets = append(targets, t)
		case o.inprocess > 0:
			t, err := startTarget(kindSwitchboard, where, o.inprocess, nil, so)
			if err != nil {
				return fmt.Errorf("start nodes: %w", err)
			}
			targets = append(targets, t)
		}
		if o.baseline {
			t, err := startTarget(kindBaseline, where, 1, nil, so)
			if err != nil {
				return fmt.Errorf("start baseline: %w", err)
			}
			targets = append(targets, t)
		}
		return nil
	}
	if err := startTargets(); err != nil {
		return nil, err
	}
	rep := newReport(o)
	var pool *workerPool
	if o.processes > 1 {
		if pool, err = startWorkers(o); err != nil {
			return nil, err
		}
		defer pool.stop()
	}
	var runErr error
	if len(o.offered) > 0 {
		runErr = runOffered(ctx, o, targets, pool, rep, stderr)
	}
	for i := 0; i < o.repeat && runErr == nil && len(o.offered) == 0; i++ {
		if fresh && i > 0 {
			stopTargets()
			if err := startTargets(); err != nil {
				runErr = err
				break
			}
		}
		for _, t := range targets {
			res, err := runOnce(ctx, o, t, pool, stderr)
			if res != nil {
				rep.add(res)
			}
			if err != nil {
				runErr = fmt.Errorf("%s run %d: %w", t.kind, i+1, err)
				break
			}
		}
	}
	rep.summarize()
	rep.write(stdout)
	return rep, runErr
}

// runOnce runs the scenario once against t, bounded by --duration, with the
// clients in this process or in the load processes of pool.
func runOnce(ctx context.Context, o *options, t *target, pool *workerPool, stderr io.Writer) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	r := newRun(o, t, stderr)
	r.pool = pool
	pctx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go r.progress(pctx)
	switch o.scenario {
	case "room", "broadcast":
		if pool != nil {
			return r.remoteFanout(ctx)
		}
		return r.fanoutScenario(ctx)
	case "idle":
		return r.idleScenario(ctx)
	case "recover":
		return r.recoverScenario(ctx)
	case "presence":
		return r.presenceScenario(ctx)
	default:
		return r.churnScenario(ctx)
	}
}
