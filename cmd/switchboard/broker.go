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
	if o.redisURL == "" && o.sentinelMaster == "" {
		return cluster.NewInProc(), nil
	}
	var sentinels []string
	for _, s := range strings.Split(o.sentinels, ",") {
		if s = strings.TrimSpace(s); s != "" {
			sentinels = append(sentinels, s)
		}
	}
	goredis.SetLogger(goRedisLogger{log.With("lib", "go-redis")})
	return redis.New(redis.Config{
		URL: o.redisURL,
		// --outbox-limit 0 means: buffer nothing beyond the command in flight.
		OutboxLimit:    max(o.outboxLimit, 1),
		PresenceTTL:    o.presenceTTL,
		SentinelMaster: o.sentinelMaster,
		Sentinels:      sentinels,
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
