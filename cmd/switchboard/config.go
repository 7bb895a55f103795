package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-rt/switchboard/actors/wire"
	"github.com/switchboard-rt/switchboard/transport"
)

// options is the node's command-line configuration. Every flag has an
// environment fallback, SWITCHBOARD_<FLAG> (dashes become underscores), read
// when the flag is not given; --redis reads SWITCHBOARD_REDIS_URL.
type options struct {
	addr            string
	redisURL        string
	sentinelMaster  string
	sentinels       string
	redisCluster    string
	partitions      int
	nodeID          string
	channelPrefix   string
	maxMessageBytes int
	pingInterval    time.Duration
	pongTimeout     time.Duration
	writeTimeout    time.Duration
	maxPendingBytes int
	frameBudget     int64
	readBufferSize  int
	logLevel        string
	logFormat       string
	drainTimeout    time.Duration

	jwtSecret         string
	jwtPublicKey      string
	jwtIssuer         string
	jwtAudience       string
	jwtLeeway         time.Duration
	authRequired      bool
	allowAnonymous    bool
	allowedOrigins    string
	maxConnections    int
	maxConnsPerIP     int
	handshakeTimeout  time.Duration
	readHeaderTimeout time.Duration
	ratePerSecond     float64
	rateBurst         int
	rateStrikes       int
	maxRooms          int
	historySize       int
	connectionEvents  string
	historyTTL        time.Duration
	allowBinary       bool
	statsCommand      bool

	apiKey      string
	pprof       bool
	chaosKill   bool
	outboxLimit int
	presenceTTL time.Duration

	jwtSecretFile    string // read into jwtSecret (secrets.go)
	apiKeyFile       string // read into apiKey
	adminAddr        string // the /debug/ listener (admin.go)
	adminAllowRemote bool
}

func envName(flagName string) string {
	if flagName == "redis" {
		return "SWITCHBOARD_REDIS_URL"
	}
	return "SWITCHBOARD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseOptions reads flags, then fills every flag not given from the
// environment.
func parseOptions(args []string, getenv func(string) string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("switchboard", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address (host:port)")
	fs.StringVar(&o.redisURL, "redis", "", "Redis URL (redis://[user:pass@]host:port/db, rediss:// for TLS); empty: single node with the in-process broker")
	fs.StringVar(&o.sentinelMaster, "redis-sentinel-master", "", "the primary's name in Redis Sentinel: the node follows failovers (with --redis-sentinels; --redis then gives only credentials and database)")
	fs.StringVar(&o.sentinels, "redis-sentinels", "", "comma-separated host:port of the Redis Sentinels (with --redis-sentinel-master)")
	fs.StringVar(&o.redisCluster, "redis-cluster", "", "comma-separated host:port of some nodes of a Redis Cluster: rooms are spread over its shards on sharded pub/sub (--redis then gives only credentials and TLS)")
	fs.IntVar(&o.partitions, "redis-partitions", 128, "partitions the rooms are spread over on a Redis Cluster (with --redis-cluster; the same on every node)")
	fs.StringVar(&o.nodeID, "node-id", "", "node id in welcome events and broker envelopes (default random)")
	fs.StringVar(&o.channelPrefix, "channel-prefix", "websocket", "broker channel prefix")
	fs.IntVar(&o.maxMessageBytes, "max-message-bytes", 65536, "largest client frame; larger closes the connection with 1009")
	fs.DurationVar(&o.pingInterval, "ping-interval", 25*time.Second, "how often the server pings every client")
	fs.DurationVar(&o.pongTimeout, "pong-timeout", 10*time.Second, "a client that sends nothing (message, ping or pong) within pong-timeout of a ping is dropped")
	fs.DurationVar(&o.writeTimeout, "write-timeout", 10*time.Second, "bound of one write to a client")
	fs.IntVar(&o.maxPendingBytes, "max-pending-bytes", 4<<20, "outbound bytes queued per connection before it is closed as a slow consumer (1013)")
	fs.Int64Var(&o.frameBudget, "frame-budget", 64<<20, "bytes all connections together may reserve for client frames announced and not yet received; past it such a frame waits, then its connection is closed (1013)")
	fs.IntVar(&o.readBufferSize, "read-buffer-size", 1024, "read buffer per connection in bytes (frames larger than the buffer are still read whole, straight into their own memory)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long clients get to be closed (1001) before the process exits")
	fs.StringVar(&o.jwtSecret, "jwt-secret", "", "HS256 secret for JWT authentication (the command line is visible to local users: prefer SWITCHBOARD_JWT_SECRET or --jwt-secret-file)")
	fs.StringVar(&o.jwtSecretFile, "jwt-secret-file", "", "file holding the HS256 secret (trailing line breaks are dropped)")
	fs.StringVar(&o.jwtPublicKey, "jwt-public-key", "", "PEM public key file for RS256 (RSA) or ES256 (ECDSA P-256) JWT authentication")
	fs.StringVar(&o.jwtIssuer, "jwt-issuer", "", "when set, a token's iss must equal it")
	fs.StringVar(&o.jwtAudience, "jwt-audience", "", "when set, a token's aud must contain it")
	fs.DurationVar(&o.jwtLeeway, "jwt-leeway", 5*time.Second, "clock skew tolerated on a token's exp, nbf and iat")
	fs.BoolVar(&o.authRequired, "auth-required", false, "require a token on /ws too (/ws/secure always does)")
	fs.BoolVar(&o.allowAnonymous, "allow-anonymous", false, "with a JWT key, let /ws take clients without a token as guests, with ids guest:NAME that no token can take (without a key every client is anonymous)")
	fs.StringVar(&o.allowedOrigins, "allowed-origins", "", "comma-separated Origin allowlist for browsers, e.g. https://app.example.com,https://*.example.com (empty: any)")
	fs.IntVar(&o.maxConnections, "max-connections", 10000, "refuse new connections with 503 past this many open ones (0: unlimited)")
	fs.IntVar(&o.maxConnsPerIP, "max-connections-per-ip", 0, "refuse new connections with 429 past this many from one address (0: unlimited; keep 0 behind a load balancer)")
	fs.DurationVar(&o.handshakeTimeout, "handshake-timeout", 10*time.Second, "bound on reading a whole HTTP request (head and body) before the upgrade")
	fs.DurationVar(&o.readHeaderTimeout, "read-header-timeout", 5*time.Second, "bound on reading an HTTP request head (slowloris)")
	fs.Float64Var(&o.ratePerSecond, "rate-limit", 100, "client messages (and ping frames) per second per connection (negative: unlimited)")
	fs.IntVar(&o.rateBurst, "rate-burst", 0, "token bucket size (0: twice the rate)")
	fs.IntVar(&o.rateStrikes, "rate-strikes", 100, "rate_limited errors in a row before the connection is closed with 1008")
	fs.IntVar(&o.maxRooms, "max-rooms", 100, "rooms one connection may be in")
	fs.StringVar(&o.connectionEvents, "connection-events", "all", "user_connected/user_disconnected for this node's clients: all (the tutorial's behaviour; every connect costs a frame per connection) or off (a connect costs O(1) frames; past a few thousand connections per node)")
	fs.IntVar(&o.historySize, "history-size", 100, "publications of each room's stream kept for recovery on join (since) and the history query (0: history off, no offsets)")
	fs.DurationVar(&o.historyTTL, "history-ttl", 10*time.Minute, "how long a room's stream is kept after its last publication; then it starts a new epoch")
	fs.BoolVar(&o.allowBinary, "allow-binary", false, "accept binary frames as JSON commands (else close 1008)")
	fs.BoolVar(&o.statsCommand, "stats-command", true, "answer the stats command over WebSockets: any client may ask the node its socket is on for its counts (the demo page's node panel); false: unknown_type")
	fs.StringVar(&o.apiKey, "api-key", "", "bearer key for POST /api/publish (empty: endpoint off; prefer SWITCHBOARD_API_KEY or --api-key-file)")
	fs.StringVar(&o.apiKeyFile, "api-key-file", "", "file holding the --api-key (trailing line breaks are dropped)")
	fs.BoolVar(&o.pprof, "pprof", false, "serve /debug/pprof/ on the admin listener (profiling)")
	fs.BoolVar(&o.chaosKill, "enable-kill", false, "serve GET /debug/actors and POST /debug/kill on the admin listener (chaos testing; keep off in production)")
	fs.StringVar(&o.adminAddr, "admin-addr", defaultAdminAddr, "listen address of the admin listener, which serves /debug/ and opens only with --pprof or --enable-kill")
	fs.BoolVar(&o.adminAllowRemote, "admin-allow-remote", false, "allow a non-loopback --admin-addr (its endpoints ask for no credentials)")
	fs.DurationVar(&o.presenceTTL, "presence-ttl", 30*time.Second, "with --redis: a node that dies without a word (SIGKILL, network cut) is gone from the presence directory and from rooms' presence within this")
	fs.IntVar(&o.outboxLimit, "outbox-limit", 10000, "publishes buffered while Redis is down; beyond it senders get unavailable")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "switchboard: a WebSocket message router.\n\nUsage: switchboard [flags]\n\n"+
			"Every flag may also be set by the environment variable SWITCHBOARD_<FLAG> (dashes as underscores;\n"+
			"--redis reads SWITCHBOARD_REDIS_URL). A flag given on the command line wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fromEnv := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		// A secret and its file form are one setting (secrets.go).
		if given[f.Name] || given[secretPartner(f.Name)] {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			fromEnv[f.Name] = true
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := o.loadSecretFiles(fromEnv); err != nil {
		return nil, err
	}
	return o, o.validate(fromEnv)
}

// validate checks every flag, one error per flag out of its range: each
// names the flag (and its environment variable, when the value came from
// there), the value and what is allowed.
func (o *options) validate(fromEnv map[string]bool) error {
	var errs []error
	ref := func(flag string) string { return flagRef(flag, fromEnv) }
	check := func(ok bool, flag string, v any, allowed string) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s %v is out of range: %s", ref(flag), v, allowed))
		}
	}
	check(o.maxMessageBytes >= transport.MinMessageBytes && o.maxMessageBytes <= transport.MaxMessageLimit, "max-message-bytes", o.maxMessageBytes, "64 to 268435456 (256 MiB)")
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"ping-interval", o.pingInterval}, {"pong-timeout", o.pongTimeout}, {"write-timeout", o.writeTimeout},
		{"drain-timeout", o.drainTimeout}, {"handshake-timeout", o.handshakeTimeout}, {"read-header-timeout", o.readHeaderTimeout},
	} {
		check(d.v > 0, d.flag, d.v, "more than 0s")
	}
	check(o.jwtLeeway >= 0, "jwt-leeway", o.jwtLeeway, "0s or more")
	check(o.frameBudget >= 1<<20, "frame-budget", o.frameBudget, "at least 1048576 (1 MiB)")
	check(o.maxConnections >= 0, "max-connections", o.maxConnections, "0 (unlimited) or more")
	check(o.maxConnsPerIP >= 0, "max-connections-per-ip", o.maxConnsPerIP, "0 (unlimited) or more")
	check(o.maxRooms >= 1, "max-rooms", o.maxRooms, "at least 1")
	check(o.historySize >= 0 && o.historySize <= wire.MaxHistoryLimit, "history-size", o.historySize, fmt.Sprintf("0 (off) to %d", wire.MaxHistoryLimit))
	check(o.historyTTL >= time.Second, "history-ttl", o.historyTTL, "at least 1s")
	check(o.maxPendingBytes >= transport.MinPendingBytes, "max-pending-bytes", o.maxPendingBytes, "at least 1024")
	check(o.rateBurst >= 0, "rate-burst", o.rateBurst, "0 (twice the rate) or more")
	check(o.rateStrikes >= 1, "rate-strikes", o.rateStrikes, "at least 1")
	check(o.outboxLimit >= 0, "outbox-limit", o.outboxLimit, "0 or more")
	check(o.presenceTTL >= time.Second, "presence-ttl", o.presenceTTL, "at least 1s")
	check(o.readBufferSize >= transport.MinReadBuffer && o.readBufferSize <= transport.MaxReadBuffer,
		"read-buffer-size", o.readBufferSize, "256 to 1048576")
	check(o.partitions >= 1 && o.partitions <= 16384, "redis-partitions", o.partitions, "1 to 16384")
	if o.redisCluster != "" && o.sentinelMaster != "" {
		errs = append(errs, fmt.Errorf("%s and %s exclude each other", ref("redis-cluster"), ref("redis-sentinel-master")))
	}
	if (o.sentinelMaster == "") != (o.sentinels == "") {
		errs = append(errs, fmt.Errorf("%s and %s go together", ref("redis-sentinel-master"), ref("redis-sentinels")))
	}
	if o.connectionEvents != "all" && o.connectionEvents != "off" {
		errs = append(errs, fmt.Errorf("%s %q is not a setting: all or off", ref("connection-events"), o.connectionEvents))
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		errs = append(errs, fmt.Errorf("%s %q is not a format: text or json", ref("log-format"), o.logFormat))
	}
	if _, err := parseLevel(o.logLevel); err != nil {
		errs = append(errs, fmt.Errorf("%s %q is not a level: debug, info, warn, error or a number", ref("log-level"), o.logLevel))
	}
	if o.jwtSecret != "" && o.jwtPublicKey != "" {
		errs = append(errs, fmt.Errorf("%s and %s are exclusive", ref("jwt-secret"), ref("jwt-public-key")))
	}
	if o.authRequired && o.jwtSecret == "" && o.jwtPublicKey == "" {
		errs = append(errs, fmt.Errorf("%s needs --jwt-secret or --jwt-public-key", ref("auth-required")))
	}
	if o.allowAnonymous && (o.authRequired || o.jwtSecret == "" && o.jwtPublicKey == "") {
		errs = append(errs, fmt.Errorf("%s needs --jwt-secret or --jwt-public-key, and excludes --auth-required", ref("allow-anonymous")))
	}
	if err := checkAdminAddr(o.adminAddr, o.adminAllowRemote); err != nil {
		if fromEnv["admin-addr"] {
			err = fmt.Errorf("%s: %w", envName("admin-addr"), err)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (level int, err error) {
	switch strings.ToLower(s) {
	case "debug":
		return -4, nil
	case "info":
		return 0, nil
	case "warn":
		return 4, nil
	case "error":
		return 8, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
}

func origins(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

var _ = os.Getenv

// newAuthenticator builds the token verifier from the --jwt-* flags; nil
// when neither a secret nor a public key is given (then /ws is open and
// /ws/secure refuses everyone).
func newAuthenticator(o *options, log *slog.Logger) (*transport.Authenticator, error) {
	cfg := transport.AuthConfig{Issuer: o.jwtIssuer, Audience: o.jwtAudience, Leeway: o.jwtLeeway}
	switch {
	case o.jwtSecret != "":
		cfg.Secret = []byte(o.jwtSecret)
		if len(cfg.Secret) < 32 {
			log.Warn("--jwt-secret is shorter than 32 bytes: a single token lets an attacker search for it offline")
		}
	case o.jwtPublicKey != "":
		pem, err := transport.ReadPublicKeyFile(o.jwtPublicKey)
		if err != nil {
			return nil, err
		}
		cfg.PublicKeyPEM = pem
	default:
		return nil, nil
	}
	a, err := transport.NewAuthenticator(cfg)
	if err != nil {
		return nil, err
	}
	log.Info("token authentication on", "alg", a.Algorithm(), "required_on_ws", o.authRequired, "guests_on_ws", o.allowAnonymous,
		"issuer", o.jwtIssuer, "audience", o.jwtAudience)
	return a, nil
}
