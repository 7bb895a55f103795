package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// errNotObject: the bytes are not one valid JSON object.
var errNotObject = errors.New("wire: not a JSON object")

// decodeMembers returns the raw values of the members called names in the
// JSON object data, in the order of names; an absent member is nil. Names
// match exactly: encoding/json matches struct fields case-insensitively, so
// "TYPE", or a "Content" after "content", would be read as "type" and
// "content", and the node would disagree with anything else that reads the
// same bytes (a tutorial node, a proxy that inspects frames) on what they
// say. Of duplicate members the last wins, as in most decoders. The values
// are copies: they never alias data.
//
// It validates data with json.Valid and then walks the object's top level
// itself: unmarshalling into a map built a string and a copy for every
// member, and was most of the cost of decoding a frame (FuzzDecodeMembers
// checks it against that reference).
func decodeMembers(data []byte, names ...string) ([][]byte, error) {
	i, ok := objectStart(data)
	if !ok {
		return nil, errNotObject
	}
	out := make([][]byte, len(names))
	walkObject(data, i, names, out, true)
	return out, nil
}

// walkMembers validates data as one JSON object and sets values[k] to the
// raw value of its top-level member names[k] (the last, if repeated),
// aliasing data; values[k] stays nil for an absent member.
func walkMembers(data []byte, names []string, values [][]byte) error {
	i, ok := objectStart(data)
	if !ok {
		return errNotObject
	}
	walkObject(data, i, names, values, false)
	return nil
}

// objectStart reports whether data is one valid JSON object, and where
// its '{' is.
func objectStart(data []byte) (int, bool) {
	if !json.Valid(data) {
		return 0, false
	}
	i := skipSpace(data, 0)
	return i, i < len(data) && data[i] == '{'
}

// walkObject sets values[k] to the raw value of member names[k] of the
// object at data[open:], which is known to be valid JSON (json.Valid, or
// the output of json.Compact): a copy if copied, else aliasing data.
func walkObject(data []byte, open int, names []string, values [][]byte, copied bool) {
	i := skipSpace(data, open+1)
	if data[i] == '}' {
		return
	}
	for {
		end := stringEnd(data, i)
		key := data[i+1 : end-1]
		i = skipSpace(data, end) // at ':'
		i = skipSpace(data, i+1)
		vend := valueEnd(data, i)
		if k := memberIndex(key, names); k >= 0 {
			if copied {
				values[k] = append([]byte(nil), data[i:vend]...)
			} else {
				values[k] = data[i:vend]
			}
		}
		i = skipSpace(data, vend)
		if data[i] != ',' {
			return // '}'
		}
		i = skipSpace(data, i+1)
	}
}

// The helpers below walk JSON that json.Valid accepted.

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string that starts at i.
func stringEnd(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(data)
}

// valueEnd returns the index just past the value that starts at i.
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				j = stringEnd(data, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(data)
	default: // number, true, false, null
		j := i
		for j < len(data) {
			switch data[j] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return j
			}
			j++
		}
		return j
	}
}

// memberIndex returns the index in names of the member key (the bytes
// between the quotes, escapes and all), or -1.
func memberIndex(key []byte, names []string) int {
	if bytes.IndexByte(key, '\\') >= 0 {
		var s string
		quoted := make([]byte, 0, len(key)+2)
		quoted = append(append(append(quoted, '"'), key...), '"')
		if json.Unmarshal(quoted, &s) != nil {
			return -1
		}
		key = []byte(s)
	}
	for k, name := range names {
		if string(key) == name {
			return k
		}
	}
	return -1
}

func isNull(raw []byte) bool { return string(raw) == "null" }

// jsonString decodes raw as a JSON string; absent or another type is not ok.
func jsonString(raw []byte) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	if s, ok := plainString(raw); ok {
		return s, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// plainString is jsonString's fast path: a string literal with no escape, no
// control character and valid UTF-8 decodes to its own bytes, so it is
// copied as is instead of going through encoding/json (which gives the same
// result for it, at several allocations).
func plainString(raw []byte) (string, bool) {
	n := len(raw)
	if n < 2 || raw[n-1] != '"' {
		return "", false
	}
	inner := raw[1 : n-1]
	for _, c := range inner {
		if c < 0x20 || c == '"' || c == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(inner) {
		return "", false
	}
	return string(inner), true
}

// optString decodes an optional text member of an envelope: absent or null
// is "", a string is itself, and a number is kept as its text (a tutorial
// client may use numeric ids). Anything else is not ok.
func optString(raw []byte) (string, bool) {
	if len(raw) == 0 || isNull(raw) {
		return "", true
	}
	if raw[0] != '"' {
		if _, err := strconv.ParseFloat(string(raw), 64); err == nil {
			return string(raw), true
		}
		return "", false
	}
	return jsonString(raw)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does, so every event the node emits is valid UTF-8 JSON.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
