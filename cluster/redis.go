package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/switchboard-rt/switchboard/actors"
)

// RedisConfig configures a Redis broker. The zero value of every field but
// URL is documented and filled in by NewRedis.
type RedisConfig struct {
	// URL is redis://[user:pass@]host:port/db, or rediss:// for TLS. Query
	// parameters go-redis understands (dial_timeout, ...) are honoured.
	// Required.
	URL string
	// PubSubConnections is how many Redis connections carry this node's
	// subscriptions. The hub's channels (broadcast, this node's direct
	// channel) have the first one to themselves; rooms are spread over the
	// others by a hash of the channel name. Zero: 2.
	PubSubConnections int
	// OutboxLimit bounds the publishes waiting to be sent (in flight, held
	// while Redis is unreachable, or while the subscriptions recover).
	// Beyond it Publish refuses with actors.ErrUnavailable. Zero: 10000.
	OutboxLimit int
	// MaxBatch bounds how many waiting commands one pipelined round trip
	// carries. Zero: 512.
	MaxBatch int
	// InboundBytes bounds the bytes read from Redis and not yet handed to
	// the rooms and the hub. A message that does not fit is dropped and
	// counted; the connection's read loop never waits. Zero: 64 MiB.
	InboundBytes int
	// ProbeIdle is how long a subscription connection may hear nothing before
	// it publishes a probe to itself. Zero: 5 s.
	ProbeIdle time.Duration
	// ProbeTimeout is how long a probe, or the confirmation of a
	// (re)subscription, may take before the connection is declared dead and
	// restarted. Zero: 2 s.
	ProbeTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between restarts of a
	// failed connection: it doubles from ReconnectMin up to ReconnectMax,
	// with 20% jitter. Zero: 50 ms and 1 s.
	ReconnectMin, ReconnectMax time.Duration
	// FlushWait is how long, after a fault, the outbox waits for the other
	// nodes to be subscribed again before it sends what it holds anyway
	// (a node may have died meanwhile). Zero: 3 s.
	FlushWait time.Duration
	// PresenceTTL is how long this node's entry in the presence directory
	// lives without a heartbeat; heartbeats come every PresenceTTL/3. A node
	// that dies stops being a destination for direct messages after at most
	// PresenceTTL, and its users are reported user_disconnected within
	// PresenceTTL + PresenceTTL/3. Zero: 15 s.
	PresenceTTL time.Duration
	// ResendWindow: when this node notices that its subscriptions died,
	// what it published during this time before is sent again after the
	// recovery, because Redis drops what it had not yet written to a
	// subscriber it closes. Receivers drop the copies they had (by msg_id;
	// see redis_msgid.go). Zero: 500 ms.
	ResendWindow time.Duration
	// CommandTimeout bounds one round trip to Redis. Zero: 5 s.
	CommandTimeout time.Duration
	// Logger receives the broker's logs. Zero: discard.
	Logger *slog.Logger
}

// RedisConfig errors. A negative field is reported by name, with its
// value; the error matches ErrRedisLimits under errors.Is.
var (
	ErrRedisURL    = errors.New("cluster: redis: URL must be redis:// or rediss://")
	ErrRedisLimits = errors.New("cluster: redis: limits and durations must not be negative")
)

// redisFieldError is one RedisConfig field out of its range.
type redisFieldError struct {
	field, zero string
	value       any
}

func (e *redisFieldError) Error() string {
	return fmt.Sprintf("cluster: redis: %s %v is out of range: 0 or more (0: %s)", e.field, e.value, e.zero)
}

func (e *redisFieldError) Is(target error) bool { return target == ErrRedisLimits }

func notNegative[T int | time.Duration](field string, v T, zero string) error {
	if v >= 0 {
		return nil
	}
	return &redisFieldError{field: field, zero: zero, value: v}
}

func (c *RedisConfig) normalize() (*redis.Options, error) {
	if !strings.HasPrefix(c.URL, "redis://") && !strings.HasPrefix(c.URL, "rediss://") {
		return nil, ErrRedisURL
	}
	opts, err := redis.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("cluster: redis: %w", err)
	}
	if err := errors.Join(
		notNegative("PubSubConnections", c.PubSubConnections, "2"),
		notNegative("OutboxLimit", c.OutboxLimit, "10000"),
		notNegative("MaxBatch", c.MaxBatch, "512"),
		notNegative("InboundBytes", c.InboundBytes, "64 MiB"),
		notNegative("ProbeIdle", c.ProbeIdle, "5s"),
		notNegative("ProbeTimeout", c.ProbeTimeout, "2s"),
		notNegative("ReconnectMin", c.ReconnectMin, "50ms"),
		notNegative("ReconnectMax", c.ReconnectMax, "1s"),
		notNegative("FlushWait", c.FlushWait, "3s"),
		notNegative("PresenceTTL", c.PresenceTTL, "15s"),
		notNegative("CommandTimeout", c.CommandTimeout, "5s"),
		notNegative("ResendWindow", c.ResendWindow, "500ms"),
	); err != nil {
		return nil, err
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.PubSubConnections, 2)
	def(&c.OutboxLimit, 10000)
	def(&c.MaxBatch, 512)
	def(&c.InboundBytes, 64<<20)
	defd(&c.ProbeIdle, 5*time.Second)
	defd(&c.ProbeTimeout, 2*time.Second)
	defd(&c.ReconnectMin, 50*time.Millisecond)
	defd(&c.ReconnectMax, time.Second)
	defd(&c.FlushWait, 3*time.Second)
	defd(&c.PresenceTTL, 15*time.Second)
	defd(&c.CommandTimeout, 5*time.Second)
	defd(&c.ResendWindow, 500*time.Millisecond)
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// Every connection is owned by one goroutine or actor of this broker,
	// which decides itself when to retry and with what backoff: go-redis
	// must neither retry commands (a retried PUBLISH is a duplicate) nor
	// hold dials behind its own circuit breaker.
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	opts.PoolSize = 4
	opts.DisableIdentity = true
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if opts.Protocol == 0 {
		opts.Protocol = 2 // plain RESP2 pub/sub works with every Redis version
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = c.CommandTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = c.CommandTimeout
	}
	return opts, nil
}

// Redis is the actors.Broker for a cluster of nodes sharing one Redis. It is
// wire-compatible with the FastAPI tutorial's nodes (PROTOCOL.md section 5):
// channels PREFIX:broadcast and PREFIX:room:ROOM carry the tutorial's
// envelopes, and direct messages go to PREFIX:node:ID of the nodes that the
// presence directory says hold the user.
//
// Its parts, each with one owner:
//
//   - the bus actor (redis_bus.go) owns the registry of which local actors
//     need which channel: the source of truth every re-subscription is
//     rebuilt from;
//   - one pubsubConn actor per pub/sub connection (redis_conn.go) owns a
//     go-redis PubSub, its read loop and its liveness probe, and is restarted
//     with backoff by the bus when the connection fails;
//   - one subscription actor per channel (redis_subscription.go) decodes each
//     envelope once and hands it to the channel's local targets;
//   - the outbox (redis_outbox.go) owns publishing: a bounded FIFO drained
//     by one writer goroutine in pipelined batches;
//   - the presence heartbeat (redis_presence.go) keeps this node in the
//     directory and reaps nodes that stopped heart-beating.
//
// Every method of the actors.Broker interface may be called from any
// goroutine and returns without waiting on the network.
type Redis struct {
	cfg  RedisConfig
	opts *redis.Options // parsed URL; each connection owner clones it
	log  *slog.Logger

	host actors.BrokerHost
	keys redisKeys
	bus  *actor.PID
	// busName is the bus's actor id, set before it is spawned: its
	// children may fail (Redis unreachable) before Start has stored bus,
	// and their supervisor tells connections from subscriptions by it.
	busName string
	out     *outbox
	pres    *presence

	stats redisStats
	// inflight counts the bytes read from Redis and not yet delivered by a
	// subscription actor: added by the read loops, released by the
	// subscription actors (or the connection actor, for a message it cannot
	// route). It bounds the inbound hand-off (RedisConfig.InboundBytes).
	inflight atomic.Int64

	health health
	outage outageLog // reports the pub/sub connections' outages (redis_outage.go)
	// carry[i] holds the deliveries pub/sub connection actor i had read but
	// not routed when it restarted, for its next incarnation. Only that
	// actor touches carry[i]; its incarnations follow one another.
	carry [][]*delivery

	ctx     context.Context // cancelled by Close: ends every goroutine
	cancel  context.CancelFunc
	wg      sync.WaitGroup // every goroutine the broker starts
	started atomic.Bool    // Start was called
	running atomic.Bool    // Start completed: the parts below host exist
	closed  atomic.Bool
}

var _ actors.Broker = (*Redis)(nil)

// NewRedis checks cfg and returns a broker that connects when the node
// starts it.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	opts, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	r := &Redis{cfg: cfg, opts: opts, log: cfg.Logger.With("broker", "redis")}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.health.init(cfg.PubSubConnections)
	r.carry = make([][]*delivery, cfg.PubSubConnections)
	return r, nil
}

// Config returns the normalised configuration.
func (r *Redis) Config() RedisConfig { return r.cfg }

// newClient returns a fresh go-redis client for one owner (a connection
// actor's incarnation, the outbox writer, the heartbeat). A fresh client per
// reconnect means no state of a failed connection (pool circuit breaker,
// remembered subscriptions) outlives it.
func (r *Redis) newClient(role string) *redis.Client {
	return redis.NewClient(r.clientOptions(role))
}

// clientOptions is a private copy of the parsed options for one client.
func (r *Redis) clientOptions(role string) *redis.Options {
	o := *r.opts
	o.ClientName = "switchboard:" + r.host.NodeID + ":" + role
	return &o
}

// goTracked runs f on a goroutine that Close waits for.
func (r *Redis) goTracked(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

// Start implements actors.Broker: it spawns the bus (and through it the
// pub/sub connections) in the node's actor system and starts the outbox
// writer and the presence heartbeat. It does not wait for Redis: a node
// whose Redis is unreachable starts, serves its local clients, and reports
// not ready until the connections are up.
func (r *Redis) Start(host actors.BrokerHost) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("cluster: redis: Start called twice")
	}
	if r.closed.Load() {
		return errors.New("cluster: redis: closed")
	}
	r.host = host
	r.log = r.log.With(actors.KeyNode, host.NodeID)
	r.keys = newRedisKeys(host.Prefix, host.NodeID)
	r.out = newOutbox(r)
	r.pres = newPresence(r)
	props := actor.PropsFromProducer(func() actor.Actor { return newBus(r) },
		actor.WithMailbox(actor.UnboundedPriority()), // see subscribePriority
		actor.WithGuardian(resumeBusOnPanic(&r.stats)),
		actor.WithSupervisor(&restartSubscriptionWithBackoff{r: r}))
	r.busName = "redis-" + host.NodeID
	pid, err := host.Root.SpawnNamed(props, r.busName)
	if err != nil {
		return fmt.Errorf("cluster: redis: spawn bus: %w", err)
	}
	r.bus = pid
	r.goTracked(r.out.run)
	r.goTracked(r.pres.run)
	r.running.Store(true)
	return nil
}

// Publish implements actors.Broker.
func (r *Redis) Publish(channel string, data []byte) error {
	if !r.running.Load() {
		return actors.ErrUnavailable
	}
	return r.out.publish(channel, data)
}

// Subscribe implements actors.Broker.
func (r *Redis) Subscribe(channel string, target *actor.PID) {
	if !r.running.Load() || r.closed.Load() {
		return
	}
	r.host.Root.Send(r.bus, &busSubscribe{channel: channel, target: target, on: true})
}

// Unsubscribe implements actors.Broker.
func (r *Redis) Unsubscribe(channel string, target *actor.PID) {
	if !r.running.Load() || r.closed.Load() {
		return
	}
	r.host.Root.Send(r.bus, &busSubscribe{channel: channel, target: target})
}

// SendDirect implements actors.Broker: one round trip runs a script that
// reads the user's nodes from the presence directory and publishes data on
// each live one's PREFIX:node:ID channel. done runs on the outbox writer.
func (r *Redis) SendDirect(user string, data []byte, done func(nodes int, err error)) {
	if !r.running.Load() {
		done(0, actors.ErrUnavailable)
		return
	}
	r.out.direct(user, data, done)
}

// UserOnline implements actors.Broker.
func (r *Redis) UserOnline(user string) {
	if r.running.Load() {
		r.out.presence(user, true)
	}
}

// UserOffline implements actors.Broker.
func (r *Redis) UserOffline(user string) {
	if r.running.Load() {
		r.out.presence(user, false)
	}
}

// Subscriptions lists the channels this node subscribes, with the id of
// each channel's subscription actor (for actors.Node.Kill in chaos tests,
// and for operators).
func (r *Redis) Subscriptions(ctx context.Context) (map[string]string, error) {
	if !r.running.Load() {
		return nil, errors.New("cluster: redis: not started")
	}
	d := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	res, err := r.host.Root.RequestFuture(r.bus, &subscriptionsQuery{}, d).Result()
	if err != nil {
		return nil, err
	}
	return res.(map[string]string), nil
}

// State implements actors.Broker. Connected is true while every pub/sub
// connection is subscribed and answering probes and the last round trip of
// the outbox succeeded.
func (r *Redis) State() actors.BrokerState {
	if !r.running.Load() {
		return actors.BrokerState{Kind: "redis", Detail: "not started"}
	}
	up, total := r.health.upCount()
	st := actors.BrokerState{Kind: "redis", Outbox: r.out.len()}
	st.Connected = !r.closed.Load() && up == total && !r.out.failing.Load()
	st.Detail = fmt.Sprintf("pubsub %d/%d up, %d channels", up, total, r.stats.subscriptions.Load())
	if r.out.failing.Load() {
		st.Detail += ", publishing failing"
	}
	return st
}

// Close implements actors.Broker. It sends what the outbox holds while
// Redis is reachable (bounded by ctx), and last removes this node from the
// presence directory (reporting user_disconnected for any user still listed
// under it); then it stops the actors and waits for every goroutine. It is
// idempotent.
func (r *Redis) Close(ctx context.Context) error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	if !r.running.Load() {
		r.cancel()
		return nil
	}
	left := r.out.close(ctx)
	stopped := make(chan struct{})
	go func() {
		r.host.Root.StopFuture(r.bus).Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
	}
	r.cancel()
	waited := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		return fmt.Errorf("cluster: redis: close: %w", ctx.Err())
	}
	if left > 0 {
		return fmt.Errorf("cluster: redis: close: %d publishes not sent", left)
	}
	return nil
}

// redisKeys are the channel and key names, computed once.
type redisKeys struct {
	prefix    string
	node      string
	broadcast string // PREFIX:broadcast
	nodeChan  string // PREFIX:node:ID (this node's direct channel)
	ownMarker string // `,"node":"ID","payload":` (see ownEnvelope)
	msgID     string // `,"msg_id":"ID~INCARNATION:` (see withMsgID)

	nodes     string // PREFIX:presence:nodes: set of registered node ids
	alive     string // PREFIX:presence:alive:ID: this node's liveness key (TTL)
	nodeUsers string // PREFIX:presence:node:ID: users with a session on this node
	reaped    string // PREFIX:presence:reaped:ID: tombstone left when this node was reaped
}

func newRedisKeys(prefix, node string) redisKeys {
	id := string(actors.AppendJSONString(nil, node))
	return redisKeys{
		prefix:    prefix,
		node:      node,
		broadcast: actors.BroadcastChannel(prefix),
		nodeChan:  actors.NodeChannel(prefix, node),
		ownMarker: `,"node":` + id + `,"payload":`,
		msgID:     msgIDPrefix(node + "~" + actors.RandomID(6)),
		nodes:     prefix + ":presence:nodes",
		alive:     prefix + ":presence:alive:" + node,
		nodeUsers: prefix + ":presence:node:" + node,
		reaped:    prefix + ":presence:reaped:" + node,
	}
}

// userKey is PREFIX:presence:user:USER, the set of nodes holding user.
func (k *redisKeys) userKey(user string) string { return k.prefix + ":presence:user:" + user }

// probeChannel is PREFIX:probe:NODE:INDEX: connection index subscribes to it
// and publishes probes to itself on it.
func (k *redisKeys) probeChannel(index int) string {
	return fmt.Sprintf("%s:probe:%s:%d", k.prefix, k.node, index)
}

// ownEnvelope reports whether data is an envelope this node encoded itself
// (actors.Envelope.Encode writes "node" right before "payload"). The read
// loop skips those before they cost a decode: the hub and the rooms would
// drop them anyway, having delivered them locally. The test is exact for
// Encode's output: `,"payload":` cannot occur inside a JSON string, so its
// first occurrence in an object that starts with "type" is the top-level key.
func ownEnvelope(data, marker string) bool {
	if !strings.HasPrefix(data, `{"type":"`) {
		return false
	}
	i := strings.Index(data, `,"payload":`)
	return i >= 0 && strings.HasSuffix(data[:i+len(`,"payload":`)], marker)
}

// health tracks which pub/sub connections are up, for State and for the
// outbox's gate. It is written by the connection actors and read by HTTP
// handlers and the outbox writer.
type health struct {
	mu        sync.Mutex // guards the fields below
	up        []bool
	downSince time.Time // when the first connection went down; zero while all are up
	epoch     uint64    // bumped each time all connections are up again
	lastOut   time.Duration
}

func (h *health) init(n int) {
	h.up = make([]bool, n)
	h.downSince = time.Now()
}

// set records connection i's state. It returns true when this made every
// connection up (a recovery).
func (h *health) set(i int, up bool) (recovered bool, outage time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.up[i] == up {
		return false, 0
	}
	h.up[i] = up
	if !up {
		if h.downSince.IsZero() {
			h.downSince = time.Now()
		}
		return false, 0
	}
	for _, u := range h.up {
		if !u {
			return false, 0
		}
	}
	outage = time.Since(h.downSince)
	h.downSince = time.Time{}
	h.epoch++
	h.lastOut = outage
	return true, outage
}

func (h *health) upCount() (up, total int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range h.up {
		if u {
			up++
		}
	}
	return up, len(h.up)
}

// allUp reports whether every connection is up, and the recovery epoch.
func (h *health) allUp() (bool, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.downSince.IsZero(), h.epoch
}
