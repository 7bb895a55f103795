package wire

import (
	"strings"
	"unicode/utf8"
)

// "Is this envelope my own?" is answered here, and only here. A node
// delivers what it publishes to its own clients itself, so its broker
// drops the node's own envelopes when the fabric brings them back: an
// envelope is the node's own when its "node" member is the node's id. An
// envelope without one (a tutorial node, a backend's PUBLISH) is nobody's.
// A room publication that the broker numbered (Pos) is nobody's either:
// its publisher did not deliver it when it published, because only the
// broker knows its place in the stream; every node, the publisher
// included, delivers it when the fabric brings it, in stream order.

// From reports whether e was published by node and delivered by it
// already: an unnumbered envelope whose "node" is node.
func (e *Envelope) From(node string) bool {
	return node != "" && e.Node == node && e.Pos.Offset == 0
}

// EncodedFrom reports whether data, an encoded envelope, was published by
// node, without decoding it: a broker asks it of every message it reads,
// before the message costs a decode. For every envelope DecodeEnvelope
// accepts it answers as From does on the decoded envelope, wherever the
// "node" member is and whoever encoded it, with one exception: an
// envelope that starts with a "node" member and repeats it later is judged
// by the first (DecodeEnvelope takes the last), and so is one that starts
// with "node" and numbers itself with an "offset" member whose name is
// written with escapes. Only a publisher that means harm writes those, and
// it could as well name the node in a single member.
// For data DecodeEnvelope refuses, either answer may come.
//
// Encode writes "node" first, so that for Switchboard's envelopes the
// answer is in the first bytes; any other layout takes a walk of the
// object's top level (about as long as validating it).
func EncodedFrom(data, node string) bool {
	if node == "" {
		return false
	}
	if numberedPrefix(data) {
		return false
	}
	const first = `{"node":"`
	if strings.HasPrefix(data, first) && !strings.Contains(data, `"offset"`) {
		rest := data[len(first):]
		if end := strings.IndexByte(rest, '"'); end >= 0 && end+1 < len(rest) && rest[end+1] == ',' {
			if v := rest[:end]; plainText(v) {
				return v == node
			}
		}
	}
	// Any other layout. Without `"node"` and without an escape (a key
	// may be written "no\u0064e"), there is no node member to read.
	if !strings.Contains(data, `"node"`) && !strings.Contains(data, `\`) {
		return false
	}
	var raw [3][]byte
	if walkMembers([]byte(data), originMembers, raw[:]) != nil {
		return false
	}
	if parsePosition(raw[1], raw[2]).Offset > 0 {
		return false
	}
	v, ok := optString(raw[0])
	return ok && v == node
}

var originMembers = []string{"node", "offset", "epoch"}

// numberedPrefix reports whether data starts as Encode starts a numbered
// envelope, {"offset":N,"epoch":"E",, with a valid position: such an
// envelope is nobody's (with the exception EncodedFrom states for
// repeated members).
func numberedPrefix(data string) bool {
	const first = `{"offset":`
	if !strings.HasPrefix(data, first) {
		return false
	}
	rest := data[len(first):]
	comma := strings.IndexByte(rest, ',')
	if comma < 0 {
		return false
	}
	if n, ok := parseOffset([]byte(rest[:comma])); !ok || n == 0 {
		return false
	}
	rest = rest[comma:]
	const second = `,"epoch":"`
	if !strings.HasPrefix(rest, second) {
		return false
	}
	rest = rest[len(second):]
	end := strings.IndexByte(rest, '"')
	return end >= 0 && end+1 < len(rest) && rest[end+1] == ',' && validEpoch(rest[:end])
}

// plainText reports whether s, the inside of a JSON string literal that
// ends at the first '"', decodes to itself: no escape, no control
// character, valid UTF-8.
func plainText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '\\' {
			return false
		}
	}
	return utf8.ValidString(s)
}
