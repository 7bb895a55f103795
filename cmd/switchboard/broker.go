package main

import (
	"errors"
	"log/slog"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster"
)

// newBroker picks the broker: in-process without --redis, Redis with it.
func newBroker(o *options, log *slog.Logger) (actors.Broker, error) {
	if o.redisURL == "" {
		return cluster.NewInProc(), nil
	}
	return nil, errors.New("--redis: cluster mode is not built into this binary yet")
}
