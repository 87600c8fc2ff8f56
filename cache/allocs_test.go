package cache

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/llmkit/llmkit/llm"
)

// promptSizes are the prompt sizes the allocation pins and the benchmarks
// cover: the key is hashed as a stream, so nothing may grow with them.
var promptSizes = []int{1 << 10, 64 << 10, 256 << 10}

// sizedReq returns benchReq with a user message of n bytes.
func sizedReq(n int) *llm.Request {
	req := benchReq()
	req.Messages = []llm.Message{llm.User(strings.Repeat("x", n))}
	return req
}

func skipUnderRace(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation budgets are checked without -race (sync.Pool drops items under it)")
	}
}

// TestHitAllocs: a hit allocates the caller's copy of the answer and
// nothing else, at every prompt size.
func TestHitAllocs(t *testing.T) {
	skipUnderRace(t)
	for _, size := range promptSizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			req := sizedReq(size)
			c := warm(t, newRistrettoT(t, RistrettoConfig{}), req)
			ctx := context.Background()
			n := testing.AllocsPerRun(200, func() {
				if _, err := c.Generate(ctx, req); err != nil {
					t.Fatal(err)
				}
			})
			if n != 1 {
				t.Fatalf("a hit on a %d-byte prompt allocates %v times, want 1", size, n)
			}
		})
	}
}

// TestMissAllocs pins what a miss allocates besides the wrapped client's
// own answer, at every prompt size: with coalescing, the flight and its
// channel; the stored copy the middleware makes (which followers share
// when the answer is not stored); over a Ristretto, the store's item, its
// one string and ristretto's own item.
func TestMissAllocs(t *testing.T) {
	skipUnderRace(t)
	answer := &llm.Response{Text: "Paris.", FinishReason: llm.FinishStop}
	next := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) { return answer, nil })
	never := WithStoreIf(func(*llm.Response) bool { return false })
	for _, tc := range []struct {
		name  string
		store func(testing.TB) Store
		opts  []Option
		want  float64
	}{
		{"ristretto", tinyRistretto, nil, 6},
		{"ristretto-nocoalesce", tinyRistretto, []Option{WithoutCoalescing()}, 4},
		{"discard", func(testing.TB) Store { return discardStore{} }, nil, 3},
		{"not-stored", func(testing.TB) Store { return discardStore{} }, []Option{never}, 3},
		{"not-stored-nocoalesce", func(testing.TB) Store { return discardStore{} }, []Option{never, WithoutCoalescing()}, 0},
	} {
		for _, size := range promptSizes {
			t.Run(fmt.Sprint(tc.name, "/", size), func(t *testing.T) {
				st := tc.store(t)
				mw, err := Middleware(st, tc.opts...)
				if err != nil {
					t.Fatal(err)
				}
				c := mw(next)
				req := sizedReq(size)
				ctx := context.Background()
				n := testing.AllocsPerRun(200, func() {
					req.MaxTokens++ // a new key every call
					if resp, err := c.Generate(ctx, req); err != nil || resp != answer {
						t.Fatalf("miss = %p, %v; want the wrapped client's answer", resp, err)
					}
				})
				if r, ok := st.(*Ristretto); ok {
					r.Wait()
				}
				if n != tc.want {
					t.Fatalf("a miss allocates %v times, want %v", n, tc.want)
				}
			})
		}
	}
}
