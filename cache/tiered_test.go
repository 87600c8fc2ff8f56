package cache

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// failingStore fails every call, like a dead remote store.
type failingStore struct{}

var errDead = &llm.Error{Kind: llm.KindUnavailable, Provider: "dead", Message: "store down"}

func (failingStore) Get(context.Context, Key) (Entry, bool, error)        { return Entry{}, false, errDead }
func (failingStore) Set(context.Context, Key, Entry, time.Duration) error { return errDead }
func (failingStore) Name() string                                         { return "dead" }

func TestTieredFillsL1FromL2(t *testing.T) {
	l2 := newMapStore()
	newTier := func() (*Tiered, *Ristretto) {
		l1 := newRistrettoT(t, RistrettoConfig{MaxCost: 1 << 20})
		tr, err := NewTiered(l1, l2)
		if err != nil {
			t.Fatal(err)
		}
		return tr, l1
	}
	t1, l1a := newTier()
	t2, l1b := newTier()
	mw1, _ := Middleware(t1)
	mw2, _ := Middleware(t2)
	up := &llmtest.Fake{Default: llmtest.Step{Text: "tiered"}}
	rec := &llmtest.Recorder{}
	ctx := llm.WithObserver(context.Background(), rec)
	mw1(up).Generate(ctx, det("q"))
	l1a.Wait()
	key := mustKey(t, det("q"))
	if _, ok, _ := l1a.Get(ctx, key); !ok {
		t.Fatal("Set did not reach L1")
	}
	resp, err := mw2(up).Generate(ctx, det("q"))
	if err != nil || !resp.Cached || up.Calls() != 1 {
		t.Fatalf("second process: %+v, %v, calls %d: want an L2 hit", resp, err, up.Calls())
	}
	l1b.Wait()
	if _, ok, _ := l1b.Get(ctx, key); !ok {
		t.Fatal("an L2 hit did not fill L1")
	}
	if !slices.Equal(rec.Sources(), []string{"tiered"}) {
		t.Fatalf("sources = %v, want tiered", rec.Sources())
	}
	if _, err := NewTiered(nil, l2); err == nil {
		t.Error("NewTiered with a nil level succeeded")
	}
}

func TestTieredWithDeadL2(t *testing.T) {
	l1 := newRistrettoT(t, RistrettoConfig{})
	tr, _ := NewTiered(l1, failingStore{})
	c, _ := New(tr)
	up := &llmtest.Fake{Default: llmtest.Step{Text: "answer"}}
	rec := &llmtest.Recorder{}
	ctx := llm.WithObserver(context.Background(), rec)
	client := c.Middleware()(up)
	if _, err := client.Generate(ctx, det("q")); err != nil {
		t.Fatal(err)
	}
	l1.Wait()
	resp, err := client.Generate(ctx, det("q"))
	if err != nil || !resp.Cached || up.Calls() != 1 {
		t.Fatalf("with L2 down: %+v, %v, calls %d: want an L1 hit", resp, err, up.Calls())
	}
	// The miss's Get and Set failed on L2: two errors, reported, not fatal.
	if rec.Count(llm.EventCacheError) != 2 {
		t.Fatalf("cache errors = %d, want 2", rec.Count(llm.EventCacheError))
	}
}

func TestStaleReportsStoreErrors(t *testing.T) {
	c, _ := New(failingStore{})
	rec := &llmtest.Recorder{}
	if _, ok := c.Stale(llm.WithObserver(context.Background(), rec), det("q")); ok {
		t.Fatal("Stale answered from a failing store")
	}
	if rec.Count(llm.EventCacheError) != 1 || !slices.Contains(rec.Sources(), "dead") {
		t.Fatalf("events %v from %v, want one cache error from dead", rec.Counts(), rec.Sources())
	}
}
