package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster"
	"github.com/switchboard-rt/switchboard/transport"
)

// TestConfigErrorsNameFlagValueAndRange: every flag out of its range gets
// an error line of its own that names the flag (with its environment
// variable when the value came from there), the value given and the range
// allowed; several bad flags give several lines, none lumped together.
func TestConfigErrorsNameFlagValueAndRange(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want []string // one per error line, in order
	}{
		{args: []string{"--max-message-bytes", "10"}, want: []string{"--max-message-bytes 10 is out of range: 64 to 268435456 (256 MiB)"}},
		{args: []string{"--max-connections", "-1", "--max-rooms", "0", "--max-pending-bytes", "100", "--rate-burst", "-2", "--outbox-limit", "-3"},
			want: []string{
				"--max-connections -1 is out of range: 0 (unlimited) or more",
				"--max-rooms 0 is out of range: at least 1",
				"--max-pending-bytes 100 is out of range: at least 1024",
				"--rate-burst -2 is out of range: 0 (twice the rate) or more",
				"--outbox-limit -3 is out of range: 0 or more",
			}},
		{args: []string{"--ping-interval", "0s", "--drain-timeout", "-1s", "--jwt-leeway", "-1s"},
			want: []string{
				"--ping-interval 0s is out of range: more than 0s",
				"--drain-timeout -1s is out of range: more than 0s",
				"--jwt-leeway -1s is out of range: 0s or more",
			}},
		{args: []string{"--max-connections-per-ip", "-1", "--rate-strikes", "0", "--read-buffer-size", "2000000"},
			want: []string{
				"--max-connections-per-ip -1 is out of range: 0 (unlimited) or more",
				"--rate-strikes 0 is out of range: at least 1",
				"--read-buffer-size 2000000 is out of range: 256 to 1048576",
			}},
		{env: map[string]string{"SWITCHBOARD_MAX_ROOMS": "0", "SWITCHBOARD_HANDSHAKE_TIMEOUT": "0s", "SWITCHBOARD_LOG_FORMAT": "xml"},
			want: []string{
				"--handshake-timeout (SWITCHBOARD_HANDSHAKE_TIMEOUT) 0s is out of range: more than 0s",
				"--max-rooms (SWITCHBOARD_MAX_ROOMS) 0 is out of range: at least 1",
				`--log-format (SWITCHBOARD_LOG_FORMAT) "xml" is not a format: text or json`,
			}},
		{args: []string{"--max-rooms", "0"}, env: map[string]string{"SWITCHBOARD_MAX_ROOMS": "5", "SWITCHBOARD_LOG_LEVEL": "loud"},
			want: []string{
				"--max-rooms 0 is out of range: at least 1",
				`--log-level (SWITCHBOARD_LOG_LEVEL) "loud" is not a level: debug, info, warn, error or a number`,
			}},
	} {
		_, err := parseOptions(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err == nil {
			t.Errorf("%v %v: accepted", tc.args, tc.env)
			continue
		}
		if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%v %v:\n got: %q\nwant: %q", tc.args, tc.env, got, tc.want)
		}
	}
}

// TestEmbeddingConfigErrorsNameTheField: the Go configurations report each
// bad field by name, with its value and range, and accept nothing the
// command line refuses (a 10-byte message limit, a 100-byte read buffer).
func TestEmbeddingConfigErrorsNameTheField(t *testing.T) {
	_, err := actors.NewNode(actors.Config{Broker: cluster.NewInProc(), PingInterval: -time.Second, RateStrikes: -1})
	want := "actors: config: PingInterval -1s is out of range: 0 or more (0: 25s)\n" +
		"actors: config: RateStrikes -1 is out of range: 0 or more (0: 100)"
	if err == nil || err.Error() != want || !errors.Is(err, actors.ErrBadLimits) {
		t.Errorf("actors config: %v\nwant: %s (and errors.Is ErrBadLimits)", err, want)
	}
	var fe *actors.FieldError
	if !errors.As(err, &fe) || fe.Field != "PingInterval" {
		t.Errorf("actors config: %v is not a *FieldError for PingInterval", err)
	}

	node, err := actors.NewNode(actors.Config{Broker: cluster.NewInProc()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Shutdown(t.Context()) })
	for _, tc := range []struct {
		cfg  transport.Config
		want string
	}{
		{transport.Config{MaxMessageBytes: 10}, "transport: config: MaxMessageBytes 10 is out of range: 0 (65536) or 64 to 268435456 (256 MiB)"},
		{transport.Config{MaxPendingBytes: 100, ReadBufferSize: 100},
			"transport: config: MaxPendingBytes 100 is out of range: 0 (4 MiB) or at least 1024\n" +
				"transport: config: ReadBufferSize 100 is out of range: 0 (1024) or 256 to 1048576"},
		{transport.Config{WriteTimeout: -time.Second, MaxConnections: -1},
			"transport: config: WriteTimeout -1s is out of range: 0 (10s) or more\n" +
				"transport: config: MaxConnections -1 is out of range: 0 (unlimited) or more"},
	} {
		if _, err := transport.New(node, tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("transport config %+v:\n got: %v\nwant: %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := transport.New(node, transport.Config{MaxMessageBytes: 64, MaxPendingBytes: 1024, ReadBufferSize: 256}); err != nil {
		t.Errorf("the smallest settings the command line accepts: %v", err)
	}
}
