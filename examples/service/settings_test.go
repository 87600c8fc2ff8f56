package main

import (
	"strings"
	"testing"
)

// CACHE_NONDETERMINISTIC=1 caches requests without a temperature (the
// seed's); without it they pass the cache, counted as bypasses.
func TestCacheNondeterministic(t *testing.T) {
	body := `{"prompt":"测试提示词"}`
	ts, s, _ := newTestServer(t, env{"CACHE_NONDETERMINISTIC": "1"})
	if _, b := post(t, ts.URL, body); !strings.Contains(string(b), `"cached":false`) {
		t.Fatalf("first call: %s", b)
	}
	s.store.Wait()
	if _, b := post(t, ts.URL, body); !strings.Contains(string(b), `"cached":true`) {
		t.Fatalf("second call with CACHE_NONDETERMINISTIC=1: %s, want the cached answer", b)
	}

	ts, s, _ = newTestServer(t, nil)
	post(t, ts.URL, body)
	s.store.Wait()
	if _, b := post(t, ts.URL, body); !strings.Contains(string(b), `"cached":false`) {
		t.Fatalf("second call by default: %s, want no cached answer", b)
	}
}

// LATENCY_BUCKETS replaces llm_request_duration_seconds's bounds.
func TestLatencyBuckets(t *testing.T) {
	ts, _, _ := newTestServer(t, env{"LATENCY_BUCKETS": "0.025,0.25,2.5"})
	post(t, ts.URL, `{"prompt":"hi"}`)
	_, b := get(t, ts.URL+"/metrics")
	for _, le := range []string{`le="0.025"`, `le="0.25"`, `le="2.5"`} {
		if !strings.Contains(string(b), "llm_request_duration_seconds_bucket{") || !strings.Contains(string(b), le) {
			t.Fatalf("/metrics lacks the bucket %s", le)
		}
	}
	if strings.Contains(string(b), `llm_request_duration_seconds_bucket{endpoint="other",model="sim-1",le="0.15"}`) {
		t.Fatal("a default bound is still there")
	}
}
