package redis

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Config configures a Redis broker. The zero value of every field but
// URL is documented and filled in by New.
type Config struct {
	// URL is redis://[user:pass@]host:port/db, or rediss:// for TLS. Query
	// parameters go-redis understands (dial_timeout, ...) are honoured.
	// Required, except with SentinelMaster, where it may only give the
	// credentials and the database (its host is not used), and with
	// ClusterAddrs, where it may only give the credentials and TLS.
	URL string
	// ClusterAddrs (host:port of some nodes of a Redis Cluster) selects
	// cluster mode (partition.go): rooms are spread over Partitions
	// partitions, each on its own hash slot, sharded channel and pub/sub
	// connection. The node learns the rest of the cluster from them, and
	// follows slot migrations and failovers.
	ClusterAddrs []string
	// Partitions is how many partitions the rooms are spread over on a
	// Redis Cluster. Every node of one Switchboard cluster must use the same
	// number. Zero: 128 (3 to 16 shards each get a share within 1.2 of
	// the mean).
	Partitions int
	// SentinelMaster names the primary that Redis Sentinel watches, at
	// Sentinels (host:port each): every connection asks the sentinels
	// where the primary is when it connects, so the node follows a
	// failover; a connection to a demoted primary fails (its writes are
	// refused) and the next one reaches the new primary. A pub/sub
	// connection also asks them every ProbeTimeout/4 (500 ms by default)
	// and moves as soon as they name another server (the newest answer,
	// by config-epoch), without waiting for the old primary, still up after
	// SENTINEL FAILOVER, to be demoted; the stream reads follow it
	// (link_sentinel.go). SentinelPassword authenticates to the sentinels.
	SentinelMaster   string
	Sentinels        []string
	SentinelPassword string
	// PubSubConnections is how many Redis connections carry this node's
	// subscriptions. The hub's channels (broadcast, this node's direct
	// channel) have the first one to themselves; rooms are spread over the
	// others by a hash of the channel name. Zero: 2. On a Redis Cluster it
	// is 1 + Partitions, whatever is set here.
	PubSubConnections int
	// OutboxLimit bounds the publishes waiting to be sent (in flight, held
	// while Redis is unreachable, or while the subscriptions recover).
	// Beyond it Publish refuses with port.ErrUnavailable. The node's own
	// membership events (PublishPresence) may fill it 20 times further, so
	// that a mass exit does not lose them. Zero: 10000.
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
	// see msgid.go). Zero: 500 ms.
	ResendWindow time.Duration
	// CommandTimeout bounds one round trip to Redis. Zero: 5 s.
	CommandTimeout time.Duration
	// Logger receives the broker's logs. Zero: discard.
	Logger *slog.Logger
}

// Config errors. A negative field is reported by name, with its
// value; the error matches ErrLimits under errors.Is.
var (
	ErrURL    = errors.New("cluster: redis: URL must be redis:// or rediss://")
	ErrLimits = errors.New("cluster: redis: limits and durations must not be negative")
)

// fieldError is one Config field out of its range.
type fieldError struct {
	field, zero string
	value       any
}

func (e *fieldError) Error() string {
	return fmt.Sprintf("cluster: redis: %s %v is out of range: 0 or more (0: %s)", e.field, e.value, e.zero)
}

func (e *fieldError) Is(target error) bool { return target == ErrLimits }

func notNegative[T int | time.Duration](field string, v T, zero string) error {
	if v >= 0 {
		return nil
	}
	return &fieldError{field: field, zero: zero, value: v}
}

func (c *Config) normalize() (*goredis.Options, error) {
	if c.SentinelMaster != "" {
		if len(c.Sentinels) == 0 {
			return nil, errors.New("cluster: redis: SentinelMaster needs Sentinels (host:port of each sentinel)")
		}
		if c.URL == "" {
			c.URL = "redis://127.0.0.1:6379/0" // credentials and database only
		}
	} else if len(c.Sentinels) > 0 {
		return nil, errors.New("cluster: redis: Sentinels need SentinelMaster (the name of the primary they watch)")
	}
	if len(c.ClusterAddrs) > 0 {
		if c.SentinelMaster != "" {
			return nil, errors.New("cluster: redis: ClusterAddrs and SentinelMaster exclude each other (a Redis Cluster fails over by itself)")
		}
		if c.URL == "" {
			c.URL = "redis://127.0.0.1:6379/0" // credentials and TLS only
		}
	} else if c.Partitions != 0 {
		return nil, errors.New("cluster: redis: Partitions needs ClusterAddrs (it spreads rooms over a Redis Cluster)")
	}
	if !strings.HasPrefix(c.URL, "redis://") && !strings.HasPrefix(c.URL, "rediss://") {
		return nil, ErrURL
	}
	opts, err := goredis.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("cluster: redis: %w", err)
	}
	if err := errors.Join(
		notNegative("PubSubConnections", c.PubSubConnections, "2"),
		notNegative("Partitions", c.Partitions, "128"),
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
	if len(c.ClusterAddrs) > 0 {
		if opts.DB != 0 {
			return nil, errors.New("cluster: redis: a Redis Cluster has only database 0")
		}
		def(&c.Partitions, defaultPartitions)
		if c.Partitions > slots {
			return nil, fmt.Errorf("cluster: redis: Partitions %d is out of range: at most %d (one per hash slot)", c.Partitions, slots)
		}
		c.PubSubConnections = 1 + c.Partitions
	}
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
