package headers

import (
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		h    http.Header
		want time.Duration
	}{
		{nil, 0},
		{http.Header{}, 0},
		{http.Header{"Retry-After": {"3"}}, 3 * time.Second},
		{http.Header{"Retry-After": {" 1.5 "}}, 1500 * time.Millisecond},
		{http.Header{"Retry-After": {"-1"}}, 0},
		{http.Header{"Retry-After": {"NaN"}}, 0},
		{http.Header{"Retry-After": {"soon"}}, 0},
		{http.Header{"Retry-After": {"86400000"}}, MaxWait},
		{http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{http.Header{"Retry-After": {now.Add(-time.Hour).Format(http.TimeFormat)}}, 0},
		{http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"9"}}, 250 * time.Millisecond},
		{http.Header{"Retry-After-Ms": {"1e300"}}, MaxWait},
		{http.Header{"Retry-After-Ms": {"bad"}, "Retry-After": {"2"}}, 2 * time.Second},
	}
	for _, tt := range tests {
		if got := RetryAfter(tt.h, now); got != tt.want {
			t.Errorf("RetryAfter(%v) = %v, want %v", tt.h, got, tt.want)
		}
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"1", "0.5", "-3", "1e309", "Wed, 21 Oct 2015 07:28:00 GMT", ""} {
		f.Add(s, s)
	}
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, ms, s string) {
		d := RetryAfter(http.Header{"Retry-After-Ms": {ms}, "Retry-After": {s}}, now)
		if d < 0 || d > MaxWait {
			t.Fatalf("RetryAfter(ms=%q, s=%q) = %v, out of [0, %v]", ms, s, d, MaxWait)
		}
	})
}

func TestGetAndClamp(t *testing.T) {
	h := http.Header{"X-A": {" v ", "w"}}
	if Get(h, "X-A") != "v" || Get(h, "X-B") != "" {
		t.Fatal("Get")
	}
	if Clamp(-time.Second) != 0 || Clamp(48*time.Hour) != MaxWait || Clamp(time.Second) != time.Second {
		t.Fatal("Clamp")
	}
}
