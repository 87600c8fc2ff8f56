package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmkit/llmkit/internal/redistest"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

func newRedisClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		DialTimeout:           200 * time.Millisecond,
		ReadTimeout:           200 * time.Millisecond,
		WriteTimeout:          200 * time.Millisecond,
		MaxRetries:            -1,
		DisableIdentity:       true,
		ContextTimeoutEnabled: true,
	})
}

// liveRedis returns a client of the Redis at $LLMKIT_REDIS_ADDR and a key
// prefix of this test's own, deleted when the test ends. When Redis is not
// reachable the test fails under CI and is skipped elsewhere.
func liveRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	addr := RedisAddr()
	rdb := newRedisClient(addr)
	t.Cleanup(func() { rdb.Close() })
	redistest.Require(t, rdb, addr)
	prefix := fmt.Sprintf("llmkit-test:%s:%d:", t.Name(), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return rdb, prefix
}

func newRedisT(t *testing.T, rdb redis.Cmdable, cfg RedisConfig) *Redis {
	t.Helper()
	s, err := NewRedis(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRedisSharedBetweenClients(t *testing.T) {
	rdb, prefix := liveRedis(t)
	other := newRedisClient(RedisAddr())
	defer other.Close()

	mw1, _ := Middleware(newRedisT(t, rdb, RedisConfig{Prefix: prefix}))
	mw2, _ := Middleware(newRedisT(t, other, RedisConfig{Prefix: prefix}))
	up1 := &llmtest.Fake{Default: llmtest.Step{Text: "shared answer"}}
	up2 := &llmtest.Fake{}
	c1, c2 := mw1(up1), mw2(up2)
	rec := newRecorder()
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
	if !rec.sources["redis"] || rec.n(llm.EventCacheError) != 0 {
		t.Fatalf("sources %v, errors %v", rec.sources, rec.errs)
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
	if ttl <= DefaultTTL || ttl > DefaultTTL+DefaultGrace {
		t.Fatalf("Redis TTL = %v, want TTL+grace = %v", ttl, DefaultTTL+DefaultGrace)
	}

	// Tenant isolation holds across processes too.
	req.Tenant = "another"
	if resp, _ := c2.Generate(ctx, req); resp.Cached {
		t.Fatal("another tenant got the entry")
	}
}

func TestRedisUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a closed loopback port: connections are refused
	rdb := newRedisClient(addr)
	defer rdb.Close()
	st := newRedisT(t, rdb, RedisConfig{BreakerFailures: 3, BreakerCooldown: time.Hour})
	up := &llmtest.Fake{Default: llmtest.Step{Text: "from the provider"}}
	mw, _ := Middleware(st)
	c := mw(up)
	rec := newRecorder()
	ctx := llm.WithObserver(context.Background(), rec)
	// An observer subscribed at construction hears what the context's
	// hears: the store's errors and its breaker's change included.
	sub := newRecorder()
	if !llm.Subscribe(c, sub) {
		t.Fatal("cache over Redis over a Fake refused a subscription")
	}
	for i := range 20 {
		resp, err := c.Generate(ctx, det(fmt.Sprint("q", i)))
		if err != nil || resp.Text != "from the provider" {
			t.Fatalf("call %d with Redis down: %+v, %v", i, resp, err)
		}
	}
	if !maps.Equal(sub.counts, rec.counts) {
		t.Fatalf("subscribed observer heard %v, the context's %v", sub.counts, rec.counts)
	}
	if st.BreakerState() != llm.BreakerOpen {
		t.Fatalf("breaker %v after 20 failing calls, want open", st.BreakerState())
	}
	if rec.n(llm.EventCacheError) == 0 || rec.n(llm.EventBreakerState) != 1 {
		t.Fatalf("events %v: want cache errors and one breaker change", rec.counts)
	}
	var opened int
	for _, err := range rec.errs {
		if errors.Is(err, ErrStoreOpen) {
			opened++
		}
	}
	// 3 real failures open it; every later Get and Set fails fast.
	if opened < 30 {
		t.Fatalf("%d of %d store errors came from the open breaker: Redis kept being called", opened, len(rec.errs))
	}
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

func TestRedisStoppedMidTest(t *testing.T) {
	_, prefix := liveRedis(t)
	px := startProxy(t, RedisAddr())
	rdb := newRedisClient(px.ln.Addr().String())
	defer rdb.Close()
	st := newRedisT(t, rdb, RedisConfig{Prefix: prefix})
	up := &llmtest.Fake{Default: llmtest.Step{Text: "answer"}}
	mw, _ := Middleware(st)
	c := mw(up)
	rec := newRecorder()
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
	if up.Calls() != 11 || rec.n(llm.EventCacheError) == 0 {
		t.Fatalf("upstream calls %d (want 11), cache errors %d (want > 0)", up.Calls(), rec.n(llm.EventCacheError))
	}
	for _, err := range rec.errs {
		if !errors.Is(err, ErrStoreOpen) && llm.KindOf(err) != llm.KindUnavailable && llm.KindOf(err) != llm.KindTimeout {
			t.Fatalf("store error %v is not classified unavailable or timeout", err)
		}
	}
}

func TestTieredFillsL1FromL2(t *testing.T) {
	rdb, prefix := liveRedis(t)
	shared := newRedisT(t, rdb, RedisConfig{Prefix: prefix})
	newTier := func() (*Tiered, *Ristretto) {
		l1 := newRistrettoT(t, RistrettoConfig{MaxCost: 1 << 20})
		tr, err := NewTiered(l1, shared)
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
	rec := newRecorder()
	ctx := llm.WithObserver(context.Background(), rec)
	mw1(up).Generate(ctx, det("q"))
	l1a.Wait()
	key := mustKey(t, det("q"))
	if _, ok, _ := l1a.Get(ctx, key); !ok {
		t.Fatal("Set did not reach L1")
	}
	if _, ok, _ := l1b.Get(ctx, key); ok {
		t.Fatal("the second process's L1 has an entry it never saw")
	}
	resp, err := mw2(up).Generate(ctx, det("q"))
	if err != nil || !resp.Cached || up.Calls() != 1 {
		t.Fatalf("second process: %+v, %v, calls %d: want an L2 hit", resp, err, up.Calls())
	}
	l1b.Wait()
	if _, ok, _ := l1b.Get(ctx, key); !ok {
		t.Fatal("an L2 hit did not fill L1")
	}
	if !rec.sources["tiered"] || len(rec.sources) != 1 {
		t.Fatalf("sources = %v, want tiered", rec.sources)
	}
}

func TestRedisConfigValidated(t *testing.T) {
	if _, err := NewRedis(nil, RedisConfig{}); err == nil {
		t.Error("NewRedis(nil) succeeded")
	}
	rdb := newRedisClient("127.0.0.1:1")
	defer rdb.Close()
	if _, err := NewRedis(rdb, RedisConfig{Timeout: -1}); err == nil {
		t.Error("a negative timeout was accepted")
	}
	plain := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer plain.Close()
	if _, err := NewRedis(plain, RedisConfig{}); err == nil {
		t.Error("a client that ignores context deadlines was accepted")
	}
	if _, err := NewTiered(nil, newMapStore()); err == nil {
		t.Error("NewTiered with a nil level succeeded")
	}
}

func TestRedisAsyncWrites(t *testing.T) {
	rdb, prefix := liveRedis(t)
	st := newRedisT(t, rdb, RedisConfig{Prefix: prefix, AsyncWrites: 4})
	defer st.Close()
	reader := newRedisT(t, rdb, RedisConfig{Prefix: prefix})
	mw, _ := Middleware(st)
	up := &llmtest.Fake{Default: llmtest.Step{Text: "async"}}
	mw(up).Generate(context.Background(), det("q"))
	st.Wait()
	e, ok, err := reader.Get(context.Background(), mustKey(t, det("q")))
	if err != nil || !ok || e.Response.Text != "async" {
		t.Fatalf("after Wait: %+v, %v, %v: the background write did not land", e, ok, err)
	}
}

// TestRedisAsyncWritesBounded points the store at a server that accepts
// connections and never answers: the one write slot stays taken until the
// command times out, so the next Set is refused at once, and the failed
// background write is reported.
func TestRedisAsyncWritesBounded(t *testing.T) {
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
	rdb := newRedisClient(ln.Addr().String())
	defer rdb.Close()
	st := newRedisT(t, rdb, RedisConfig{AsyncWrites: 1, Timeout: 20 * time.Millisecond})
	rec := newRecorder()
	ctx := llm.WithObserver(context.Background(), rec)
	e := Entry{Response: &llm.Response{Text: "x"}, Expires: time.Now().Add(time.Hour), StaleUntil: time.Now().Add(time.Hour)}
	if err := st.Set(ctx, mustKey(t, det("a")), e, time.Hour); err != nil {
		t.Fatalf("first Set: %v", err)
	}
	if err := st.Set(ctx, mustKey(t, det("b")), e, time.Hour); !errors.Is(err, ErrWritesBusy) {
		t.Fatalf("second Set while the first is stuck: %v, want ErrWritesBusy", err)
	}
	st.Wait()
	if rec.n(llm.EventCacheError) != 1 || llm.KindOf(rec.errs[0]) != llm.KindTimeout {
		t.Fatalf("cache errors %v, want 1 timeout for the stuck background write", rec.errs)
	}
}

// failingStore fails every call, like a dead remote store.
type failingStore struct{}

var errDead = &llm.Error{Kind: llm.KindUnavailable, Provider: "dead", Message: "store down"}

func (failingStore) Get(context.Context, Key) (Entry, bool, error)        { return Entry{}, false, errDead }
func (failingStore) Set(context.Context, Key, Entry, time.Duration) error { return errDead }
func (failingStore) Name() string                                         { return "dead" }

func TestTieredWithDeadL2(t *testing.T) {
	l1 := newRistrettoT(t, RistrettoConfig{})
	tr, _ := NewTiered(l1, failingStore{})
	c, _ := New(tr)
	up := &llmtest.Fake{Default: llmtest.Step{Text: "answer"}}
	rec := newRecorder()
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
	if rec.n(llm.EventCacheError) != 2 {
		t.Fatalf("cache errors = %d, want 2", rec.n(llm.EventCacheError))
	}
}

func TestStaleReportsStoreErrors(t *testing.T) {
	c, _ := New(failingStore{})
	rec := newRecorder()
	if _, ok := c.Stale(llm.WithObserver(context.Background(), rec), det("q")); ok {
		t.Fatal("Stale answered from a failing store")
	}
	if rec.n(llm.EventCacheError) != 1 || !rec.sources["dead"] {
		t.Fatalf("events %v from %v, want one cache error from dead", rec.counts, rec.sources)
	}
}
