package redis

import (
	"testing"
	"time"

	"github.com/llmkit/llmkit/cache"
	"github.com/llmkit/llmkit/llm"
)

func TestEntryCodecRoundTrip(t *testing.T) {
	now := time.Unix(1_700_000_000, 123)
	in := cache.Entry{
		Response: &llm.Response{ID: "id-1", Text: "héllo", Model: "m", FinishReason: llm.FinishToolCalls,
			Usage: llm.Usage{InputTokens: 10, OutputTokens: 3, CachedInputTokens: 4}},
		Expires:    now,
		StaleUntil: now.Add(time.Hour),
	}
	b := appendEntry(nil, in)
	out, err := decodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if *out.Response != *in.Response || !out.Expires.Equal(in.Expires) || !out.StaleUntil.Equal(in.StaleUntil) {
		t.Fatalf("round trip: %+v %+v, want %+v %+v", out, *out.Response, in, *in.Response)
	}
	for i := range b { // every truncation is rejected, none panics
		if _, err := decodeEntry(b[:i]); err == nil {
			t.Fatalf("a %d-byte prefix of a %d-byte entry decoded", i, len(b))
		}
	}
	if _, err := decodeEntry(append(b, 0)); err == nil {
		t.Fatal("trailing bytes accepted")
	}
	bad := append([]byte(nil), b...)
	bad[0] = 99
	if _, err := decodeEntry(bad); err == nil {
		t.Fatal("an unknown version decoded")
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(appendEntry(nil, cache.Entry{Response: &llm.Response{Text: "x"}}))
	f.Add([]byte{1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b) // must not panic on anything
		if err != nil {
			return
		}
		again, err := decodeEntry(appendEntry(nil, e))
		if err != nil || *again.Response != *e.Response || !again.Expires.Equal(e.Expires) || !again.StaleUntil.Equal(e.StaleUntil) {
			t.Fatalf("decode(encode(e)) = %+v, %v; want %+v", again, err, e)
		}
	})
}
