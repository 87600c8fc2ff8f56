package cache

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
)

func TestRistrettoExpiry(t *testing.T) {
	for _, inStore := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			st, err := NewRistretto(RistrettoConfig{ExpireInStore: inStore})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			c, _ := New(st, WithTTL(time.Minute), WithGrace(time.Minute))
			ctx := context.Background()
			up := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
				return &llm.Response{Text: "a", FinishReason: llm.FinishStop}, nil
			})
			c.Middleware()(up).Generate(ctx, det("q"))
			st.Wait()
			// ristretto drops expired items in 5 s buckets, at most two
			// buckets after their end.
			time.Sleep(2*time.Minute + 15*time.Second)
			_, present, _ := st.Get(ctx, mustKey(t, det("q")))
			if present == inStore {
				t.Fatalf("ExpireInStore=%v: entry present after TTL+grace = %v", inStore, present)
			}
			if _, ok := c.Stale(ctx, det("q")); ok {
				t.Fatalf("ExpireInStore=%v: Stale served an entry past its grace window", inStore)
			}
		})
	}
}

func TestRistrettoItemCap(t *testing.T) {
	st := newRistrettoT(t, RistrettoConfig{MaxItemBytes: 1024})
	ctx := context.Background()
	big := Entry{Response: &llm.Response{Text: string(make([]byte, 2048))}, Expires: time.Now().Add(time.Hour)}
	small := Entry{Response: &llm.Response{Text: "ok"}, Expires: time.Now().Add(time.Hour)}
	st.Set(ctx, mustKey(t, det("big")), big, time.Hour)
	st.Set(ctx, mustKey(t, det("small")), small, time.Hour)
	st.Wait()
	if _, ok, _ := st.Get(ctx, mustKey(t, det("big"))); ok {
		t.Fatal("an answer over MaxItemBytes was stored")
	}
	if _, ok, _ := st.Get(ctx, mustKey(t, det("small"))); !ok {
		t.Fatal("a small answer was not stored")
	}
}

// Two keys that share ristretto's 64-bit index never answer for each other.
func TestRistrettoComparesTheWholeKey(t *testing.T) {
	st := newRistrettoT(t, RistrettoConfig{})
	ctx := context.Background()
	a := mustKey(t, det("a"))
	b := a
	b.Digest[15] ^= 1 // same first 8 bytes
	st.Set(ctx, a, Entry{Response: &llm.Response{Text: "a"}}, time.Hour)
	st.Wait()
	if _, ok, _ := st.Get(ctx, b); ok {
		t.Fatal("a key differing past its first 64 bits got another key's entry")
	}
	c := a
	c.Scope[0] ^= 1 // same digest, other tenant scope
	if _, ok, _ := st.Get(ctx, c); ok {
		t.Fatal("a key with another scope got the entry")
	}
}
