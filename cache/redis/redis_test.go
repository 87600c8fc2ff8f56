package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/cache"
	"github.com/llmkit/llmkit/internal/redistest"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

func TestMain(m *testing.M) {
	redistest.QuietLogs()
	goleak.VerifyTestMain(m)
}

func det(text string) *llm.Request {
	r := llm.Prompt(text)
	r.Temperature = llm.Ptr(0.0)
	return r
}

func mustKey(t *testing.T, r *llm.Request) cache.Key {
	t.Helper()
	k, err := cache.KeyOf(r)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// liveRedis returns a client of the Redis at $LLMKIT_REDIS_ADDR and a key
// prefix of this test's own, deleted when the test ends. When Redis is not
// reachable the test fails under CI and is skipped elsewhere.
func liveRedis(t *testing.T) (*goredis.Client, string) {
	t.Helper()
	return redistest.Live(t, Addr(), "")
}

func newStore(t *testing.T, rdb goredis.Cmdable, cfg Config) *Store {
	t.Helper()
	s, err := New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func middleware(t *testing.T, s cache.Store, opts ...cache.Option) llm.Middleware {
	t.Helper()
	mw, err := cache.Middleware(s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return mw
}

func TestConformance(t *testing.T) {
	rdb, prefix := liveRedis(t)
	llmtest.Run(t, func(t *testing.T, up llm.Client) llm.Client {
		return middleware(t, newStore(t, rdb, Config{Prefix: prefix + t.Name()}))(up)
	})
}

func TestSharedBetweenClients(t *testing.T) {
	rdb, prefix := liveRedis(t)
	other := redistest.Client(Addr())
	defer other.Close()

	up1 := &llmtest.Fake{Default: llmtest.Step{Text: "shared answer"}}
	up2 := &llmtest.Fake{}
	c1 := middleware(t, newStore(t, rdb, Config{Prefix: prefix}))(up1)
	c2 := middleware(t, newStore(t, other, Config{Prefix: prefix}))(up2)
	rec := &llmtest.Recorder{}
	ctx := llm.WithObserver(context.Background(), rec)

	req := det("the confidential prompt")
	req.Tenant = "tenant-secret-name"
	if _, err := c1.Generate(ctx, req); err != nil {
		t.Fatal(err)
	}
	resp, err := c2.Generate(ctx, req)
	if err != nil || !resp.Cached || resp.Text != "shared answer" || up2.Calls() != 0 {
		t.Fatalf("second client: %+v, %v, upstream calls %d: want the first client's entry", resp, err, up2.Calls())
	}
	if !slices.Contains(rec.Sources(), "redis") || rec.Count(llm.EventCacheError) != 0 {
		t.Fatalf("sources %v, errors %v", rec.Sources(), rec.Errors())
	}

	keys, err := rdb.Keys(context.Background(), prefix+"*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys = %v, %v", keys, err)
	}
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `v1:[0-9a-f]{16}:[0-9a-f]{32}$`).MatchString(keys[0]) {
		t.Fatalf("key %q is not prefix + v1:scope:digest", keys[0])
	}
	if strings.Contains(keys[0], "tenant-secret") || strings.Contains(keys[0], "confidential") {
		t.Fatalf("key %q holds the tenant or the prompt", keys[0])
	}
	val, _ := rdb.Get(context.Background(), keys[0]).Bytes()
	if len(val) > 64 || strings.Contains(string(val), "confidential") {
		t.Fatalf("value is %d bytes (%q): want a compact encoding of the answer only", len(val), val)
	}
	ttl, _ := rdb.PTTL(context.Background(), keys[0]).Result()
	if ttl <= cache.DefaultTTL || ttl > cache.DefaultTTL+cache.DefaultGrace {
		t.Fatalf("Redis TTL = %v, want TTL+grace = %v", ttl, cache.DefaultTTL+cache.DefaultGrace)
	}

	// Tenant isolation holds across processes too.
	req.Tenant = "another"
	if resp, _ := c2.Generate(ctx, req); resp.Cached {
		t.Fatal("another tenant got the entry")
	}
}

// TestUnreachable: with Redis down every call still answers, the breaker
// opens after BreakerFailures failures and Redis is not called again, and
// the observers given at construction hear it all.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a closed loopback port: connections are refused
	rdb := redistest.Client(addr)
	defer rdb.Close()
	counting := &llmtest.Recorder{} // given at construction to the store and the cache
	st := newStore(t, rdb, Config{BreakerFailures: 3, BreakerCooldown: time.Hour, Observer: counting})
	up := &llmtest.Fake{Default: llmtest.Step{Text: "from the provider"}}
	c := middleware(t, st, cache.WithObserver(counting))(up)
	rec := &llmtest.Recorder{}
	ctx := llm.WithObserver(context.Background(), rec)
	for i := range 20 {
		resp, err := c.Generate(ctx, det(fmt.Sprint("q", i)))
		if err != nil || resp.Text != "from the provider" {
			t.Fatalf("call %d with Redis down: %+v, %v", i, resp, err)
		}
	}
	if st.BreakerState() != llm.BreakerOpen {
		t.Fatalf("breaker %v after 20 failing calls, want open", st.BreakerState())
	}
	for name, r := range map[string]*llmtest.Recorder{"counting": counting, "context": rec} {
		if r.Count(llm.EventCacheError) != 40 || r.Count(llm.EventCacheMiss) != 20 || r.Count(llm.EventBreakerState) != 1 {
			t.Fatalf("%s observer heard %v: want 40 cache errors, 20 misses, one breaker change", name, r.Counts())
		}
	}
	var opened int
	errs := rec.Errors()
	for _, err := range errs {
		if errors.Is(err, ErrOpen) {
			opened++
		}
		if k := llm.KindOf(err); k != llm.KindUnavailable && k != llm.KindTimeout {
			t.Fatalf("store error %v is %v, want unavailable or timeout", err, k)
		}
	}
	// 3 real failures open it; every later Get and Set fails fast.
	if opened != 37 {
		t.Fatalf("%d of %d store errors came from the open breaker, want 37: Redis kept being called", opened, len(errs))
	}
}

// flakyRedis is a Redis client whose Get and Set fail while down is set
// (the store calls nothing else).
type flakyRedis struct {
	goredis.Cmdable
	mu    sync.Mutex
	down  bool
	calls int
	m     map[string]string
}

var errDown = errors.New("dial tcp: connection refused")

func (f *flakyRedis) Get(_ context.Context, key string) *goredis.StringCmd {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return goredis.NewStringResult("", errDown)
	}
	v, ok := f.m[key]
	if !ok {
		return goredis.NewStringResult("", goredis.Nil)
	}
	return goredis.NewStringResult(v, nil)
}

func (f *flakyRedis) Set(_ context.Context, key string, v any, _ time.Duration) *goredis.StatusCmd {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return goredis.NewStatusResult("", errDown)
	}
	f.m[key] = string(v.([]byte))
	return goredis.NewStatusResult("OK", nil)
}

func (f *flakyRedis) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

// TestBreakerRecovers walks the breaker through its states under fake
// time: open after the failures, no Redis calls while open, probes after
// the cooldown, closed again once Redis answers; a miss (redis.Nil) is no
// failure.
func TestBreakerRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fr := &flakyRedis{m: map[string]string{}}
		obs := &llmtest.Recorder{}
		st := newStore(t, fr, Config{BreakerFailures: 2, BreakerCooldown: time.Minute, Observer: obs})
		ctx := context.Background()
		key := mustKey(t, det("q"))
		for range 5 {
			if _, ok, err := st.Get(ctx, key); ok || err != nil {
				t.Fatalf("a missing key: %v, %v; want a plain miss", ok, err)
			}
		}
		if st.BreakerState() != llm.BreakerClosed {
			t.Fatal("misses opened the breaker")
		}
		fr.setDown(true)
		for range 2 {
			st.Get(ctx, key)
		}
		fr.mu.Lock()
		before := fr.calls
		fr.mu.Unlock()
		if _, _, err := st.Get(ctx, key); !errors.Is(err, ErrOpen) || st.BreakerState() != llm.BreakerOpen {
			t.Fatalf("after 2 failures: %v, breaker %v; want ErrOpen and open", err, st.BreakerState())
		}
		fr.setDown(false)
		time.Sleep(time.Minute) // the cooldown, on the bubble's clock
		e := cache.Entry{Response: &llm.Response{Text: "back"}, Expires: time.Now().Add(time.Hour), StaleUntil: time.Now().Add(time.Hour)}
		for range 2 {
			if err := st.Set(ctx, key, e, time.Hour); err != nil {
				t.Fatalf("probe after the cooldown: %v", err)
			}
		}
		if got, ok, err := st.Get(ctx, key); !ok || err != nil || got.Response.Text != "back" {
			t.Fatalf("after recovery: %+v, %v, %v", got, ok, err)
		}
		fr.mu.Lock()
		calls := fr.calls - before
		fr.mu.Unlock()
		if calls != 3 || st.BreakerState() != llm.BreakerClosed {
			t.Fatalf("%d Redis calls after the breaker opened (want the 3 after the cooldown), breaker %v", calls, st.BreakerState())
		}
		want := []llm.BreakerState{llm.BreakerOpen, llm.BreakerHalfOpen, llm.BreakerClosed}
		var states []llm.BreakerState
		for _, ev := range obs.Events(llm.EventBreakerState) {
			states = append(states, ev.State)
		}
		if !slices.Equal(states, want) || !slices.Contains(obs.Sources(), "redis") {
			t.Fatalf("breaker events %v from %v, want %v from redis", states, obs.Sources(), want)
		}
	})
}

// proxy forwards loopback connections to target until closed, when it
// drops every connection, like a Redis that stopped.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	p.wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			p.wg.Go(func() { io.Copy(out, in); out.Close() })
			p.wg.Go(func() { io.Copy(in, out); in.Close() })
		}
	})
	t.Cleanup(p.close)
	return p
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func TestStoppedMidTest(t *testing.T) {
	_, prefix := liveRedis(t)
	px := startProxy(t, Addr())
	rdb := redistest.Client(px.ln.Addr().String())
	defer rdb.Close()
	up := &llmtest.Fake{Default: llmtest.Step{Text: "answer"}}
	c := middleware(t, newStore(t, rdb, Config{Prefix: prefix}))(up)
	rec := &llmtest.Recorder{}
	ctx := llm.WithObserver(context.Background(), rec)

	c.Generate(ctx, det("q"))
	if resp, err := c.Generate(ctx, det("q")); err != nil || !resp.Cached {
		t.Fatalf("through the proxy: %+v, %v: want a Redis hit", resp, err)
	}
	px.close() // Redis "stops"
	for i := range 10 {
		resp, err := c.Generate(ctx, det("q"))
		if err != nil || resp.Text != "answer" || resp.Cached {
			t.Fatalf("call %d after Redis stopped: %+v, %v", i, resp, err)
		}
	}
	if up.Calls() != 11 || rec.Count(llm.EventCacheError) == 0 {
		t.Fatalf("upstream calls %d (want 11), cache errors %d (want > 0)", up.Calls(), rec.Count(llm.EventCacheError))
	}
	for _, err := range rec.Errors() {
		if k := llm.KindOf(err); k != llm.KindUnavailable && k != llm.KindTimeout {
			t.Fatalf("store error %v is %v, want unavailable or timeout", err, k)
		}
	}
}

func TestTieredFillsL1FromL2(t *testing.T) {
	rdb, prefix := liveRedis(t)
	shared := newStore(t, rdb, Config{Prefix: prefix})
	newTier := func() (*cache.Tiered, *cache.Ristretto) {
		l1, err := cache.NewRistretto(cache.RistrettoConfig{MaxCost: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l1.Close)
		tr, err := cache.NewTiered(l1, shared)
		if err != nil {
			t.Fatal(err)
		}
		return tr, l1
	}
	t1, l1a := newTier()
	t2, l1b := newTier()
	up := &llmtest.Fake{Default: llmtest.Step{Text: "tiered"}}
	rec := &llmtest.Recorder{}
	ctx := llm.WithObserver(context.Background(), rec)
	middleware(t, t1)(up).Generate(ctx, det("q"))
	l1a.Wait()
	key := mustKey(t, det("q"))
	if _, ok, _ := l1a.Get(ctx, key); !ok {
		t.Fatal("Set did not reach L1")
	}
	if _, ok, _ := l1b.Get(ctx, key); ok {
		t.Fatal("the second process's L1 has an entry it never saw")
	}
	resp, err := middleware(t, t2)(up).Generate(ctx, det("q"))
	if err != nil || !resp.Cached || up.Calls() != 1 {
		t.Fatalf("second process: %+v, %v, calls %d: want an L2 hit", resp, err, up.Calls())
	}
	l1b.Wait()
	if _, ok, _ := l1b.Get(ctx, key); !ok {
		t.Fatal("an L2 hit did not fill L1")
	}
	// Every event came from the tiered store (none without a source).
	if evs := rec.Events(); len(evs) == 0 || slices.ContainsFunc(evs, func(ev llm.Event) bool { return ev.Source != "tiered" }) {
		t.Fatalf("sources = %v (events %v), want tiered", rec.Sources(), rec.Counts())
	}
}

func TestConfigValidated(t *testing.T) {
	if _, err := New(nil, Config{}); err == nil {
		t.Error("New(nil) succeeded")
	}
	rdb := redistest.Client("127.0.0.1:1")
	defer rdb.Close()
	for _, cfg := range []Config{{Timeout: -1}, {BreakerFailures: -1}, {BreakerCooldown: -1}, {MaxItemBytes: -1}, {AsyncWrites: -1}} {
		if _, err := New(rdb, cfg); err == nil {
			t.Errorf("%+v was accepted", cfg)
		}
	}
	plain := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	defer plain.Close()
	if _, err := New(plain, Config{}); err == nil {
		t.Error("a client that ignores context deadlines was accepted")
	}
}

func TestAsyncWrites(t *testing.T) {
	rdb, prefix := liveRedis(t)
	st := newStore(t, rdb, Config{Prefix: prefix, AsyncWrites: 4})
	reader := newStore(t, rdb, Config{Prefix: prefix})
	up := &llmtest.Fake{Default: llmtest.Step{Text: "async"}}
	middleware(t, st)(up).Generate(context.Background(), det("q"))
	st.Wait()
	e, ok, err := reader.Get(context.Background(), mustKey(t, det("q")))
	if err != nil || !ok || e.Response.Text != "async" {
		t.Fatalf("after Wait: %+v, %v, %v: the background write did not land", e, ok, err)
	}
}

// TestAsyncWritesBounded points the store at a server that accepts
// connections and never answers: the one write slot stays taken until the
// command times out, so the next Set is refused at once, and the failed
// background write is reported to the store's observer and the caller's.
func TestAsyncWritesBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		<-accepted
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	rdb := redistest.Client(ln.Addr().String())
	defer rdb.Close()
	obs, rec := &llmtest.Recorder{}, &llmtest.Recorder{}
	st := newStore(t, rdb, Config{AsyncWrites: 1, Timeout: 20 * time.Millisecond, Observer: obs})
	ctx := llm.WithObserver(context.Background(), rec)
	e := cache.Entry{Response: &llm.Response{Text: "x"}, Expires: time.Now().Add(time.Hour), StaleUntil: time.Now().Add(time.Hour)}
	if err := st.Set(ctx, mustKey(t, det("a")), e, time.Hour); err != nil {
		t.Fatalf("first Set: %v", err)
	}
	if err := st.Set(ctx, mustKey(t, det("b")), e, time.Hour); !errors.Is(err, ErrWritesBusy) {
		t.Fatalf("second Set while the first is stuck: %v, want ErrWritesBusy", err)
	}
	st.Wait()
	for _, r := range []*llmtest.Recorder{obs, rec} {
		if errs := r.Errors(); r.Count(llm.EventCacheError) != 1 || llm.KindOf(errs[0]) != llm.KindTimeout {
			t.Fatalf("cache errors %v, want 1 timeout for the stuck background write", errs)
		}
	}
}
