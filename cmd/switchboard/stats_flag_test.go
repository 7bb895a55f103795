package main

import (
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// TestStatsCommandFlag: the stats command is answered by default and
// refused as unknown_type under --stats-command=false.
func TestStatsCommandFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // event, or error code
	}{
		{nil, "stats"},
		{[]string{"--stats-command=false"}, "unknown_type"},
	} {
		n := startInproc(t, tc.args...)
		c := dialWelcome(t, n.ws("ada"))
		if err := c.SendJSON(map[string]any{"type": "stats", "id": "s"}); err != nil {
			t.Fatal(err)
		}
		ev, err := c.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return e.Event == "stats" || e.Event == "error" })
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got := ev.Event + ev.Code; got != tc.want && ev.Code != tc.want {
			t.Errorf("%v: stats answered %s, want %s", tc.args, ev.Raw, tc.want)
		}
		_ = c.Close()
		_ = n.stop()
	}
}
