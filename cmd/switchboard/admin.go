package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
)

// The admin listener. Everything under /debug/ (the profiler with --pprof;
// the actor inspector and kill switch with --enable-kill) is served on a
// listener of its own, --admin-addr, and never on the public one: the public
// listener answers 404 to every /debug/ path whatever the flags. The admin
// listener opens only when one of those features is on, so a production node
// started without them listens on one port. Its address must be a loopback
// one unless --admin-allow-remote says otherwise, because nothing on it asks
// for credentials.
//
// /debug/pprof/cmdline is not served (404), on either listener: the command
// line may hold --jwt-secret, --api-key or a Redis password, and redacting it
// reliably (every spelling of every secret flag, passwords inside URLs) is
// harder than leaving it out. No profiling tool needs it.

// defaultAdminAddr is where the admin listener opens when --admin-addr is not
// given: the port Go's profiling examples use, on loopback only. (9090 would
// meet Prometheus on the same host.)
const defaultAdminAddr = "127.0.0.1:6060"

// adminEnabled reports whether a debug feature is on, and so whether the
// admin listener opens.
func (o *options) adminEnabled() bool { return o.pprof || o.chaosKill }

// checkAdminAddr refuses an admin address that is not loopback unless
// allowRemote. A loopback address is a literal loopback IP (127.0.0.0/8, ::1)
// or "localhost"; an empty host (":6060") means every interface, and other
// names are refused because what they resolve to can change.
func checkAdminAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--admin-addr %q: %w", addr, err)
	}
	if allowRemote || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--admin-addr %q is not a loopback address: its /debug/ endpoints ask for no credentials; "+
		"give --admin-allow-remote to serve them there anyway", addr)
}

// newAdminMux routes the /debug/ endpoints the flags turn on; nothing else.
func newAdminMux(node *actors.Node, o *options, log *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	if o.pprof {
		// Index also serves every named profile (/debug/pprof/heap,
		// /debug/pprof/goroutine, ...) and answers 404 to cmdline.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if o.chaosKill {
		mountDebug(mux, node, log)
	}
	return mux
}

// warnRemoteAdmin warns when --admin-allow-remote let the admin listener
// onto an address other than loopback.
func warnRemoteAdmin(o *options, bound string, log *slog.Logger) {
	if !o.adminAllowRemote {
		return
	}
	if host, _, _ := net.SplitHostPort(o.adminAddr); checkAdminAddr(o.adminAddr, false) != nil {
		log.Warn("admin listener is not on loopback: anyone who reaches it can profile the node"+
			" and, with --enable-kill, kill its actors", "addr", bound, "host", host)
	}
}

// listenAdmin opens the admin listener when a debug feature is on; nil, nil
// when none is.
func listenAdmin(node *actors.Node, o *options, log *slog.Logger) (*http.Server, net.Listener, error) {
	if !o.adminEnabled() {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", o.adminAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("--admin-addr: %w", err)
	}
	warnRemoteAdmin(o, ln.Addr().String(), log)
	// No write timeout: a CPU profile or a trace streams for as long as it
	// was asked to.
	hs := &http.Server{
		Handler:           newAdminMux(node, o, log),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return hs, ln, nil
}

// serveAdmin runs hs on ln until it is closed; nothing to do when hs is nil.
func serveAdmin(hs *http.Server, ln net.Listener, errc chan<- error) {
	if hs == nil {
		return
	}
	go func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin listener: %w", err)
		}
	}()
}
