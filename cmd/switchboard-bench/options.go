package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// options is the load tool's configuration. Every run is bounded: a time cap
// (--duration, at most maxDuration) and explicit counts (connections,
// messages, cycles), each with an upper limit; the tool refuses to start
// otherwise.
type options struct {
	scenario string

	nodes     []string // --nodes: ws:// base URLs of an existing deployment
	inprocess int      // --inprocess: Switchboard nodes to start in this process
	spawn     bool     // run the started servers in a child process
	baseline  bool     // also run against the bare-gws baseline
	repeat    int

	duration    time.Duration
	drain       time.Duration
	timeout     time.Duration
	dialWorkers int
	sourceIPs   []string
	users       int
	readBuffer  int
	historySize int
	connEvents  string // --connection-events: all or off
	cpuProfile  string
	redisURL    string
	quiet       bool

	// redisCluster: --redis-cluster seeds of a Redis Cluster the started
	// nodes use (or, with --start-redis-cluster, the addresses of the
	// cluster this tool started); partitions is --redis-partitions (0: the
	// broker's default); startCluster is --start-redis-cluster's primaries.
	redisCluster []string
	partitions   int
	startCluster int

	rooms    int
	members  int
	messages int
	size     int
	window   int
	rate     float64
	// windowSet: --window was given; with --rate it then also applies
	// (closed loop), otherwise --rate alone is open-loop.
	windowSet bool

	// offered: --offered levels, each a fraction of the bare server's peak
	// or an absolute deliveries/s; levelTime is how long each level sends.
	offered   []offeredLevel
	levelTime time.Duration

	// processes: load processes holding the clients (1: this one);
	// workerCommand starts each of them (default: this binary).
	processes     int
	workerCommand string
	args          []string // as given, for the workers

	clients   int
	hold      time.Duration
	idleRooms int

	cycles      int
	concurrency int

	queries int
}

// Upper bounds a run may not exceed.
const (
	maxDuration    = time.Hour
	maxConnections = 200_000
	maxDeliveries  = 2_000_000_000
	maxMessages    = 10_000_000 // rooms x messages, the tracked message slots
	maxCycles      = 10_000_000
)

var scenarios = []string{"room", "broadcast", "idle", "churn", "recover", "presence"}

func newFlagSet(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return fs
}

func parseOptions(args []string, out io.Writer) (*options, error) {
	o := &options{}
	args0 := args
	fs := newFlagSet("switchboard-bench", out)
	nodes := fs.String("nodes", "", "comma-separated ws:// base URLs of the nodes to load (e.g. ws://127.0.0.1:8080,ws://127.0.0.1:8081)")
	fs.IntVar(&o.inprocess, "inprocess", 0, "start this many Switchboard nodes on 127.0.0.1 instead of --nodes (several share an in-process fabric)")
	fs.BoolVar(&o.spawn, "spawn", false, "run the servers this tool starts (--inprocess, --baseline) in a child process, so their CPU and memory are measured apart from the clients'")
	fs.BoolVar(&o.baseline, "baseline", false, "also run the scenario against a bare-gws fan-out server (one write per frame per recipient) and report the ratio")
	fs.IntVar(&o.repeat, "repeat", 1, "run each measurement this many times (alternating with the baseline) and report median and range")
	fs.DurationVar(&o.duration, "duration", time.Minute, "time cap of one run (connect, load, drain); at most 1h")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "after the last message is sent, how long to wait for deliveries still in flight")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound of one dial, join or ack")
	fs.IntVar(&o.dialWorkers, "dial-concurrency", 64, "connections opened in parallel")
	srcIPs := fs.String("source-ips", "", "source addresses for the clients, spread round robin: a list (127.0.0.2,127.0.0.3) or a range (127.0.0.2-127.0.0.50)")
	fs.IntVar(&o.users, "users", 0, "distinct user ids among the clients (0: one per connection); fewer users means less presence traffic while connecting")
	fs.IntVar(&o.readBuffer, "read-buffer", 1024, "gws read buffer per connection of the servers this tool starts, Switchboard and baseline alike (Switchboard's default: 1024; gws's own: 4096)")
	fs.IntVar(&o.historySize, "history-size", 100, "room history of the Switchboard nodes this tool starts, as switchboard's --history-size (0: off)")
	fs.StringVar(&o.connEvents, "connection-events", "all", "user_connected/user_disconnected of the Switchboard nodes this tool starts, as switchboard's --connection-events (all or off)")
	fs.StringVar(&o.redisURL, "redis", "", "with --inprocess: the nodes share this Redis (redis://127.0.0.1:6379/0) instead of an in-process fabric")
	cluster := fs.String("redis-cluster", "", "with --inprocess: the nodes use this Redis Cluster (host:port of some of its nodes, comma-separated) on sharded pub/sub; --redis then gives only credentials")
	fs.IntVar(&o.partitions, "redis-partitions", 0, "with a Redis Cluster: partitions the rooms are spread over, as switchboard's --redis-partitions (0: its default, 128)")
	fs.IntVar(&o.startCluster, "start-redis-cluster", 0, "with --inprocess: start a Redis Cluster of this many primaries (3-16, no replicas, no password) from redis-server and redis-cli on free loopback ports in a temporary directory, use it as --redis-cluster, and stop it at the end")
	fs.StringVar(&o.cpuProfile, "server-cpuprofile", "", "with --spawn: write each child server's CPU profile to FILE.switchboard / FILE.baseline")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress on stderr")
	fs.IntVar(&o.rooms, "rooms", 10, "room, recover: number of rooms")
	fs.IntVar(&o.members, "members", 100, "room: members per room, the publisher included; presence: members of the room")
	fs.IntVar(&o.queries, "queries", 1000, "presence: presence queries, one at a time")
	fs.IntVar(&o.messages, "messages", 1000, "room, broadcast: messages per publisher; recover: publications per room before the disconnection and again while the clients are away (default 100 there)")
	fs.IntVar(&o.size, "size", 64, "room, broadcast: content bytes per message (at least the timestamp header)")
	fs.IntVar(&o.window, "window", 64, "room, broadcast: messages a publisher may have in flight (sent, not yet received by every recipient)")
	fs.Float64Var(&o.rate, "rate", 0, "room, broadcast: messages per second per publisher (0: as fast as --window allows)")
	offered := fs.String("offered", "", "room, broadcast: offered loads to measure latency at, open-loop, against every target in turn: fractions of the bare server's peak deliveries/s (measured first with --window; needs --baseline) and/or absolute deliveries/s with an optional k or M suffix, e.g. 0.5,0.75,0.9 or 50k")
	fs.DurationVar(&o.levelTime, "level-time", 10*time.Second, "with --offered: how long each level sends")
	fs.IntVar(&o.processes, "processes", 1, "room, broadcast, idle: spread the clients over this many load processes (children of this one, each with its share of the clients and of --source-ips), for more connections than one process may hold")
	fs.StringVar(&o.workerCommand, "worker-command", "", "with --processes: start each load process with `sh -c 'CMD worker ...'` instead of this binary, $SBB_WORKER set to its index (e.g. 'ssh -T load$((SBB_WORKER % 2 + 1)) /usr/local/bin/switchboard-bench')")
	fs.IntVar(&o.clients, "clients", 1000, "broadcast, idle, recover: connections")
	fs.DurationVar(&o.hold, "hold", 5*time.Second, "idle: how long to hold the connections before sampling memory")
	fs.IntVar(&o.idleRooms, "idle-rooms", 0, "idle: each connection joins one of this many rooms before the hold, so that the figure includes room membership (0: none)")
	fs.IntVar(&o.cycles, "cycles", 1000, "churn: connect/join/leave/disconnect cycles")
	fs.IntVar(&o.concurrency, "concurrency", 8, "churn: cycles run in parallel")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "switchboard-bench: load a Switchboard deployment and measure it.\n\n"+
			"Usage: switchboard-bench [flags] room|broadcast|idle|churn|recover|presence\n"+
			"       switchboard-bench serve [--kind switchboard|baseline] [--count N] [--read-buffer B]\n"+
			"       switchboard-bench worker --index K -- [flags] SCENARIO   (a load process of --processes N)\n\n"+
			"Target: --nodes URLs (an existing deployment) or --inprocess N; add --baseline for the\n"+
			"bare-gws reference measured in the same run. Output: a summary and one JSON line on stdout,\n"+
			"progress on stderr.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	// Flags may come before or after the scenario name.
	var rest []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) != 1 {
		fs.Usage()
		return nil, errors.New("want exactly one scenario: room, broadcast, idle, churn, recover or presence")
	}
	o.scenario = rest[0]
	o.windowSet = flagSet(fs, "window")
	o.args = append([]string(nil), args0...)
	if o.scenario == "recover" && !flagSet(fs, "messages") {
		o.messages = recoverMessages
	}
	o.nodes = splitList(*nodes)
	o.redisCluster = splitList(*cluster)
	var err error
	if o.sourceIPs, err = parseSourceIPs(*srcIPs); err != nil {
		return nil, err
	}
	if o.offered, err = parseOffered(*offered); err != nil {
		return nil, err
	}
	return o, o.validate()
}

func (o *options) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	known := false
	for _, s := range scenarios {
		known = known || s == o.scenario
	}
	if !known {
		bad("unknown scenario %q: want room, broadcast, idle, churn, recover or presence", o.scenario)
	}
	switch {
	case len(o.nodes) == 0 && o.inprocess == 0 && !o.baseline:
		bad("no target: give --nodes, --inprocess N or --baseline")
	case len(o.nodes) > 0 && o.inprocess > 0:
		bad("--nodes and --inprocess are exclusive")
	case o.inprocess < 0 || o.inprocess > 16:
		bad("--inprocess must be 0-16")
	}
	if o.redisURL != "" && o.inprocess == 0 {
		bad("--redis is for the nodes this tool starts: give --inprocess N")
	}
	o.validateCluster(bad)
	for _, n := range o.nodes {
		if _, err := wsURL(n, "x"); err != nil {
			bad("--nodes: %v", err)
		}
	}
	if o.duration <= 0 || o.duration > maxDuration {
		bad("--duration must be positive and at most %v (every run is bounded in time)", maxDuration)
	}
	if o.drain <= 0 || o.timeout <= 0 {
		bad("--drain and --timeout must be positive")
	}
	if o.repeat < 1 || o.repeat > 10 {
		bad("--repeat must be 1-10")
	}
	if o.historySize < 0 || o.historySize > 10000 {
		bad("--history-size must be 0-10000")
	}
	if o.connEvents != "all" && o.connEvents != "off" {
		bad("--connection-events must be all or off")
	}
	if o.dialWorkers < 1 || o.dialWorkers > 1024 || o.users < 0 || o.readBuffer < 0 {
		bad("--dial-concurrency must be 1-1024; --users and --read-buffer must not be negative")
	}
	conns := 0
	switch o.scenario {
	case "room":
		if o.rooms < 1 || o.members < 1 {
			bad("--rooms and --members must be at least 1")
		}
		conns = o.rooms * o.members
		if o.messages < 1 || o.rooms*o.messages > maxMessages {
			bad("--messages must be at least 1 and --rooms x --messages at most %d", maxMessages)
		}
		if int64(conns)*int64(o.messages) > maxDeliveries {
			bad("--rooms x --members x --messages must be at most %d deliveries", maxDeliveries)
		}
	case "broadcast":
		if o.clients < 2 {
			bad("--clients must be at least 2 (one sender, one receiver)")
		}
		conns = o.clients
		if o.messages < 1 || o.messages > maxMessages || int64(o.clients)*int64(o.messages) > maxDeliveries {
			bad("--messages must be 1-%d and --clients x --messages at most %d", maxMessages, maxDeliveries)
		}
	case "idle":
		conns = o.clients
		if o.clients < 1 {
			bad("--clients must be at least 1")
		}
		if o.hold <= 0 || o.hold >= o.duration {
			bad("--hold must be positive and shorter than --duration")
		}
		if o.idleRooms < 0 || o.idleRooms > o.clients {
			bad("--idle-rooms must be 0-%d (--clients)", o.clients)
		}
	case "recover":
		conns = o.clients + o.rooms
		if o.clients < 1 || o.rooms < 1 || o.rooms > o.clients {
			bad("--clients must be at least 1 and --rooms 1-%d (--clients)", o.clients)
		}
		if o.baseline || (o.inprocess > 0 && o.historySize == 0) {
			bad("recover needs room history: no --baseline (it keeps none), no --history-size 0")
		}
		if o.messages < 1 || 2*o.rooms*o.messages > maxMessages || 2*int64(conns)*int64(o.messages) > maxDeliveries {
			bad("--messages must be at least 1, 2 x --rooms x --messages at most %d and 2 x (--clients + --rooms) x --messages at most %d deliveries", maxMessages, maxDeliveries)
		}
	case "presence":
		conns = o.members + 1
		if o.members < 1 || o.queries < 1 || o.queries > maxCycles {
			bad("--members must be at least 1 and --queries 1-%d", maxCycles)
		}
		if o.baseline {
			bad("presence: the baseline has no presence (no --baseline)")
		}
	case "churn":
		if o.cycles < 1 || o.cycles > maxCycles || o.concurrency < 1 || o.concurrency > 1024 {
			bad("--cycles must be 1-%d and --concurrency 1-1024", maxCycles)
		}
	}
	o.validateOffered(bad)
	if o.processes < 1 || o.processes > 64 {
		bad("--processes must be 1-64")
	}
	if o.processes > 1 && o.scenario != "room" && o.scenario != "broadcast" && o.scenario != "idle" {
		bad("--processes: room, broadcast and idle only")
	}
	if o.workerCommand != "" && o.processes < 2 {
		bad("--worker-command needs --processes 2 or more")
	}
	if conns > maxConnections {
		bad("at most %d connections per run (this run asks for %d)", maxConnections, conns)
	}
	if o.size < 0 || o.size > 60_000 || o.window < 1 || o.rate < 0 {
		bad("--size must be 0-60000, --window at least 1, --rate not negative")
	}
	return errors.Join(errs...)
}

// validateCluster checks the Redis Cluster flags.
func (o *options) validateCluster(bad func(string, ...any)) {
	if (len(o.redisCluster) > 0 || o.startCluster != 0) && o.inprocess == 0 {
		bad("--redis-cluster and --start-redis-cluster are for the nodes this tool starts: give --inprocess N")
	}
	if len(o.redisCluster) > 0 && o.startCluster != 0 {
		bad("--redis-cluster and --start-redis-cluster are exclusive")
	}
	if o.startCluster != 0 && (o.startCluster < 3 || o.startCluster > 16) {
		bad("--start-redis-cluster must be 3-16 (redis-cli creates a cluster of at least 3 primaries)")
	}
	if o.startCluster != 0 && o.redisURL != "" {
		bad("--start-redis-cluster starts a cluster without a password: no --redis")
	}
	if o.partitions != 0 && !o.clustered() {
		bad("--redis-partitions needs --redis-cluster or --start-redis-cluster")
	}
	if o.partitions < 0 || o.partitions > 16384 {
		bad("--redis-partitions must be 1-16384 (0: the default)")
	}
}

// clustered reports whether the started nodes use a Redis Cluster.
func (o *options) clustered() bool { return len(o.redisCluster) > 0 || o.startCluster > 0 }

// singleRedis is the URL of the one Redis the nodes share, "" on a
// cluster (--redis then holds only credentials) or without Redis.
func (o *options) singleRedis() string {
	if o.clustered() {
		return ""
	}
	return o.redisURL
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// recoverMessages is --messages of the recover scenario when not given:
// recovery of 100 publications, the default history size.
const recoverMessages = 100

// flagSet reports whether flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parseSourceIPs reads "a,b,c" or "first-last" (IPv4, same /24 prefix not
// required; at most 1024 addresses).
func parseSourceIPs(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if first, last, ok := strings.Cut(s, "-"); ok && !strings.Contains(s, ",") {
		a, b := net.ParseIP(strings.TrimSpace(first)).To4(), net.ParseIP(strings.TrimSpace(last)).To4()
		if a == nil || b == nil {
			return nil, fmt.Errorf("--source-ips %q: want IPv4 first-last", s)
		}
		lo, hi := ipUint(a), ipUint(b)
		if hi < lo || hi-lo >= 1024 {
			return nil, fmt.Errorf("--source-ips %q: empty or more than 1024 addresses", s)
		}
		var out []string
		for v := lo; v <= hi; v++ {
			out = append(out, net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).String())
		}
		return out, nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if net.ParseIP(p) == nil {
			return nil, fmt.Errorf("--source-ips: %q is not an IP address", p)
		}
		out = append(out, p)
	}
	return out, nil
}

func ipUint(ip net.IP) uint32 {
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}
