package redis_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/transport"
)

// Environment of a child node process (see runChildNode).
const (
	childRedisEnv = "SWITCHBOARD_TEST_CHILD_REDIS"
	childIDEnv    = "SWITCHBOARD_TEST_CHILD_ID"
)

// TestMain lets the test binary double as a node process, so that a test can
// kill a real node with SIGKILL.
func TestMain(m *testing.M) {
	if url := os.Getenv(childRedisEnv); url != "" {
		if err := runChildNode(url, os.Getenv(childIDEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child node:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// runChildNode serves one node on the Redis at url until the process is
// killed. It prints "LISTENING host:port" once it serves.
func runChildNode(url, id string) error {
	cfg := testRedisConfig(url)
	cfg.PresenceTTL = time.Second
	broker, err := redis.New(cfg)
	if err != nil {
		return err
	}
	node, err := actors.NewNode(actors.Config{NodeID: id, Broker: broker, RatePerSecond: -1})
	if err != nil {
		return err
	}
	srv, err := transport.New(node, transport.Config{})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("LISTENING %s\n", ln.Addr())
	return http.Serve(ln, srv)
}
