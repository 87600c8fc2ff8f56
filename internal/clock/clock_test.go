package clock

import (
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Differences of Mono follow the fake clock inside a synctest bubble, as
// the per-call timings of metrics and resilience need.
func TestMonoFollowsTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := Mono()
		time.Sleep(1500 * time.Millisecond)
		if d := Mono() - start; d != 1500*time.Millisecond {
			t.Fatalf("Mono advanced %v over a 1.5 s sleep of fake time", d)
		}
	})
}
