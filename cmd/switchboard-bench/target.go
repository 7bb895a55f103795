package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster"
	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/transport"
)

// Server kinds a target can hold.
const (
	kindSwitchboard = "switchboard"
	kindBaseline    = "baseline"
)

// Where a target's servers run.
const (
	whereExternal  = "external"  // --nodes: an existing deployment
	whereInprocess = "inprocess" // started in this process
	whereChild     = "child"     // started in a child process (--spawn)
)

// target is the set of nodes one measured run drives.
type target struct {
	kind  string
	where string
	urls  []string // ws:// base URLs, one per node
	pid   int      // process whose CPU is the server's: the child, or 0
	stop  func()
}

// serverOptions configure servers the tool starts itself.
type serverOptions struct {
	readBuffer int // gws read buffer per connection; 0: the server's default
	// historySize is the nodes' --history-size (0: off).
	historySize int
	// noConnEvents is the nodes' --connection-events off.
	noConnEvents bool
	cpuProfile   string // child servers only: write a CPU profile here
	redisURL     string // Switchboard nodes share this Redis instead of an in-process fabric
	// clusterAddrs (some nodes of a Redis Cluster) puts the Switchboard
	// nodes on that cluster; redisURL then gives only credentials.
	// partitions is their Partitions (0: the broker's default).
	clusterAddrs []string
	partitions   int
}

// usesRedis reports whether the Switchboard nodes share a Redis or a Redis
// Cluster rather than an in-process fabric.
func (so serverOptions) usesRedis() bool { return so.redisURL != "" || len(so.clusterAddrs) > 0 }

// startTarget starts (or names) the servers of one run.
func startTarget(kind, where string, nodes int, external []string, so serverOptions) (*target, error) {
	switch where {
	case whereExternal:
		return &target{kind: kind, where: where, urls: external, stop: func() {}}, nil
	case whereChild:
		return startChild(kind, nodes, so)
	}
	urls, stop, err := startServers(kind, nodes, so)
	if err != nil {
		return nil, err
	}
	return &target{kind: kind, where: where, urls: urls, stop: stop}, nil
}

// startServers starts count servers of kind in this process on loopback.
// Several Switchboard nodes share one in-process fabric, as nodes share Redis.
func startServers(kind string, count int, so serverOptions) ([]string, func(), error) {
	if kind == kindBaseline {
		if count != 1 {
			return nil, nil, errors.New("the baseline is a single server")
		}
		b, err := startBaseline("127.0.0.1:0", so.readBuffer)
		if err != nil {
			return nil, nil, err
		}
		b.mux.HandleFunc("POST "+gcPath, serveGC)
		return []string{b.URL()}, b.Close, nil
	}
	var fabric *cluster.Fabric
	if count > 1 && !so.usesRedis() {
		fabric = cluster.NewFabric()
	}
	// A channel prefix of its own, so that a shared Redis carries no other
	// deployment's traffic into the measurement (nor this run's into it).
	prefix := "bench-" + strconv.Itoa(os.Getpid())
	var urls []string
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		if fabric != nil {
			fabric.Close()
		}
	}
	for i := 0; i < count; i++ {
		var broker actors.Broker = cluster.NewInProc()
		switch {
		case so.usesRedis():
			b, err := redis.New(redis.Config{URL: so.redisURL, ClusterAddrs: so.clusterAddrs, Partitions: so.partitions})
			if err != nil {
				stopAll()
				return nil, nil, err
			}
			broker = b
		case fabric != nil:
			broker = fabric.Broker()
		}
		url, stop, err := startNode(broker, i, prefix, so)
		if err != nil {
			stopAll()
			return nil, nil, err
		}
		urls = append(urls, url)
		stops = append(stops, stop)
	}
	return urls, stopAll, nil
}

// startNode starts one Switchboard node on 127.0.0.1 with the settings a load
// test needs: no per-connection rate limit (a publisher sends as fast as its
// window allows), everything else at its defaults.
func startNode(broker actors.Broker, i int, prefix string, so serverOptions) (string, func(), error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	node, err := actors.NewNode(actors.Config{
		NodeID:             "bench-" + strconv.Itoa(i),
		ChannelPrefix:      prefix,
		Broker:             broker,
		RatePerSecond:      -1,
		HistorySize:        historySize(so.historySize),
		NoConnectionEvents: so.noConnEvents,
		Logger:             quiet,
	})
	if err != nil {
		return "", nil, err
	}
	srv, err := transport.New(node, transport.Config{ReadBufferSize: so.readBuffer, Logger: quiet})
	if err != nil {
		_ = node.Shutdown(context.Background())
		return "", nil, err
	}
	srv.Handle("POST "+gcPath, http.HandlerFunc(serveGC))
	srv.Handle("/debug/pprof/", http.HandlerFunc(httppprof.Index))
	srv.Handle("/debug/pprof/profile", http.HandlerFunc(httppprof.Profile))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = node.Shutdown(context.Background())
		return "", nil, err
	}
	hs := srv.NewHTTPServer(ln.Addr().String())
	go func() { _ = hs.Serve(ln) }()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Drain(ctx)
		_ = hs.Shutdown(ctx)
		_ = node.Shutdown(ctx)
	}
	return "ws://" + ln.Addr().String(), stop, nil
}

// serveGC collects garbage and returns freed memory to the OS, so that the
// idle scenario samples live memory rather than garbage from connection setup.
func serveGC(w http.ResponseWriter, _ *http.Request) {
	runtime.GC()
	debug.FreeOSMemory()
	w.WriteHeader(http.StatusNoContent)
}

// startChild runs the servers in a child process (this binary's serve
// command), so that their memory and CPU are not mixed with the clients'.
// The child exits when its stdin closes, so it cannot outlive this process.
func startChild(kind string, count int, so serverOptions) (*target, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--kind", kind, "--count", strconv.Itoa(count), "--read-buffer", strconv.Itoa(so.readBuffer),
		"--history-size", strconv.Itoa(so.historySize)}
	if so.noConnEvents {
		args = append(args, "--connection-events", "off")
	}
	if so.cpuProfile != "" {
		args = append(args, "--cpuprofile", so.cpuProfile+"."+kind)
	}
	if so.redisURL != "" && kind == kindSwitchboard {
		args = append(args, "--redis", so.redisURL)
	}
	if len(so.clusterAddrs) > 0 && kind == kindSwitchboard {
		args = append(args, "--redis-cluster", strings.Join(so.clusterAddrs, ","), "--redis-partitions", strconv.Itoa(so.partitions))
	}
	cmd := exec.Command(exe, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	stop := func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	urlc := make(chan []string, 1)
	go func() {
		var urls []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if u, ok := strings.CutPrefix(line, "listening "); ok {
				urls = append(urls, u)
			}
			if line == "ready" {
				urlc <- urls
				urls = nil
			}
		}
		close(urlc)
	}()
	go func() { _ = cmd.Wait(); close(exited) }()
	select {
	case urls, ok := <-urlc:
		if !ok || len(urls) != count {
			stop()
			return nil, fmt.Errorf("child server did not start (%d of %d nodes)", len(urls), count)
		}
		return &target{kind: kind, where: whereChild, urls: urls, pid: cmd.Process.Pid, stop: stop}, nil
	case <-time.After(30 * time.Second):
		stop()
		return nil, errors.New("child server did not report ready within 30 s")
	}
}

// serveMain is the serve command: start servers, print their URLs, and run
// until stdin closes, a signal arrives or maxLife passes.
func serveMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	kind := fs.String("kind", kindSwitchboard, "switchboard or baseline")
	count := fs.Int("count", 1, "nodes to start (switchboard only; they share an in-process fabric)")
	readBuf := fs.Int("read-buffer", 0, "gws read buffer per connection in bytes (0: the server's default)")
	maxLife := fs.Duration("max-life", time.Hour, "exit after this long whatever happens")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the servers to this file")
	redisURL := fs.String("redis", "", "Redis URL the Switchboard nodes share (default: an in-process fabric)")
	clusterAddrs := fs.String("redis-cluster", "", "host:port of some nodes of a Redis Cluster the Switchboard nodes use (--redis then gives only credentials)")
	partitions := fs.Int("redis-partitions", 0, "with --redis-cluster: partitions of the rooms (0: the broker's default)")
	history := fs.Int("history-size", 100, "room history of the Switchboard nodes (0: off)")
	connEvents := fs.String("connection-events", "all", "user_connected/user_disconnected of the Switchboard nodes: all or off")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *kind != kindSwitchboard && *kind != kindBaseline {
		return fmt.Errorf("--kind %q: want switchboard or baseline", *kind)
	}
	if *connEvents != "all" && *connEvents != "off" {
		return fmt.Errorf("--connection-events %q: want all or off", *connEvents)
	}
	if *count < 1 || *count > 16 || *maxLife <= 0 {
		return errors.New("--count must be 1-16 and --max-life positive")
	}
	urls, stop, err := startServers(*kind, *count, serverOptions{readBuffer: *readBuf, redisURL: *redisURL, clusterAddrs: splitList(*clusterAddrs), partitions: *partitions, historySize: *history, noConnEvents: *connEvents == "off"})
	if err != nil {
		return err
	}
	defer stop()
	for _, u := range urls {
		fmt.Fprintln(stdout, "listening", u)
	}
	fmt.Fprintln(stdout, "ready")
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, stdin); close(eof) }()
	select {
	case <-eof:
	case <-ctx.Done():
	case <-time.After(*maxLife):
	}
	return nil
}

// historySize maps a --history-size (0: off) to actors.Config.HistorySize.
func historySize(n int) int {
	if n == 0 {
		return actors.NoHistory
	}
	return n
}
