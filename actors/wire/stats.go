package wire

import "encoding/json"

// Stats is the body of the stats event (docs/protocol.md, section 2), the
// answer to a StatsCmd: the node's own view, the same values as the fields
// of the same names in GET /stats, less the broker's detail (its
// connections and channels).
type Stats struct {
	Event            string      `json:"event"` // "stats": StatsEvent sets it
	Node             string      `json:"node"`
	LocalConnections int64       `json:"local_connections"`
	Rooms            int64       `json:"rooms"`
	Users            int64       `json:"users"`
	UptimeSeconds    float64     `json:"uptime_seconds"`
	Broker           StatsBroker `json:"broker"`
	MessagesIn       int64       `json:"messages_in"`
	MessagesOut      int64       `json:"messages_out"`
	HeapBytes        uint64      `json:"heap_bytes"`
}

// StatsBroker is the broker's part of Stats.
type StatsBroker struct {
	Kind      string `json:"kind"`      // "inproc" or "redis"
	Connected bool   `json:"connected"` // false while the fabric is unreachable
	Outbox    int    `json:"outbox"`    // publishes waiting for the fabric
}

// StatsEvent encodes s as the stats event.
func StatsEvent(s Stats) *Event {
	s.Event = "stats"
	body, _ := json.Marshal(&s) // plain fields only: it cannot fail
	return NewEvent(body)
}
