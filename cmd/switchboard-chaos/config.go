package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"
)

// config is one chaos run. Zero values are filled by normalize.
type config struct {
	// Duration is how long faults are injected in the long form; the last
	// round started before it elapses runs to its end. Zero: one round of
	// every fault kind (the short form).
	Duration time.Duration
	// Nodes is the number of node processes. Zero: 3.
	Nodes int
	// Clients is the number of regular clients. Zero: 24.
	Clients int
	// Rooms is the number of rooms. Zero: 6.
	Rooms int
	// RoomsPerClient is how many rooms each client is in. Zero: 2.
	RoomsPerClient int
	// SendEvery is the mean time between two messages of one client. Zero: 300 ms.
	SendEvery time.Duration
	// Seed makes the choices of faults, victims and messages repeatable
	// (timing is not). Zero: random.
	Seed uint64
	// Race builds the node with the race detector.
	Race bool
	// NodeBin is a node binary to use instead of building one.
	NodeBin string
	// NoRedis runs a single node with the in-process broker: only actor and
	// client faults. Redis is used otherwise.
	NoRedis bool
	// MassExit is how many memberships the mass-exit fault creates and
	// drops at once (in connections of massRoomsPerConn rooms each). Zero:
	// 10,000 in the short form; in the long one 100,000, or 40,000 when the
	// nodes are built with the race detector (which slows a node's join and
	// release of 100,000 memberships several times over, past the fault's
	// bounds on two cores).
	MassExit int
	// Faults, when not empty, restricts the run to these fault kinds.
	Faults []string
	// Rounds is how many times the short form injects every fault kind.
	// Zero: 1.
	Rounds int
	// RedisTopology is the Redis the nodes run on (topology.go):
	// standalone, sentinel or cluster. Zero: standalone.
	RedisTopology string
	// PingInterval and PongTimeout are the nodes' heartbeat. Zero: 1 s each.
	PingInterval, PongTimeout time.Duration
	// DrainTimeout is the nodes' --drain-timeout. Zero: 3 s.
	DrainTimeout time.Duration
	// HistorySize is the nodes' --history-size: with history on, clients
	// rejoin their rooms with since after every reconnection and the
	// ledger judges room messages per client (streams.go). Zero: 100 (the
	// node's default); negative: history off.
	HistorySize int
	// WorkDir holds the binary and every log. Zero: a temporary directory,
	// removed at the end unless the run found a violation.
	WorkDir string
	// Out receives the report. Zero: os.Stdout.
	Out io.Writer
}

func (c *config) normalize() error {
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Clients == 0 {
		c.Clients = 24
	}
	if c.Rooms == 0 {
		c.Rooms = 6
	}
	if c.RoomsPerClient == 0 {
		c.RoomsPerClient = 2
	}
	if c.SendEvery == 0 {
		c.SendEvery = 300 * time.Millisecond
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.PingInterval == 0 {
		c.PingInterval = time.Second
	}
	if c.PongTimeout == 0 {
		c.PongTimeout = time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 3 * time.Second
	}
	if c.HistorySize == 0 {
		c.HistorySize = 100
	}
	if c.MassExit == 0 {
		c.MassExit = 10_000
		if c.Duration > 0 {
			c.MassExit = 100_000
			if c.Race {
				c.MassExit = 40_000
			}
		}
	}
	if c.Rounds == 0 {
		c.Rounds = 1
	}
	if c.RedisTopology == "" {
		c.RedisTopology = topoStandalone
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.NoRedis {
		c.Nodes = 1
	}
	switch {
	case c.Nodes < 1 || c.Nodes > 9:
		return errors.New("nodes must be 1..9")
	case c.Clients < 2 || c.Clients > 500:
		return errors.New("clients must be 2..500")
	case c.Rooms < 1 || c.RoomsPerClient < 1 || c.RoomsPerClient > c.Rooms:
		return errors.New("rooms must be at least rooms-per-client, which must be at least 1")
	case c.Duration < 0:
		return errors.New("duration must not be negative")
	case c.MassExit < 1 || c.MassExit > 500_000:
		return errors.New("mass-exit must be 1..500000 memberships")
	case c.Rounds < 1:
		return errors.New("rounds must be at least 1")
	case !contains(topologyNames, c.RedisTopology):
		return fmt.Errorf("unknown redis topology %q (known: %s)", c.RedisTopology, strings.Join(topologyNames, ", "))
	case c.NoRedis && c.RedisTopology != topoStandalone:
		return errors.New("no-redis runs without Redis: it takes no redis topology")
	}
	for _, f := range c.Faults {
		if _, ok := faultByName[f]; !ok {
			return fmt.Errorf("unknown fault %q (known: %s)", f, strings.Join(faultNames(), ", "))
		}
	}
	return nil
}
