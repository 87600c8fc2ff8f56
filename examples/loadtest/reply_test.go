package main

import "testing"

// TestReplyDecode pins what the generator reads from an answer: the
// flags, the usage and an error's kind, and nothing from a malformed or
// mistyped body.
func TestReplyDecode(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       reply
	}{
		{"answer", `{"text":"ok","model":"m","cached":true,"degraded":false,"usage":{"input":5,"output":17}}`,
			reply{Cached: true, Input: 5, Output: 17}},
		{"degraded", `{"text":"x","degraded":true,"usage":{"output":3,"input":2}}`, reply{Degraded: true, Input: 2, Output: 3}},
		{"nested lookalikes ignored", `{"meta":{"cached":true,"usage":{"input":9}},"usage":{"input":1,"output":1}}`,
			reply{Input: 1, Output: 1}},
		{"error event", `{"error":{"kind":"rate_limited","message":"slow down"}}`, reply{Kind: "rate_limited"}},
		{"wrong types", `{"cached":"yes","usage":{"input":"5","output":null},"error":{"kind":7}}`, reply{}},
		{"not JSON", `<html>502 Bad Gateway</html>`, reply{}},
		{"empty", ``, reply{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r reply
			r.decode([]byte(tc.body))
			if r != tc.want {
				t.Fatalf("decode(%s) = %+v, want %+v", tc.body, r, tc.want)
			}
		})
	}
}
