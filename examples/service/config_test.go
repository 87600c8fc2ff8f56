package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/resilience"
)

func TestConfigDefaults(t *testing.T) {
	c, err := loadConfig(env{}.get)
	if err != nil {
		t.Fatal(err)
	}
	def := resilience.DefaultConfig()
	if c.ListenAddr != ":8000" || c.PprofAddr != "127.0.0.1:0" || c.Redis != nil || c.Keys != nil ||
		c.Policies.Timeout != def.Timeout || c.DrainDelay != 0 || c.CacheNondeterministic || c.LatencyBuckets != nil {
		t.Fatalf("defaults: %+v", c)
	}
	if c, _ := loadConfig(env{"PPROF_ADDR": "off"}.get); c.PprofAddr != "" {
		t.Fatalf("PPROF_ADDR=off: %q", c.PprofAddr)
	}
}

func TestConfigReadsTheEnvironment(t *testing.T) {
	c, err := loadConfig(env{
		"REDIS_URL":        "redis://app:s3cret@redis.internal:6380/2",
		"REDIS_KEY_PREFIX": "svc:",
		"TIMEOUT_TOTAL":    "45s", "TIMEOUT_ATTEMPT": "20s", "TIMEOUT_FIRST_CHUNK": "5s",
		"DRAIN_DELAY":              "5s",
		"FALLBACK_MESSAGE":         "busy",
		"FALLBACK_TIMEOUT_MESSAGE": "too slow",
		"CACHE_NONDETERMINISTIC":   "1",
		"LATENCY_BUCKETS":          "0.1, 0.25,0.5,1,2.5,10",
		"LOG_LEVEL":                "warn",
	}.get)
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis == nil || c.Redis.Addr != "redis.internal:6380" || c.Redis.DB != 2 || c.Redis.Username != "app" || c.Redis.Password != "s3cret" {
		t.Errorf("REDIS_URL: %+v", c.Redis)
	}
	want := resilience.TimeoutConfig{Total: 45 * time.Second, Attempt: 20 * time.Second, FirstChunk: 5 * time.Second}
	if c.RedisPrefix != "svc:" || c.Policies.Timeout != want || c.DrainDelay != 5*time.Second {
		t.Errorf("prefix %q, timeouts %+v, drain %v", c.RedisPrefix, c.Policies.Timeout, c.DrainDelay)
	}
	if c.Policies.Fallback.ErrorMessage != "busy" || c.Policies.Fallback.TimeoutMessage != "too slow" {
		t.Errorf("fallback %+v", c.Policies.Fallback)
	}
	if !c.CacheNondeterministic || !slices.Equal(c.LatencyBuckets, []float64{0.1, 0.25, 0.5, 1, 2.5, 10}) || c.LogLevel.String() != "WARN" {
		t.Errorf("cache %v, buckets %v, level %v", c.CacheNondeterministic, c.LatencyBuckets, c.LogLevel)
	}
	if c, _ := loadConfig(env{"REDIS_ADDR": "127.0.0.1:6379"}.get); c.Redis == nil || c.Redis.Addr != "127.0.0.1:6379" {
		t.Errorf("REDIS_ADDR: %+v", c.Redis)
	}
}

// A bad value stops the service at start with an error that names the
// variable and never shows a password.
func TestConfigRejectsBadValues(t *testing.T) {
	for _, tt := range []struct {
		env  env
		want string
	}{
		{env{"REDIS_ADDR": "redis://:hunter2@redis:6379"}, "put a redis:// URL in REDIS_URL"},
		{env{"REDIS_ADDR": "redis"}, "REDIS_ADDR"},
		{env{"REDIS_URL": "http://redis:6379"}, "invalid URL scheme"},
		{env{"REDIS_URL": "redis://:hunter2@redis:6379/zero"}, "invalid database number"},
		{env{"REDIS_URL": "redis://u:hunter2@redis:63 79/0"}, "REDIS_URL"},
		{env{"REDIS_URL": "redis://u:hunter2@[::1/0"}, "REDIS_URL"},
		{env{"REDIS_URL": "redis://redis:6379", "REDIS_ADDR": "redis:6379"}, "set one, not both"},
		{env{"TIMEOUT_TOTAL": "soon"}, "TIMEOUT_TOTAL"},
		{env{"TIMEOUT_ATTEMPT": "-1s"}, "TIMEOUT_ATTEMPT"},
		{env{"DRAIN_DELAY": "5"}, "DRAIN_DELAY"},
		{env{"CACHE_NONDETERMINISTIC": "maybe"}, "CACHE_NONDETERMINISTIC"},
		{env{"LATENCY_BUCKETS": "1,0.5"}, "must increase"},
		{env{"LATENCY_BUCKETS": "0.1,x"}, `"x" is not`},
		{env{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
	} {
		_, err := loadConfig(tt.env.get)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want an error with %q", tt.env, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%v: the error shows the password: %v", tt.env, err)
		}
	}
}

// The fallback text and timeouts reach the stack.
func TestConfigReachesTheStack(t *testing.T) {
	ts, _, model := newTestServer(t, env{"FALLBACK_MESSAGE": "We are on it."})
	if err := model.SetErrors(map[llm.Kind]float64{llm.KindUnavailable: 1}); err != nil {
		t.Fatal(err)
	}
	resp, b := post(t, ts.URL, `{"prompt":"hello","temperature":0.7}`)
	var out generateResponse
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || out.Text != "We are on it." || !out.Degraded {
		t.Fatalf("outage: %d %s, want the configured fallback text", resp.StatusCode, b)
	}
}
