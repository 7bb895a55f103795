package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster"
	"github.com/switchboard-rt/switchboard/cluster/redis"
)

// newBroker picks the broker: in-process without --redis, Redis with it.
func newBroker(o *options, log *slog.Logger) (actors.Broker, error) {
	if o.redisURL == "" && o.sentinelMaster == "" && o.redisCluster == "" {
		return cluster.NewInProc(), nil
	}
	list := func(csv string) []string {
		var out []string
		for _, s := range strings.Split(csv, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	partitions := 0
	if o.redisCluster != "" {
		partitions = o.partitions
	}
	goredis.SetLogger(goRedisLogger{log.With("lib", "go-redis")})
	return redis.New(redis.Config{
		URL: o.redisURL,
		// --outbox-limit 0 means: buffer nothing beyond the command in flight.
		OutboxLimit:    max(o.outboxLimit, 1),
		PresenceTTL:    o.presenceTTL,
		SentinelMaster: o.sentinelMaster,
		Sentinels:      list(o.sentinels),
		ClusterAddrs:   list(o.redisCluster),
		Partitions:     partitions,
		Logger:         log,
	})
}

// goRedisLogger routes go-redis's own messages (failed dials while Redis is
// down, mostly) to the node's logger at debug level: the broker reports the
// same faults once, at warn, with what it does about them.
type goRedisLogger struct{ log *slog.Logger }

func (l goRedisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, v...))
	}
}
