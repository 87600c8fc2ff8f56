package openai_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/openai"
)

const day = 24 * time.Hour

func TestParseReset(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1s": time.Second, "6m0s": 6 * time.Minute, "20ms": 20 * time.Millisecond, "1m30.5s": 90500 * time.Millisecond,
		"2": 2 * time.Second, "0.25": 250 * time.Millisecond, "0s": 0, "9999h": day, "1e300": day,
	} {
		if got, ok := openai.ParseReset(in); !ok || got != want {
			t.Errorf("ParseReset(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-1s", "-3", "soon", "NaN", "Inf", "1x"} {
		if got, ok := openai.ParseReset(in); ok {
			t.Errorf("ParseReset(%q) = %v, ok; want not ok", in, got)
		}
	}
}

func TestParseQuotaPartial(t *testing.T) {
	if q := openai.ParseQuota(http.Header{"Content-Type": {"x"}}); q != nil {
		t.Fatalf("no rate-limit headers: %+v, want nil", q)
	}
	h := http.Header{}
	h.Set("x-ratelimit-remaining-tokens", "0")
	h.Set("x-ratelimit-limit-requests", "garbage")
	q := openai.ParseQuota(h)
	want := llm.NewQuota()
	want.RemainingTokens = 0
	if q == nil || *q != want {
		t.Fatalf("quota = %+v, want %+v (zero remaining is known; garbage is unknown)", q, want)
	}
}

func FuzzParseQuota(f *testing.F) {
	f.Add("10000", "9999", "2000000", "1999000", "6ms", "1m30.5s")
	f.Add("", "", "", "", "", "")
	f.Add("-1", "x", "99999999999999999999", " 5 ", "-1s", "1e309")
	f.Fuzz(func(t *testing.T, lr, rr, lt, rt, resetR, resetT string) {
		h := http.Header{}
		for k, v := range map[string]string{
			"x-ratelimit-limit-requests": lr, "x-ratelimit-remaining-requests": rr,
			"x-ratelimit-limit-tokens": lt, "x-ratelimit-remaining-tokens": rt,
			"x-ratelimit-reset-requests": resetR, "x-ratelimit-reset-tokens": resetT,
		} {
			h.Set(k, v)
		}
		q := openai.ParseQuota(h)
		if q == nil {
			return
		}
		for _, n := range []int64{q.LimitRequests, q.RemainingRequests, q.LimitTokens, q.RemainingTokens} {
			if n < llm.QuotaUnknown {
				t.Fatalf("count %d below QuotaUnknown", n)
			}
		}
		for _, d := range []time.Duration{q.ResetRequests, q.ResetTokens} {
			if d < 0 || d > day {
				t.Fatalf("reset %v outside [0, 24h]", d)
			}
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		h    map[string]string
		want time.Duration
	}{
		{map[string]string{"Retry-After": "3"}, 3 * time.Second},
		{map[string]string{"Retry-After": "0.5"}, 500 * time.Millisecond},
		{map[string]string{"Retry-After-Ms": "250"}, 250 * time.Millisecond},
		{map[string]string{"Retry-After-Ms": "bad", "Retry-After": "2"}, 2 * time.Second},
		{map[string]string{"Retry-After": now.Add(time.Minute).Format(http.TimeFormat)}, time.Minute},
		{map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, 0},
		{map[string]string{"Retry-After": "999999999999"}, day},
		{map[string]string{"Retry-After": "-4"}, 0},
		{map[string]string{"Retry-After": "later"}, 0},
		{nil, 0},
	} {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if got := openai.ParseRetryAfter(h, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%v) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	f.Add("7", "")
	f.Add("", "1500")
	f.Add("Wed, 21 Oct 2015 07:28:00 GMT", "")
	f.Add("1e400", "-1")
	f.Add("NaN", "Inf")
	f.Fuzz(func(t *testing.T, ra, ms string) {
		h := http.Header{}
		h.Set("retry-after", ra)
		h.Set("retry-after-ms", ms)
		d := openai.ParseRetryAfter(h, time.Date(2015, 10, 21, 7, 0, 0, 0, time.UTC))
		if d < 0 || d > day {
			t.Fatalf("ParseRetryAfter(%q, %q) = %v, outside [0, 24h]", ra, ms, d)
		}
	})
}

func TestParseErrorBody(t *testing.T) {
	for body, want := range map[string]openai.APIError{
		`{"error":{"message":"m","type":"t","code":"c"}}`:                      {Message: "m", Type: "t", Code: "c"},
		`{"error":{"message":"m","type":"t","code":null,"param":null}}`:        {Message: "m", Type: "t"},
		`{"error":{"message":"m","code":429}}`:                                 {Message: "m", Code: "429"},
		`{"object":"error","message":"m","type":"BadRequestError","code":400}`: {Message: "m", Type: "BadRequestError", Code: "400"},
		`{"error":"plain"}`:    {Message: "plain"},
		`{"detail":"missing"}`: {Message: "missing"},
		`upstream connect error or disconnect/reset before headers`: {Message: "upstream connect error or disconnect/reset before headers"},
		``:                                   {},
		`[1,2]`:                              {Message: "[1,2]"},
		`{"error":{"message":{"nested":1}}}`: {},
	} {
		if got := openai.ParseErrorBody([]byte(body)); got != want {
			t.Errorf("ParseErrorBody(%s) = %+v, want %+v", body, got, want)
		}
	}
	long := strings.Repeat("x", 10000)
	if got := openai.ParseErrorBody([]byte(long)); len(got.Message) > 600 {
		t.Errorf("plain-text body kept %d bytes", len(got.Message))
	}
}

func FuzzParseErrorBody(f *testing.F) {
	f.Add([]byte(`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`))
	f.Add([]byte(`{"object":"error","message":"too long","type":"BadRequestError","code":400}`))
	f.Add([]byte(`{"detail":[{"loc":["body"],"msg":"x"}]}`))
	f.Add([]byte(`<html>502</html>`))
	f.Add([]byte(`{"error":`))
	f.Add([]byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, body []byte) {
		e := openai.ParseErrorBody(body) // must not panic
		if !json.Valid(body) && len(e.Message) > 600 {
			t.Fatalf("unparsed body kept %d bytes", len(e.Message))
		}
	})
}

// FuzzParseErrorBodyRoundTrip: whatever strings an OpenAI error body holds
// come back exactly.
func FuzzParseErrorBodyRoundTrip(f *testing.F) {
	f.Add("Rate limit reached", "requests", "rate_limit_exceeded")
	f.Add("", "", "")
	f.Add("\"quoted\" \\ \u2028", "t", "c")
	f.Fuzz(func(t *testing.T, msg, typ, code string) {
		if !utf8.ValidString(msg) || !utf8.ValidString(typ) || !utf8.ValidString(code) {
			return
		}
		body, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code}})
		got := openai.ParseErrorBody(body)
		if got != (openai.APIError{Message: msg, Type: typ, Code: code}) {
			t.Fatalf("round trip of %s gave %+v", body, got)
		}
	})
}
