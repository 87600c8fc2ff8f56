package anthropic

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/llmkit/llmkit/llm"
)

const canary = "sk-ant-canary-9f8e7d6c5b4a39281706"

func FuzzParseErrorBody(f *testing.F) {
	for _, s := range []string{
		`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
		`{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 215000 tokens > 200000 maximum"},"request_id":"req_1"}`,
		`{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key: ` + canary + `"}}`,
		`{"error":{"type":"bad type with spaces","message":"\u0000\u001b[31mred"}}`,
		`{"error":"a string"}`, `{"error":{"message":12}}`, `[]`, `null`, ``, `<html>502</html>`,
		`{"error":{"type":"api_error","message":"` + strings.Repeat("é", 300) + `"}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		typ, msg := parseErrorBody(body)
		checkParsed(t, typ, msg)
		// A key planted in the message never survives.
		var env struct {
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		env.Error.Type = "authentication_error"
		env.Error.Message = body + " " + canary + " " + body
		b, _ := json.Marshal(env)
		typ, msg = parseErrorBody(string(b))
		checkParsed(t, typ, msg)
		if secret := canary[len("sk-ant-canary-"):]; strings.Contains(msg, secret) && !strings.Contains(body, secret) {
			t.Fatalf("the key survived: %q", msg)
		}
	})
}

func checkParsed(t *testing.T, typ, msg string) {
	t.Helper()
	if len(typ) > 64 || !isToken(typ) {
		t.Fatalf("type %q is not a bounded identifier", typ)
	}
	if len(msg) > maxMessageBytes+len("…") || !utf8.ValidString(msg) || strings.IndexFunc(msg, isControl) >= 0 {
		t.Fatalf("message %q is not bounded, valid, printable text", msg)
	}
}

func FuzzParseQuota(f *testing.F) {
	f.Add("4000", "3999", "2025-03-01T12:00:15Z", "400000", "0", "2025-03-01T12:00:02Z", "")
	f.Add("", "", "", "", "", "", "299500")
	f.Add("-1", "1e3", "yesterday", " 12 ", "9223372036854775808", "9999-12-31T23:59:59Z", "x")
	f.Add("0", "", "0001-01-01T00:00:00Z", "", "", "2025-03-01T12:00:02+14:00", "")
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, rl, rr, rreset, tl, tr, treset, inRemaining string) {
		h := http.Header{}
		set := func(k, v string) {
			if v != "" {
				h.Set(k, v)
			}
		}
		set(hRequestsLimit, rl)
		set(hRequestsRemaining, rr)
		set(hRequestsReset, rreset)
		set(hTokensLimit, tl)
		set(hTokensRemaining, tr)
		set(hTokensReset, treset)
		set(hInputRemaining, inRemaining)
		q := parseQuota(h, now)
		if q == nil {
			return
		}
		for _, n := range []int64{q.LimitRequests, q.RemainingRequests, q.LimitTokens, q.RemainingTokens} {
			if n < 0 && n != llm.QuotaUnknown {
				t.Fatalf("count %d is neither a count nor QuotaUnknown", n)
			}
		}
		for _, d := range []time.Duration{q.ResetRequests, q.ResetTokens} {
			if d < 0 || d > maxWait {
				t.Fatalf("reset %v out of [0, %v]", d, maxWait)
			}
		}
		if !q.Known() && q.ResetRequests == 0 && q.ResetTokens == 0 {
			// Every header present failed to parse, but a reset at now
			// parses to 0: that is the only way to be non-nil and empty.
			if !strings.Contains(rreset+treset, "T") {
				t.Fatalf("non-nil quota %+v from headers with nothing readable", q)
			}
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"7", "0", "-3", "1.5", "NaN", "Inf", "1e300", "Wed, 21 Oct 2015 07:28:00 GMT",
		"Sat, 01 Mar 2025 12:00:30 GMT", "soon", ""} {
		f.Add(s)
	}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Set("Retry-After", v)
		if d := parseRetryAfter(h, now); d < 0 || d > maxWait {
			t.Fatalf("Retry-After %q gave %v, out of [0, %v]", v, d, maxWait)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"7": 7 * time.Second, " 7 ": 7 * time.Second, "1.5": 1500 * time.Millisecond, "0": 0, "-3": 0,
		"NaN": 0, "soon": 0, "": 0, "1e300": maxWait,
		"Sat, 01 Mar 2025 12:00:30 GMT": 30 * time.Second, "Wed, 21 Oct 2015 07:28:00 GMT": 0,
	} {
		h := http.Header{}
		if v != "" {
			h.Set("retry-after", v)
		}
		if got := parseRetryAfter(h, now); got != want {
			t.Errorf("Retry-After %q = %v, want %v", v, got, want)
		}
	}
}

func TestParseQuota(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	if q := parseQuota(http.Header{"Content-Type": {"application/json"}}, now); q != nil {
		t.Fatalf("no rate-limit headers: %+v, want nil", q)
	}
	q := parseQuota(quotaHeaders(now), now)
	want := llm.Quota{LimitRequests: 4000, RemainingRequests: 3999, LimitTokens: 400000, RemainingTokens: 399000,
		ResetRequests: 15 * time.Second, ResetTokens: 2 * time.Second}
	if q == nil || *q != want {
		t.Fatalf("all headers: %+v, want %+v (tokens-* win over input-tokens-*)", q, want)
	}
	// Without tokens-*, the input-tokens-* headers fill the token fields.
	h := quotaHeaders(now)
	h.Del(hTokensLimit)
	h.Del(hTokensRemaining)
	h.Del(hTokensReset)
	want.LimitTokens, want.RemainingTokens, want.ResetTokens = 300000, 299500, 3*time.Second
	if q := parseQuota(h, now); q == nil || *q != want {
		t.Fatalf("input-tokens only: %+v, want %+v", q, want)
	}
	// A reset in the past is 0; an exhausted quota is a real 0; junk is unknown.
	h = http.Header{}
	h.Set("anthropic-ratelimit-requests-remaining", "0")
	h.Set("anthropic-ratelimit-requests-limit", "lots")
	h.Set("anthropic-ratelimit-requests-reset", now.Add(-time.Minute).Format(time.RFC3339))
	q = parseQuota(h, now)
	if q == nil || q.RemainingRequests != 0 || q.LimitRequests != llm.QuotaUnknown || q.ResetRequests != 0 || q.LimitTokens != llm.QuotaUnknown {
		t.Fatalf("partial headers: %+v", q)
	}
}
