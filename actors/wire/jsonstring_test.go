package wire

import (
	"encoding/json"
	"testing"
)

// jsonString's fast path (plainString) must agree with encoding/json on
// every input, accepted or not.
func checkJSONString(t *testing.T, raw []byte) {
	t.Helper()
	got, ok := jsonString(raw)
	var want string
	wantOK := len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &want) == nil
	if ok != wantOK || got != want {
		t.Fatalf("jsonString(%q) = %q, %v; encoding/json gives %q, %v", raw, got, ok, want, wantOK)
	}
}

func TestJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`""`, `"lobby"`, `"a b c"`, `"caf\u00e9"`, `"café"`, "\"\u2028\"", `"tab\there"`, "\"raw\ttab\"",
		`"quote\"inside"`, `"a"b"`, `"`, `"open`, `"x" `, ` "x"`, "\"\xff\"", "\"\x7f\"", `"\ud800"`, `123`, `null`,
	} {
		checkJSONString(t, []byte(s))
	}
}

func FuzzJSONString(f *testing.F) {
	for _, s := range []string{`"lobby"`, `"a\"b"`, "\"\xff\"", `"\u0041"`, `""`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkJSONString(t, raw) })
}
