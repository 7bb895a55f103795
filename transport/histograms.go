package transport

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// actorHistogram exports a port.Histogram (power-of-two buckets, counted
// with atomics by the actors) as a Prometheus histogram. It is read only when
// /metrics is scraped; the actors never touch a Prometheus type.
type actorHistogram struct {
	desc *prometheus.Desc
	h    *port.Histogram
	// unit converts the histogram's unit to the exported one (1e-6 for
	// microseconds to seconds).
	unit float64
	// first and last are the bucket indexes exported as upper bounds
	// unit x 2^i; lower buckets fold into the first, higher ones into +Inf.
	first, last int
}

func (c *actorHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *actorHistogram) Collect(ch chan<- prometheus.Metric) {
	s := c.h.Snapshot()
	buckets := make(map[float64]uint64, c.last-c.first+1)
	var cum uint64
	for i := 0; i <= c.last; i++ {
		cum += s.Counts[i]
		if i >= c.first {
			buckets[c.unit*math.Ldexp(1, i)] = cum
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.desc, s.Count, float64(s.Sum)*c.unit, buckets)
}

// registerActorHistograms adds the delivery latency and fan-out size
// histograms, and the hub's mailbox depth.
func registerActorHistograms(reg *prometheus.Registry, m *port.Metrics) {
	reg.MustRegister(
		&actorHistogram{
			desc: prometheus.NewDesc("switchboard_delivery_latency_seconds",
				"Time from a message reaching the node (client command handled, broker envelope received, API publish) "+
					"to its frame being queued on a recipient's socket writer. One delivery in "+
					"8 per connection is timed (actors.LatencySampleEvery).", nil, nil),
			h: &m.DeliveryLatency, unit: 1e-6, first: 3, last: 23, // 8 us .. 8.4 s
		},
		&actorHistogram{
			desc: prometheus.NewDesc("switchboard_fanout_recipients",
				"Local recipients of each fan-out (a room's members on this node, or every local connection for a broadcast).", nil, nil),
			h: &m.FanoutSize, unit: 1, first: 0, last: 20, // 1 .. 1,048,576
		},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_hub_mailbox_depth",
			Help: "Messages waiting for the hub actor (the node's directory); a queue that grows delays joins, broadcasts and broker traffic.",
		}, func() float64 { return float64(m.HubMailboxDepth()) }),
	)
}
