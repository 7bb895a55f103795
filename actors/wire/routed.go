package wire

import (
	"strconv"
	"strings"
)

// A routed frame carries the name of a broker's inner channel ahead of an
// envelope, where one broker channel carries the traffic of many (a Redis
// Cluster partition channel carries the rooms whose names hash to it):
//
//	"#" LENGTH ":" ROUTE ENVELOPE
//
// LENGTH is ROUTE's length in bytes, in decimal. The receiving node reads
// the route without decoding the envelope, and routes the envelope as if it
// had arrived on ROUTE. The envelope's bytes are untouched.

// RoutedHeader returns the header of a routed frame for route: what goes
// in front of the envelope (a broker script may concatenate it with an
// envelope it builds).
func RoutedHeader(route string) string {
	return "#" + strconv.Itoa(len(route)) + ":" + route
}

// SplitRouted returns a routed frame's route and envelope; ok is false when
// data is not a routed frame.
func SplitRouted(data string) (route, envelope string, ok bool) {
	if len(data) < 3 || data[0] != '#' {
		return "", "", false
	}
	colon := strings.IndexByte(data[1:min(len(data), 12)], ':')
	if colon <= 0 {
		return "", "", false
	}
	digits := data[1 : 1+colon]
	if strings.Trim(digits, "0123456789") != "" || (digits[0] == '0' && len(digits) > 1) {
		return "", "", false
	}
	n, err := strconv.Atoi(digits)
	start := 2 + colon
	if err != nil || n > len(data)-start {
		return "", "", false
	}
	return data[start : start+n], data[start+n:], true
}
