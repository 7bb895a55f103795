package redis_test

import (
	"errors"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redis"
)

// TestRedisConfigErrorsNameTheField: each negative field of Config is
// reported on a line of its own, by name, with its value.
func TestRedisConfigErrorsNameTheField(t *testing.T) {
	_, err := redis.New(redis.Config{URL: "redis://127.0.0.1:6379/0", OutboxLimit: -1, ProbeTimeout: -time.Second})
	want := "cluster: redis: OutboxLimit -1 is out of range: 0 or more (0: 10000)\n" +
		"cluster: redis: ProbeTimeout -1s is out of range: 0 or more (0: 2s)"
	if err == nil || err.Error() != want || !errors.Is(err, redis.ErrLimits) {
		t.Fatalf("got %v\nwant %s (and errors.Is ErrLimits)", err, want)
	}
}
