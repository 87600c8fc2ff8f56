package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkGenerator measures the generator's own cost: b.N requests from
// 64 closed-loop users against an instant loopback server in the same
// process (so the figure includes the server's share of the CPU).
//
//	go test -run '^$' -bench Generator -benchtime 200000x ./loadtest/
func BenchmarkGenerator(b *testing.B) {
	body := []byte(`{"text":"ok","cached":true,"degraded":false,"usage":{"input":5,"output":1}}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	cfg := defaultConfig()
	cfg.URL, cfg.Concurrency, cfg.StreamShare, cfg.Seed = srv.URL, 64, 0, 1
	t := newTarget(&cfg, cfg.Concurrency)
	defer t.close()
	b.ReportAllocs()
	b.ResetTimer()
	col := runPhase(context.Background(), t, phase{users: cfg.Concurrency, duration: time.Hour, requests: b.N}, 1)
	b.StopTimer()
	if st := col.stats(64, 0.99); st.Answered != b.N {
		b.Fatalf("answered %d of %d: %v", st.Answered, b.N, st.Outcomes)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
