package port

// BrokerState is a snapshot of a broker's health.
type BrokerState struct {
	Kind      string `json:"kind"`      // "inproc" or "redis"
	Connected bool   `json:"connected"` // false while the fabric is unreachable
	Outbox    int    `json:"outbox"`    // publishes waiting for the fabric
	Detail    string `json:"detail,omitempty"`
}
