package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"
)

// nodeStats is the part of a node's /stats document the load tool reads.
// Switchboard's transport.Stats and the baseline server both produce it.
type nodeStats struct {
	LocalConnections int64  `json:"local_connections"`
	Rooms            int64  `json:"rooms"`
	Node             string `json:"node"`
	MessagesOut      int64  `json:"messages_out"`
	Goroutines       int    `json:"goroutines"`
	HeapBytes        uint64 `json:"heap_bytes"`
	StackBytes       uint64 `json:"stack_bytes"`
	RSSBytes         uint64 `json:"rss_bytes"`
}

var statsClient = &http.Client{Timeout: 10 * time.Second}

// fetchStats reads /stats of the node at ws base URL node.
func fetchStats(ctx context.Context, node string) (nodeStats, error) {
	var st nodeStats
	u, err := statsURL(node)
	if err != nil {
		return st, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return st, err
	}
	resp, err := statsClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: HTTP %d", u, resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// sumStats adds up the stats of every node; errors are returned joined.
func sumStats(ctx context.Context, nodes []string) (nodeStats, error) {
	var total nodeStats
	for _, n := range nodes {
		st, err := fetchStats(ctx, n)
		if err != nil {
			return total, err
		}
		total.LocalConnections += st.LocalConnections
		total.Rooms += st.Rooms
		total.MessagesOut += st.MessagesOut
		total.Goroutines += st.Goroutines
		total.HeapBytes += st.HeapBytes
		total.StackBytes += st.StackBytes
		total.RSSBytes += st.RSSBytes
	}
	return total, nil
}

// waitConnections polls the nodes until their local connections sum to want
// or the deadline passes; it returns the last sum seen.
func waitConnections(ctx context.Context, nodes []string, want int64, within time.Duration) (int64, error) {
	deadline := time.Now().Add(within)
	for {
		st, err := sumStats(ctx, nodes)
		if err != nil {
			return -1, err
		}
		if st.LocalConnections == want || time.Now().After(deadline) {
			return st.LocalConnections, nil
		}
		select {
		case <-ctx.Done():
			return st.LocalConnections, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// requestGC asks a server started by this tool to collect garbage and return
// memory to the OS, so that an RSS sample shows live memory. Other servers
// answer 404, which is ignored: their RSS is then taken as is.
func requestGC(ctx context.Context, node string) bool {
	u, err := statsURL(node)
	if err != nil {
		return false
	}
	u = u[:len(u)-len("/stats")] + gcPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return false
	}
	resp, err := statsClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusNoContent
}

// gcPath is served only by servers this tool starts (serve, --inprocess).
const gcPath = "/debug/bench/gc"

// processRSS is this process's resident set size in bytes.
func processRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			if f := bytes.Fields(rest); len(f) > 0 {
				kb, _ := strconv.ParseUint(string(f[0]), 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// cpuTime is the user+system CPU time consumed so far by process pid, from
// /proc (10 ms resolution).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, _ := strconv.ParseInt(string(f[11]), 10, 64)
	stime, _ := strconv.ParseInt(string(f[12]), 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}
