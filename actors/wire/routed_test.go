package wire_test

import (
	"testing"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

func TestRoutedFrameRoundTrip(t *testing.T) {
	env := `{"type":"room_message","room":"r1","payload":{"event":"x"}}`
	for _, route := range []string{"websocket:room:r1", "", "a:b:c@d"} {
		route2, rest, ok := wire.SplitRouted(wire.RoutedHeader(route) + env)
		if !ok || route2 != route || rest != env {
			t.Fatalf("%q: got %q %q %v", route, route2, rest, ok)
		}
	}
	for _, bad := range []string{"", "#", "#:", "#x:ab", "#5:ab", "#-1:ab", env, "#99999999999:a", "#+1:ab", "#01:ab"} {
		if _, _, ok := wire.SplitRouted(bad); ok {
			t.Fatalf("%q read as a routed frame", bad)
		}
	}
}

func FuzzSplitRouted(f *testing.F) {
	f.Add("#3:abc{}")
	f.Fuzz(func(t *testing.T, data string) {
		route, rest, ok := wire.SplitRouted(data)
		if ok && wire.RoutedHeader(route)+rest != data {
			t.Fatalf("%q: %q + %q", data, route, rest)
		}
	})
}
