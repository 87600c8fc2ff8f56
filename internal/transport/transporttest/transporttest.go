// Package transporttest checks, for the provider adapters' tests, that the
// http.Client an adapter builds keeps its idle connections for reuse.
package transporttest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/llmkit/llmkit/internal/transport"
	"github.com/llmkit/llmkit/llm"
)

// Reuse starts a server that gives answer (the provider's JSON) to every
// call, builds a client for its URL with build, and checks that the
// client's transport is a clone of http.DefaultTransport keeping
// transport.DefaultMaxIdleConnsPerHost idle connections, and that the
// SDK uses it: after a burst of concurrent calls, a second burst reuses
// the first one's connections instead of opening new ones, as it would
// with Go's default of 2 idle connections per host.
func Reuse(t *testing.T, answer string, build func(url string) (llm.Client, *http.Client)) {
	t.Helper()
	const burst = 16
	var opened atomic.Int64
	var mu sync.Mutex
	arrived, release := 0, make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A barrier: no answer until the whole burst is in flight, so the
		// burst needs burst connections at once.
		mu.Lock()
		arrived++
		if arrived == burst {
			close(release)
		}
		wait := release
		mu.Unlock()
		<-wait
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(answer))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	c, hc := build(srv.URL)
	tr, ok := hc.Transport.(*http.Transport)
	if !ok || tr.MaxIdleConnsPerHost != transport.DefaultMaxIdleConnsPerHost || tr.MaxIdleConns < transport.DefaultMaxIdleConnsPerHost || tr.Proxy == nil {
		t.Fatalf("transport %T: want a clone of http.DefaultTransport keeping %d idle connections per host", hc.Transport, transport.DefaultMaxIdleConnsPerHost)
	}
	t.Cleanup(tr.CloseIdleConnections)

	run := func() int64 {
		t.Helper()
		before := opened.Load()
		var wg sync.WaitGroup
		errs := make(chan error, burst)
		for range burst {
			wg.Go(func() {
				if _, err := c.Generate(context.Background(), llm.Prompt("hi")); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		mu.Lock()
		arrived, release = 0, make(chan struct{})
		mu.Unlock()
		return opened.Load() - before
	}
	if n := run(); n != burst {
		t.Fatalf("first burst opened %d connections, want %d", n, burst)
	}
	// A connection goes back to the idle pool just after its call returns,
	// so a few may not be back yet; with 2 idle per host, burst-2 would be new.
	if n := run(); n > burst/2 {
		t.Errorf("second burst opened %d new connections, want most of the first burst's reused", n)
	}
}
