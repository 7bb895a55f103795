package main

import (
	"log/slog"

	"github.com/switchboard-rt/switchboard/transport"
)

// mountExtras adds the optional endpoints: the demo page at / (always: it is
// static and talks only to this node's public endpoints) and POST
// /api/publish, which answers 404 unless --api-key is set.
func mountExtras(srv *transport.Server, o *options, log *slog.Logger) {
	srv.MountDemo()
	srv.Handle(transport.PublishPath, srv.PublishAPI(o.apiKey))
	srv.Handle(transport.PresencePath, srv.PresenceAPI(o.apiKey))
	if o.apiKey != "" {
		log.Info("publish API enabled", "path", transport.PublishPath)
	}
}
