package redis_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childNode is a node in a process of its own (the test binary, see
// TestMain), so that it can die by SIGKILL.
type childNode struct {
	cmd  *exec.Cmd
	node *testNode // url and dial helpers only
}

func startChildNode(t *testing.T, redisURL, id string) *childNode {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childRedisEnv+"="+redisURL, childIDEnv+"="+id)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "LISTENING "); ok {
				addr <- a
			}
		}
	}()
	c := &childNode{cmd: cmd}
	select {
	case a := <-addr:
		c.node = &testNode{t: t, id: id, url: "http://" + a}
	case <-time.After(20 * time.Second):
		t.Fatal("child node did not start")
	}
	waitFor(t, "child node ready", 10*time.Second, func() bool { return c.node.ready() == 200 })
	return c
}

// TestRedisKilledNodeLeavesThePresenceDirectory kills a node process with
// SIGKILL: it stops being a destination for direct messages, and the other
// nodes report its users user_disconnected, within PresenceTTL plus one
// heartbeat.
func TestRedisKilledNodeLeavesThePresenceDirectory(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1")
	child := startChildNode(t, rs.URL(), "doomed")
	a := n1.dial("alice")
	ghost := child.node.dial("ghost")
	expect(t, a, "ghost connected", isPresence("user_connected", "ghost"))
	_ = a.SendJSON(map[string]any{"type": "direct_message", "target_user": "ghost", "content": "boo", "id": "dm1"})
	expect(t, a, "ack", isAck("dm1"))
	expect(t, ghost, "direct message", isEvent("direct_message"))

	if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	ev, err := a.WaitFor(10*time.Second, isPresence("user_disconnected", "ghost"))
	if err != nil {
		t.Fatalf("no user_disconnected for the killed node's user: %v", err)
	}
	reported := time.Since(killed)
	_ = ev
	_ = a.SendJSON(map[string]any{"type": "direct_message", "target_user": "ghost", "content": "still there?", "id": "dm2"})
	ev = expect(t, a, "error", isEvent("error"))
	if ev.Code != "user_offline" {
		t.Fatalf("direct message to the dead node's user: %+v", ev)
	}
	nodes, err := rs.Client().SMembers(context.Background(), "websocket:presence:nodes").Result()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(nodes, "doomed") || !slices.Contains(nodes, "n1") {
		t.Fatalf("registered nodes %v", nodes)
	}
	if n1.broker.Stats().NodesReaped != 1 || n1.broker.Stats().UsersVanished != 1 {
		t.Fatalf("stats %+v", n1.broker.Stats())
	}
	t.Logf("SIGKILL: the dead node's user reported user_disconnected after %v (its presence TTL 1s, survivor heartbeat every %v)",
		reported.Round(time.Millisecond), n1.broker.Config().PresenceTTL/3)
}

// TestRedisPresenceSurvivesRedisRestart: after Redis comes back empty, each
// node writes its presence entries again, and direct messages find users.
func TestRedisPresenceSurvivesRedisRestart(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1")
	n2 := startNode(t, rs.URL(), "n2")
	a := n1.dial("alice")
	b := n2.dial("bob")
	expect(t, a, "bob connected", isPresence("user_connected", "bob"))
	rs.Restart()
	waitFor(t, "both nodes back", 10*time.Second, func() bool {
		return n1.node.BrokerState().Connected && n2.node.BrokerState().Connected
	})
	waitFor(t, "presence rewritten", 10*time.Second, func() bool {
		m, _ := rs.Client().SMembers(context.Background(), "websocket:presence:user:bob").Result()
		return slices.Equal(m, []string{"n2"})
	})
	_ = a.SendJSON(map[string]any{"type": "direct_message", "target_user": "bob", "content": "after restart", "id": "dm"})
	expect(t, a, "ack", isAck("dm"))
	expect(t, b, "direct message", isEvent("direct_message"))
	if n1.broker.Stats().Resyncs < 1 || n2.broker.Stats().Resyncs < 1 {
		t.Fatalf("resyncs: n1 %d, n2 %d", n1.broker.Stats().Resyncs, n2.broker.Stats().Resyncs)
	}
}
