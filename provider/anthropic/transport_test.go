package anthropic

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/llmkit/llmkit/llm"
)

// The http.Client NewFromConfig builds keeps DefaultMaxIdleConnsPerHost
// idle connections (WithMaxIdleConnsPerHost to change it), and the SDK
// uses it: after a burst of concurrent calls, a second burst reuses the
// first one's connections instead of opening new ones, as it would with
// Go's default of 2 idle connections per host.
func TestNewFromConfigTransport(t *testing.T) {
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
		_, _ = w.Write([]byte(`{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	c, err := NewFromConfig("sk-ant-test", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := c.httpClient.Transport.(*http.Transport)
	if !ok || tr.MaxIdleConnsPerHost != DefaultMaxIdleConnsPerHost || tr.MaxIdleConns < DefaultMaxIdleConnsPerHost || tr.Proxy == nil {
		t.Fatalf("transport %T: want a clone of http.DefaultTransport keeping %d idle connections per host", c.httpClient.Transport, DefaultMaxIdleConnsPerHost)
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

	c, err = NewFromConfig("sk-ant-test", srv.URL, WithMaxIdleConnsPerHost(8))
	if err != nil {
		t.Fatal(err)
	}
	if n := c.httpClient.Transport.(*http.Transport).MaxIdleConnsPerHost; n != 8 {
		t.Errorf("WithMaxIdleConnsPerHost(8): %d", n)
	}
	if _, err := NewFromConfig("sk-ant-test", srv.URL, WithMaxIdleConnsPerHost(0)); err == nil {
		t.Error("WithMaxIdleConnsPerHost(0): want an error")
	}
}
