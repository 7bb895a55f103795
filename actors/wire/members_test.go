package wire

import (
	"bytes"
	"encoding/json"
	"testing"
)

var memberNames = []string{"type", "id", "room", "content", "target_user"}

var memberSeeds = []string{
	`{"type":"chat","content":"hi"}`,
	` { "type" : "room_message" , "room" : "r" , "content" : "a,}]\"\\" , "id" : 7 } `,
	`{"type":"chat","content":"x","type":"ping"}`,
	`{"TYPE":"chat","Content":"x"}`,
	`{"\u0074ype":"ping","id":"a\u0062"}`,
	`{"id":{"a":[1,{"b":"}"}]},"type":[1,2,"]"],"room":null,"content":true,"target_user":-1.5e3}`,
	`{}`, `[]`, `null`, `"x"`, `1`, `{"a":1,}`, `{"a"}`, `{`, ``, `{"type":"chat"} x`,
	"{\"type\":\"\xff\"}",
}

// FuzzDecodeMembers checks decodeMembers against the obvious reference,
// encoding/json into a map: the same members, or an error for anything
// that is not one JSON object.
func FuzzDecodeMembers(f *testing.F) {
	for _, s := range memberSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkMembers(t, data)
	})
}

func TestDecodeMembersMatchesEncodingJSON(t *testing.T) {
	for _, s := range memberSeeds {
		checkMembers(t, []byte(s))
	}
}

func checkMembers(t *testing.T, data []byte) {
	t.Helper()
	var ref map[string]json.RawMessage
	refErr := json.Unmarshal(data, &ref)
	got, err := decodeMembers(data, memberNames...)
	if refErr != nil || ref == nil {
		if err == nil {
			t.Fatalf("%q: decodeMembers accepted what encoding/json did not take as an object (%v)", data, refErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("%q: decodeMembers: %v; encoding/json decoded %v", data, err, ref)
	}
	for k, name := range memberNames {
		want, present := ref[name]
		if !present {
			want = nil
		}
		if !bytes.Equal(got[k], want) || (got[k] == nil) != (want == nil) {
			t.Fatalf("%q: member %q = %q, encoding/json says %q", data, name, got[k], want)
		}
	}
}
