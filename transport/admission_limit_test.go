package transport

import (
	"sync/atomic"
	"testing"
)

// The per-address limit counts IPv4 addresses one by one and IPv6 by /64:
// a client cannot escape it by cycling through the addresses of its prefix.
func TestSlotsPerAddress(t *testing.T) {
	var open atomic.Int64
	s := newSlots(0, 2, &open)
	take := func(ip string) bool { return s.take(ip) == nil }
	for _, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"} {
		if !take(ip) {
			t.Fatalf("%s refused below the limit", ip)
		}
	}
	if take("2001:db8:1:2:abcd::1") {
		t.Fatal("a third address of the same /64 was admitted")
	}
	if !take("2001:db8:1:3::1") {
		t.Fatal("another /64 was refused")
	}
	if !take("192.0.2.1") || !take("::ffff:192.0.2.1") {
		t.Fatal("an IPv4 address (plain, then mapped) refused below the limit")
	}
	if take("192.0.2.1") {
		t.Fatal("an IPv4-mapped IPv6 address counted apart from its IPv4 form")
	}
	if !take("192.0.2.2") {
		t.Fatal("the next IPv4 address was refused")
	}
	if open.Load() != 6 {
		t.Fatalf("%d slots taken, want 6", open.Load())
	}
	s.give("2001:db8:1:2::1")
	if !take("2001:db8:1:2::77") {
		t.Fatal("a slot given back in the /64 was not reusable")
	}
	for _, ip := range []string{"2001:db8:1:2::77", "2001:db8:1:2:ffff::9", "2001:db8:1:3::1", "192.0.2.1", "192.0.2.1", "192.0.2.2"} {
		s.give(ip)
	}
	if open.Load() != 0 || len(s.byIP) != 0 {
		t.Fatalf("after giving every slot back: %d open, %d addresses tracked", open.Load(), len(s.byIP))
	}
}

// The node-wide limit refuses past max and frees on give.
func TestSlotsNodeLimit(t *testing.T) {
	var open atomic.Int64
	s := newSlots(2, 0, &open)
	if s.take("a") != nil || s.take("b") != nil {
		t.Fatal("refused below the limit")
	}
	if no := s.take("c"); no == nil || no.status != 503 {
		t.Fatalf("past the limit: %+v, want 503", no)
	}
	s.give("a")
	if s.take("c") != nil {
		t.Fatal("a freed slot was not reusable")
	}
}
