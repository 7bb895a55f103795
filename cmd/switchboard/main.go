// Command switchboard runs one Switchboard node: a WebSocket message router.
// Alone it uses an in-process broker; with --redis, any number of nodes
// behind a load balancer act as one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/transport"
)

func main() {
	o, err := parseOptions(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchboard:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "switchboard:", err)
		os.Exit(1)
	}
}

// listening is where a running node listens. Admin is empty when the admin
// listener is off (no debug feature on).
type listening struct {
	Public, Admin string
}

// run serves until ctx ends, then drains. ready, if not nil, receives the
// bound addresses once the listeners are up.
func run(ctx context.Context, o *options, logOut io.Writer, ready chan<- listening) error {
	lvl, _ := parseLevel(o.logLevel)
	hopts := &slog.HandlerOptions{Level: slog.Level(lvl)}
	var log *slog.Logger
	if o.logFormat == "json" {
		log = slog.New(slog.NewJSONHandler(logOut, hopts))
	} else {
		log = slog.New(slog.NewTextHandler(logOut, hopts))
	}

	broker, err := newBroker(o, log)
	if err != nil {
		return err
	}
	node, err := actors.NewNode(actors.Config{
		NodeID:             o.nodeID,
		ChannelPrefix:      o.channelPrefix,
		Broker:             broker,
		PingInterval:       o.pingInterval,
		PongTimeout:        o.pongTimeout,
		MaxRoomsPerSession: o.maxRooms,
		RatePerSecond:      o.ratePerSecond,
		RateBurst:          o.rateBurst,
		RateStrikes:        o.rateStrikes,
		HistorySize:        historySize(o.historySize),
		HistoryTTL:         o.historyTTL,
		NoConnectionEvents: o.connectionEvents == "off",
		Logger:             log,

		DisableStatsCommand: !o.statsCommand,
	})
	if err != nil {
		return err
	}
	tcfg := transport.Config{
		MaxMessageBytes:  o.maxMessageBytes,
		WriteTimeout:     o.writeTimeout,
		MaxPendingBytes:  o.maxPendingBytes,
		FrameBudgetBytes: o.frameBudget,
		ReadBufferSize:   o.readBufferSize,
		MaxConnections:   o.maxConnections,
		AuthRequired:     o.authRequired,
		AllowAnonymous:   o.allowAnonymous,
		AllowedOrigins:   origins(o.allowedOrigins),
		AllowBinary:      o.allowBinary,
		Logger:           log,

		MaxConnectionsPerIP: o.maxConnsPerIP,
		HandshakeTimeout:    o.handshakeTimeout,
		ReadHeaderTimeout:   o.readHeaderTimeout,
	}
	if tcfg.Auth, err = newAuthenticator(o, log); err != nil {
		_ = node.Shutdown(context.Background())
		return err
	}
	srv, err := transport.New(node, tcfg)
	if err != nil {
		return err
	}
	mountExtras(srv, o, log)
	// /debug/ is on the admin listener only (admin.go).
	admin, aln, err := listenAdmin(node, o, log)
	if err != nil {
		_ = node.Shutdown(context.Background())
		return err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		if aln != nil {
			aln.Close()
		}
		_ = node.Shutdown(context.Background())
		return err
	}
	hs := srv.NewHTTPServer(o.addr)
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	serveAdmin(admin, aln, errc)
	at := listening{Public: ln.Addr().String()}
	if aln != nil {
		at.Admin = aln.Addr().String()
	}
	log.Info("switchboard node listening", "addr", at.Public, "admin_addr", at.Admin, "node", node.ID(), "broker", node.BrokerState().Kind)
	if ready != nil {
		ready <- at
	}

	select {
	case err := <-errc:
		_ = hs.Close()
		if admin != nil {
			_ = admin.Close()
		}
		_ = node.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("draining", "timeout", o.drainTimeout)
	drainStart := time.Now()
	dctx, cancel := context.WithTimeout(context.Background(), o.drainTimeout)
	defer cancel()
	srv.StartDrain()
	derr := srv.Drain(dctx)
	_ = hs.Shutdown(dctx)
	if admin != nil {
		// A profile still streaming is cut when the drain's time is up.
		_ = admin.Shutdown(dctx)
		_ = admin.Close()
	}
	serr := node.Shutdown(dctx)
	if derr != nil || serr != nil {
		log.Warn("drain incomplete", "err", errors.Join(derr, serr), "left", srv.OpenConnections())
	}
	log.Info("stopped", "drain", time.Since(drainStart).Round(time.Millisecond))
	return nil
}

// historySize maps --history-size (0: off) to actors.Config.HistorySize
// (0: the default).
func historySize(n int) int {
	if n == 0 {
		return actors.NoHistory
	}
	return n
}
