package wire

import (
	"strings"
	"testing"
)

// Benchmarks of the codecs on the hot paths: decoding a client frame,
// encoding an event, encoding and decoding a broker envelope. Run with
// `make bench`; figures are in docs/benchmarks.md.

var (
	benchContent = strings.Repeat("x", 64)
	benchFrame   = []byte(`{"type":"room_message","room":"lobby","content":"` + benchContent + `","id":"m-1"}`)
)

func BenchmarkDecodeCommand(b *testing.B) {
	cases := []struct {
		name  string
		frame []byte
	}{
		{"room_message", benchFrame},
		{"chat", []byte(`{"type":"chat","content":"` + benchContent + `"}`)},
		{"join_room", []byte(`{"type":"join_room","room":"lobby"}`)},
		{"invalid_json", []byte(`{"type":"chat","content":`)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.frame)))
			for b.Loop() {
				if DecodeCommand(c.frame) == nil {
					b.Fatal("nil command")
				}
			}
		})
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	b.Run("chat_room", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = ChatEvent("user-1234", "lobby", benchContent)
		}
	})
	b.Run("chat_escaped", func(b *testing.B) {
		content := strings.Repeat(`a "quoted" line\n`, 4)
		b.ReportAllocs()
		for b.Loop() {
			_ = ChatEvent("user-1234", "", content)
		}
	})
	b.Run("user_joined", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = RoomPresenceEvent("user_joined", "user-1234", "lobby")
		}
	})
	b.Run("envelope", func(b *testing.B) {
		ev := ChatEvent("user-1234", "lobby", benchContent)
		env := &Envelope{Type: EnvRoom, Room: "lobby", Node: "node-1", Payload: ev.JSON}
		b.ReportAllocs()
		for b.Loop() {
			_ = env.Encode()
		}
	})
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	ev := ChatEvent("user-1234", "lobby", benchContent)
	data := (&Envelope{Type: EnvRoom, Room: "lobby", Node: "node-1", Payload: ev.JSON}).Encode()
	b.Run("room", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := DecodeEnvelope(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodedFrom is the question a broker asks of every message it
// reads, before deciding to decode it.
func BenchmarkEncodedFrom(b *testing.B) {
	payload := string(ChatEvent("user-1234", "lobby", benchContent).JSON)
	cases := []struct{ name, data string }{
		{"own", `{"node":"node-1","type":"room_message","room":"lobby","payload":` + payload + `,"msg_id":"node-1~a:7"}`},
		{"other_node", `{"node":"node-2","type":"room_message","room":"lobby","payload":` + payload + `,"msg_id":"node-2~a:7"}`},
		{"tutorial", `{"type":"room_message","room":"lobby","payload":` + payload + `}`},
		{"node_last", `{"type":"room_message","room":"lobby","payload":` + payload + `,"node":"node-2"}`},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = EncodedFrom(c.data, "node-1")
			}
		})
	}
}
