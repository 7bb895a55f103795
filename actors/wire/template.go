package wire

import "bytes"

// A Template is an envelope encoded by Encode with holes where a broker
// script puts values it learns only inside the broker (a Redis script that
// announces the users of a node it reaped: it reads them there). The
// script writes no JSON structure of its own, relies on no member order,
// and fills each hole with the JSON string of its value.
//
// Parts alternates literal bytes and hole names, starting and ending with
// a literal: Parts[0] + json(value of Parts[1]) + Parts[2] + ... A hole may
// occur several times. A hole whose name starts with '#' is a number: its
// value goes in as it is (decimal digits), not as a JSON string. Fill is
// the same operation in Go.
type Template struct {
	Parts []string
}

// Hole returns the placeholder of the hole name, to put wherever a string
// of the envelope (a field, or a string inside its payload) is to be filled
// in; NewTemplate turns every place it was encoded into a hole.
func Hole(name string) string { return "\x00hole:" + name + "\x00" }

// NewTemplate encodes env and cuts it at every placeholder of holes.
func NewTemplate(env *Envelope, holes ...string) Template {
	data := env.Encode()
	marks := make([][]byte, len(holes))
	for i, h := range holes {
		marks[i] = AppendJSONString(nil, Hole(h))
	}
	var parts []string
	lit := 0
	for i := 0; i < len(data); {
		k := -1
		for j, m := range marks {
			if bytes.HasPrefix(data[i:], m) {
				k = j
				break
			}
		}
		if k < 0 {
			i++
			continue
		}
		parts = append(parts, string(data[lit:i]), holes[k])
		i += len(marks[k])
		lit = i
	}
	return Template{Parts: append(parts, string(data[lit:]))}
}

// Fill returns the envelope with every hole filled with the JSON string of
// its value in values: what the broker script publishes.
func (t Template) Fill(values map[string]string) []byte {
	var b []byte
	for i, p := range t.Parts {
		if i%2 == 0 {
			b = append(b, p...)
		} else if p[0] == '#' {
			b = append(b, values[p]...)
		} else {
			b = AppendJSONString(b, values[p])
		}
	}
	return b
}

// UserGoneTemplate is the envelope that tells every node that a user's
// connections on a node are gone, user_disconnected on the broadcast
// channel, as that node would have published it: holes "user" and "node".
// A node that reaps a dead one publishes it for each of the dead node's
// users.
func UserGoneTemplate() Template {
	user, node := Hole("user"), Hole("node")
	return NewTemplate(&Envelope{
		Type: EnvBroadcast, SenderID: user, Node: node,
		Payload: PresenceEvent("user_disconnected", user).JSON,
	}, "user", "node")
}

// StreamTemplate is env as the broker's stream script publishes it once it
// has numbered it: exactly what Encode writes for env with its Pos set,
// with holes "#offset" (the offset, a number) and "epoch".
func StreamTemplate(env *Envelope) Template {
	e := *env
	e.Pos = Position{}
	rest := e.Encode()
	return Template{Parts: []string{`{"offset":`, "#offset", `,"epoch":`, "epoch", "," + string(rest[1:])}}
}
