package llmtest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// The Recorder keeps what concurrent emitters report, and its views agree.
func TestRecorderConcurrent(t *testing.T) {
	rec := &llmtest.Recorder{}
	ctx := llm.WithObserver(context.Background(), rec)
	boom := errors.New("boom")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				llm.Emit(ctx, llm.Event{Kind: llm.EventCacheHit, Source: fmt.Sprint("s", i%2)})
				llm.Emit(ctx, llm.Event{Kind: llm.EventCacheError, Err: boom})
				_ = rec.Count(llm.EventCacheHit) // reads race with writes
			}
		})
	}
	wg.Wait()
	if n := rec.Count(llm.EventCacheHit); n != 400 {
		t.Fatalf("Count(cache_hit) = %d, want 400", n)
	}
	if got := rec.Counts(); len(got) != 2 || got[llm.EventCacheHit] != 400 || got[llm.EventCacheError] != 400 {
		t.Fatalf("Counts() = %v, want 400 hits and 400 errors", got)
	}
	if all, hits := rec.Events(), rec.Events(llm.EventCacheHit); len(all) != 800 || len(hits) != 400 {
		t.Fatalf("Events() has %d, Events(cache_hit) %d: want 800 and 400", len(all), len(hits))
	}
	if both := rec.Events(llm.EventCacheHit, llm.EventCacheError); len(both) != 800 {
		t.Fatalf("Events(hit, error) has %d, want 800", len(both))
	}
	if got := rec.Sources(); !slices.Equal(got, []string{"s0", "s1"}) {
		t.Fatalf("Sources() = %q, want s0, s1 (no empty source)", got)
	}
	if errs := rec.Errors(); len(errs) != 400 || !errors.Is(errs[0], boom) {
		t.Fatalf("Errors() has %d, want 400 of boom", len(errs))
	}
}

// Events returns a copy: changing it changes nothing the Recorder keeps.
func TestRecorderEventsIsACopy(t *testing.T) {
	var rec llmtest.Recorder
	rec.Observe(context.Background(), llm.Event{Kind: llm.EventRetry, Attempt: 1})
	evs := rec.Events()
	evs[0].Attempt = 99
	if got := rec.Events(llm.EventRetry); len(got) != 1 || got[0].Attempt != 1 {
		t.Fatalf("after changing the copy: %+v", got)
	}
	if got := rec.Events(llm.EventAttempt); got != nil {
		t.Fatalf("Events(attempt) = %+v, want none", got)
	}
}

// A Recorder given to a decorator shows what it reported.
func ExampleRecorder() {
	rec := &llmtest.Recorder{}
	ctx := llm.WithObserver(context.Background(), rec)

	// A decorator under test would emit these.
	llm.Emit(ctx, llm.Event{Kind: llm.EventCacheMiss, Source: "ristretto"})
	llm.Emit(ctx, llm.Event{Kind: llm.EventCacheStore, Source: "ristretto"})
	llm.Emit(ctx, llm.Event{Kind: llm.EventCacheHit, Source: "ristretto"})
	llm.Emit(ctx, llm.Event{Kind: llm.EventCacheHit, Source: "ristretto"})

	fmt.Println(rec.Count(llm.EventCacheHit), rec.Counts(), rec.Sources())
	for _, ev := range rec.Events(llm.EventCacheMiss, llm.EventCacheStore) {
		fmt.Println(ev.Kind)
	}
	// Output:
	// 2 map[cache_hit:2 cache_miss:1 cache_store:1] [ristretto]
	// cache_miss
	// cache_store
}
