package transport

import (
	"errors"
	"strconv"

	"github.com/lxzan/gws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// registerSecurityMetrics adds what an operator watches for abuse: closes
// by code (1008 floods and binary frames, 1009 oversized frames, 1013 slow
// consumers, 4001 expired tokens), protocol errors by code (forbidden,
// too_many_rooms, invalid_room, ...), and slowloris pressure.
func (s *Server) registerSecurityMetrics() {
	s.closes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_closes_total",
		Help: "WebSockets ended, by the close code the node sent (1008 policy, 1009 too big, 1013 slow consumer, 4001 token expired, ...) or \"peer\" when the client closed or vanished.",
	}, []string{"code"})
	m := s.node.Metrics()
	collectors := []prometheus.Collector{
		s.closes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_http_heads_pending",
			Help: "HTTP connections accepted on which no complete request has arrived yet (slowloris pressure).",
		}, func() float64 { return float64(s.heads.pending.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "switchboard_http_heads_abandoned_total",
			Help: "HTTP connections closed before any complete request: header-read timeouts (slowloris), oversized or malformed heads, scans.",
		}, func() float64 { return float64(s.heads.abandoned.Load()) }),
	}
	for _, code := range wire.ErrorCodes() {
		collectors = append(collectors, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "switchboard_client_errors_total",
			Help:        "Error events sent to clients, by protocol error code.",
			ConstLabels: prometheus.Labels{"code": string(code)},
		}, func() float64 { return float64(m.ErrorsByCode.Load(code)) }))
	}
	s.metrics.reg.MustRegister(collectors...)
}

// closeCoder is what gws hands OnClose after a close the node initiated
// (its unexported StatusCode type).
type closeCoder interface{ Uint16() uint16 }

// countClose counts one ended socket by the code the node sent.
func (s *Server) countClose(err error, silent bool) {
	var local closeCoder
	var remote *gws.CloseError
	label := "peer" // the client closed, reset or vanished
	switch {
	case silent:
		label = "timeout" // silent past the heartbeat
	case errors.As(err, &remote):
	case errors.As(err, &local):
		label = strconv.Itoa(int(local.Uint16()))
	case errors.Is(err, gws.ErrTextEncoding):
		label = "1007" // gws closed it for invalid UTF-8 but reports only the cause
	}
	s.closes.WithLabelValues(label).Inc()
}
