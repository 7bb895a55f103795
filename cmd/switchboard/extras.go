package main

import (
	"log/slog"

	"github.com/switchboard-rt/switchboard/transport"
)

// mountExtras adds the optional endpoints: the demo page, the publish API and
// the chaos kill switch.
func mountExtras(srv *transport.Server, o *options, log *slog.Logger) {}
