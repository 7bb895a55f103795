// Command switchboard-chaos proves, under fire, what Switchboard promises
// about failures. It builds the node binary, starts a real redis-server and
// several real nodes on loopback, connects real WebSocket clients that
// exchange numbered room, broadcast and direct messages, and while they do it
// kills actors (sessions, rooms, the hub's panics, broker subscriptions),
// stops, pauses and crashes Redis, SIGKILLs and drains nodes, and runs slow
// readers and clients that vanish without a close.
//
// After every fault it checks and prints the invariants: every message was
// either delivered to every live member or refused with an error to its
// sender (nothing lost outside the documented at-most-once windows); no room
// lists a dead session; actor, goroutine and Redis subscription counts are
// back to the baseline once traffic stops; supervision restarted what it
// should within a bound. docs/reliability.md defines each term.
//
//	switchboard-chaos                  # short form: one round of every fault
//	switchboard-chaos -duration 10m    # long form (make chaos CHAOS_DURATION=10m)
//	switchboard-chaos -redis-topology sentinel -faults sentinel-failover -rounds 4
//	switchboard-chaos -redis-topology cluster -faults cluster-failover -rounds 3
//
// The exit status is 1 when any invariant was violated.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	var cfg config
	var faultList string
	flag.DurationVar(&cfg.Duration, "duration", 0, "inject faults for this long (0: one round of each fault kind)")
	flag.IntVar(&cfg.Nodes, "nodes", 3, "node processes")
	flag.IntVar(&cfg.Clients, "clients", 24, "regular clients")
	flag.IntVar(&cfg.Rooms, "rooms", 6, "rooms")
	flag.IntVar(&cfg.RoomsPerClient, "rooms-per-client", 2, "rooms each client is in")
	flag.DurationVar(&cfg.SendEvery, "send-every", 300*time.Millisecond, "mean time between two messages of one client")
	flag.Uint64Var(&cfg.Seed, "seed", 0, "seed for the choice of faults, victims and messages (0: random)")
	flag.BoolVar(&cfg.Race, "race", true, "build the node with the race detector")
	flag.StringVar(&cfg.NodeBin, "node-bin", "", "node binary to run instead of building ./cmd/switchboard")
	flag.BoolVar(&cfg.NoRedis, "no-redis", false, "one node with the in-process broker: actor and client faults only")
	flag.IntVar(&cfg.MassExit, "mass-exit", 0, "memberships the mass-exit fault creates and drops at once, 100 rooms per connection (0: 10000 in the short form; in the long one 100000, 40000 with race-built nodes)")
	flag.IntVar(&cfg.Rounds, "rounds", 1, "in the short form (no -duration), inject every fault kind this many times")
	flag.StringVar(&cfg.RedisTopology, "redis-topology", topoStandalone, "the Redis the nodes run on: "+strings.Join(topologyNames, ", ")+
		" (sentinel: a primary, a replica and 3 sentinels; cluster: 3 primaries and 3 replicas)")
	flag.StringVar(&faultList, "faults", "", "comma-separated fault kinds to inject (default all): "+strings.Join(faultNames(), ","))
	flag.DurationVar(&cfg.PingInterval, "ping-interval", time.Second, "the nodes' --ping-interval")
	flag.DurationVar(&cfg.PongTimeout, "pong-timeout", time.Second, "the nodes' --pong-timeout")
	flag.DurationVar(&cfg.DrainTimeout, "drain-timeout", 3*time.Second, "the nodes' --drain-timeout")
	flag.IntVar(&cfg.HistorySize, "history-size", 100, "the nodes' --history-size; clients rejoin with since after every reconnection (0: history off)")
	flag.StringVar(&cfg.WorkDir, "work-dir", "", "directory for the binary and the logs (default: a temporary one, kept on failure)")
	flag.Parse()
	if cfg.HistorySize == 0 {
		cfg.HistorySize = -1 // off; zero in config means the default
	}
	if faultList != "" {
		cfg.Faults = strings.Split(faultList, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchboard-chaos:", err)
		os.Exit(2)
	}
	rep.print(os.Stdout)
	if len(rep.Violations) > 0 {
		os.Exit(1)
	}
}
