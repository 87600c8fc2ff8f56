package cache

import (
	"context"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// TestRistrettoExpiry walks an entry through its life under fake time:
// served while fresh, only by Stale within its grace, by neither after,
// until a new answer replaces it.
func TestRistrettoExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, err := NewRistretto(RistrettoConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		c, _ := New(st, WithTTL(time.Minute), WithGrace(time.Minute))
		ctx := context.Background()
		answers := 0
		up := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
			answers++
			return &llm.Response{Text: strconv.Itoa(answers), FinishReason: llm.FinishStop}, nil
		})
		cl := c.Middleware()(up)
		ask := func() string {
			t.Helper()
			resp, err := cl.Generate(ctx, det("q"))
			if err != nil {
				t.Fatal(err)
			}
			st.Wait()
			return resp.Text
		}
		ask()
		time.Sleep(time.Minute - time.Second)
		if got := ask(); got != "1" {
			t.Fatalf("within the TTL: answer %s, want the stored 1", got)
		}
		time.Sleep(time.Minute)
		if resp, ok := c.Stale(ctx, det("q")); !ok || resp.Text != "1" {
			t.Fatalf("within the grace: Stale = %+v, %v", resp, ok)
		}
		time.Sleep(2 * time.Second)
		if _, ok := c.Stale(ctx, det("q")); ok {
			t.Fatal("Stale served an entry past its grace window")
		}
		if got := ask(); got != "2" {
			t.Fatalf("past the TTL: answer %s, want a new one", got)
		}
		if got := ask(); got != "2" {
			t.Fatalf("the new answer was not stored: got %s", got)
		}
	})
}

// The store keeps its own copy of the answer, in one string allocation.
func TestRistrettoCopiesTheAnswer(t *testing.T) {
	st := newRistrettoT(t, RistrettoConfig{})
	ctx := context.Background()
	in := &llm.Response{ID: "id", Text: "text", Model: "m", FinishReason: llm.FinishStop, Usage: llm.Usage{OutputTokens: 3}}
	key := mustKey(t, det("q"))
	st.Set(ctx, key, Entry{Response: in, Expires: time.Now().Add(time.Hour)}, time.Hour)
	st.Wait()
	e, ok, _ := st.Get(ctx, key)
	if !ok || e.Response == in || *e.Response != *in {
		t.Fatalf("stored %+v (same pointer: %v), want a copy of %+v", e.Response, e.Response == in, in)
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
