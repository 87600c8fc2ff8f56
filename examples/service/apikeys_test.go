package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/provider/sim"
)

const (
	acmeKey   = "sk-acme-3c1f9e"
	globexKey = "sk-globex-77aa01"
)

// call posts body to /generate with headers.
func call(t *testing.T, url, body string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/generate", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// lockedBuffer is a log sink the handlers' goroutines may write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestAPIKeys(t *testing.T) {
	logs := &lockedBuffer{}
	model := sim.MustNew(sim.Config{TTFT: -1, PerToken: -1, MinTokens: 4, MaxTokens: 8})
	s, err := newServer(serverConfig{config: testConfig(t, env{"LLMKIT_API_KEYS": acmeKey + " acme, " + globexKey + " globex"}),
		Provider: model, ProviderName: "sim", Model: sim.DefaultModel,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })

	body := `{"prompt":"Why is the sky blue?","temperature":0}`
	for _, h := range []map[string]string{
		nil,
		{"X-API-Key": "sk-wrong"},
		{"X-API-Key": acmeKey[:len(acmeKey)-1]}, // a prefix of a real key
		{"Authorization": "Bearer sk-wrong"},
		{"Authorization": "Basic " + acmeKey}, // not a bearer token
	} {
		resp, b := call(t, ts.URL, body, h)
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" || !strings.Contains(string(b), `"auth"`) {
			t.Errorf("headers %v: %d %s, want 401", h, resp.StatusCode, b)
		}
		if strings.Contains(string(b), "sk-") {
			t.Errorf("the 401 echoes the key: %s", b)
		}
	}

	// Both headers work, and the key, not the body, names the tenant: the
	// cache is scoped by it.
	resp, b := call(t, ts.URL, body, map[string]string{"X-API-Key": acmeKey})
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"cached":false`) {
		t.Fatalf("acme via X-API-Key: %d %s", resp.StatusCode, b)
	}
	s.store.Wait()
	resp, b = call(t, ts.URL, strings.Replace(body, "{", `{"tenant":"globex",`, 1), map[string]string{"Authorization": "Bearer " + acmeKey})
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"cached":true`) {
		t.Fatalf("acme via Bearer, claiming tenant globex in the body: %d %s, want acme's cached answer", resp.StatusCode, b)
	}
	resp, b = call(t, ts.URL, body, map[string]string{"X-API-Key": globexKey})
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"cached":false`) {
		t.Fatalf("globex: %d %s, want its own (uncached) answer", resp.StatusCode, b)
	}

	// Probes and metrics need no key.
	for _, path := range []string{"/readyz", "/healthz", "/metrics", "/statusz"} {
		if code, _ := get(t, ts.URL+path); code != 200 {
			t.Errorf("%s without a key: %d", path, code)
		}
	}
	if logs.String() == "" {
		t.Fatal("no log lines: the check below would prove nothing")
	}
	for _, k := range []string{acmeKey, globexKey, "sk-wrong"} {
		if strings.Contains(logs.String(), k) {
			t.Fatalf("a key reached the logs:\n%s", logs.String())
		}
	}
}

func TestKeysFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	content := "# key tenant rpm tpm\n" + acmeKey + " acme 60 100000\n\n" + globexKey + " globex   # no limits\nsk-acme-2 acme 60 100000\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	kr, err := loadKeys("sk-inline initech 5", path)
	if err != nil {
		t.Fatal(err)
	}
	for key, tenant := range map[string]string{acmeKey: "acme", "sk-acme-2": "acme", globexKey: "globex", "sk-inline": "initech"} {
		if got, ok := kr.tenantFor(key); !ok || got != tenant {
			t.Errorf("key of %s: %q %v", tenant, got, ok)
		}
	}
	if _, ok := kr.tenantFor(""); ok {
		t.Error("the empty key was accepted")
	}
	want := map[string]keyLimits{"acme": {60, 100000}, "initech": {5, 0}}
	if len(kr.limits) != len(want) || kr.limits["acme"] != want["acme"] || kr.limits["initech"] != want["initech"] {
		t.Errorf("limits %v, want %v", kr.limits, want)
	}
	for _, k := range kr.keys {
		if bytes.Contains(k.digest[:], []byte("sk-")) {
			t.Fatal("a key is stored in clear")
		}
	}
	if kr, err := loadKeys("", ""); kr != nil || err != nil {
		t.Errorf("no keys: %v %v, want nil (open)", kr, err)
	}
}

func TestBadKeysAreRejectedAtStart(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("# nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ inline, file, want string }{
		{"sk-secret-1", "", "entry 1: want <key> <tenant>"},
		{"sk-ok a, sk-secret-1 b -5", "", "entry 2: the limits"},
		{"sk-secret-1 a 1 2 3", "", "entry 1"},
		{"sk-secret-1 a, sk-secret-1 b", "", "listed twice"},
		{"sk-secret-1 a 10, sk-secret-2 a 20", "", "different limits"},
		{"", filepath.Join(t.TempDir(), "missing"), "LLMKIT_API_KEYS_FILE"},
		{"", empty, "holds no key"},
	} {
		_, err := loadConfig(env{"LLMKIT_API_KEYS": tt.inline, "LLMKIT_API_KEYS_FILE": tt.file}.get)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q %q: %v, want an error with %q", tt.inline, tt.file, err, tt.want)
		} else if strings.Contains(err.Error(), "sk-secret") {
			t.Errorf("the error shows the key: %v", err)
		}
	}
}

// Through HTTP: a key over its requests per minute gets 429 with
// Retry-After; other keys are not held back.
func TestPerKeyLimitOverHTTP(t *testing.T) {
	ts, _, _ := newTestServer(t, env{"LLMKIT_API_KEYS": acmeKey + " acme 1, " + globexKey + " globex"})
	refused := 0
	// One permit per minute: of three quick calls at least two are
	// refused, even if a minute boundary falls between them.
	for range 3 {
		resp, b := call(t, ts.URL, `{"prompt":"hi"}`, map[string]string{"X-API-Key": acmeKey})
		switch resp.StatusCode {
		case 200:
		case 429:
			refused++
			var e map[string]errorJSON
			if json.Unmarshal(b, &e) != nil || e["error"].Kind != "rate_limited" || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("refusal: %s, Retry-After %q", b, resp.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("acme: %d %s", resp.StatusCode, b)
		}
	}
	if refused < 2 {
		t.Fatalf("%d of 3 calls refused at 1 request per minute, want at least 2", refused)
	}
	for range 3 {
		if resp, b := call(t, ts.URL, `{"prompt":"hi"}`, map[string]string{"X-API-Key": globexKey}); resp.StatusCode != 200 {
			t.Fatalf("globex (no limit): %d %s", resp.StatusCode, b)
		}
	}
}

// In a bubble, the limits per minute exactly: requests and tokens, per
// tenant, renewed after a minute.
func TestPerKeyLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Each answer uses 60 tokens, which the token limit settles on.
		fake := &llmtest.Fake{Default: llmtest.Step{Response: &llm.Response{Usage: llm.Usage{InputTokens: 1, OutputTokens: 59}}}}
		mw, err := perKeyLimits(map[string]keyLimits{"acme": {RPM: 2}, "initech": {TPM: 100}}, nil, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		c := mw(fake)
		ask := func(tenant string, maxTokens int) error {
			_, err := c.Generate(context.Background(), &llm.Request{Tenant: tenant, MaxTokens: maxTokens,
				Messages: []llm.Message{llm.User("hi")}})
			return err
		}
		for i, want := range []bool{true, true, false} {
			if err := ask("acme", 10); (err == nil) != want {
				t.Fatalf("acme call %d: %v", i+1, err)
			} else if err != nil && llm.KindOf(err) != llm.KindRateLimited {
				t.Fatalf("acme refusal: %v", err)
			}
		}
		for range 5 {
			if err := ask("globex", 10); err != nil {
				t.Fatalf("globex has no limits: %v", err)
			}
		}
		// initech: 100 tokens a minute; a call reserves its input estimate
		// plus MaxTokens.
		if err := ask("initech", 59); err != nil {
			t.Fatal(err)
		}
		if err := ask("initech", 59); llm.KindOf(err) != llm.KindRateLimited {
			t.Fatalf("initech over its tokens: %v", err)
		}
		time.Sleep(time.Minute)
		if err := ask("acme", 10); err != nil {
			t.Fatalf("acme a minute later: %v", err)
		}
	})
}
