package router

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// deployment is a Deployment with what the router learns about it. The
// fields a routing decision reads are atomics, so deciding takes no lock.
type deployment struct {
	Deployment
	group int

	inflight atomic.Int64
	// until is the monotonic instant (Router.now, in ns) its cooldown
	// ends; 0 when it is not cooling. cause is what started it: an
	// llm.Kind, or causeShared.
	until atomic.Int64
	cause atomic.Uint32

	// minute is the index+1 of the minute reqs and toks count; a different
	// minute means both are 0. The reset at a minute's turn is not atomic
	// with the counts: near the turn they are approximate.
	minute     atomic.Int64
	reqs, toks atomic.Int64

	// quota is the share of its allowance the provider last said was left
	// (float64 bits), valid until quotaUntil (monotonic ns).
	quota      atomic.Uint64
	quotaUntil atomic.Int64

	// lat holds the latency windows: [0] of whole calls, [1] of the time
	// to first chunk of streams.
	lat [2]window
}

// count adds a request and its estimated tokens to this minute's counts.
func (d *deployment) count(now time.Duration, tokens int) {
	if d.RPM == 0 && d.TPM == 0 {
		return
	}
	m := int64(now/time.Minute) + 1
	if cur := d.minute.Load(); cur != m && d.minute.CompareAndSwap(cur, m) {
		d.reqs.Store(0)
		d.toks.Store(0)
	}
	d.reqs.Add(1)
	d.toks.Add(int64(tokens))
}

// settle corrects this minute's token count by what the call really used.
func (d *deployment) settle(now time.Duration, estimated, used int) {
	if d.TPM == 0 || used == estimated || d.minute.Load() != int64(now/time.Minute)+1 {
		return
	}
	d.toks.Add(int64(used - estimated))
}

// capped reports whether this minute's RPM or TPM is used up.
func (d *deployment) capped(now time.Duration) bool {
	if d.RPM == 0 && d.TPM == 0 || d.minute.Load() != int64(now/time.Minute)+1 {
		return false
	}
	return d.RPM > 0 && d.reqs.Load() >= int64(d.RPM) || d.TPM > 0 && d.toks.Load() >= int64(d.TPM)
}

// headroom returns the share of this minute's RPM and TPM left, for a
// deployment that is not capped.
func (d *deployment) headroom(now time.Duration) float64 {
	if d.RPM == 0 && d.TPM == 0 || d.minute.Load() != int64(now/time.Minute)+1 {
		return 1
	}
	h := 1.0
	if d.RPM > 0 {
		h = 1 - float64(d.reqs.Load())/float64(d.RPM)
	}
	if d.TPM > 0 {
		h = min(h, 1-float64(d.toks.Load())/float64(d.TPM))
	}
	return max(h, 0)
}

// noteQuota keeps the share of the allowance q says is left, for
// UsageBased, and returns how long until it resets when it is used up.
func (d *deployment) noteQuota(now time.Duration, q *llm.Quota) (exhausted bool, reset time.Duration) {
	if q == nil {
		return false, 0
	}
	share, known := 1.0, false
	if q.LimitRequests > 0 && q.RemainingRequests >= 0 {
		share, known = min(share, float64(q.RemainingRequests)/float64(q.LimitRequests)), true
		if q.RemainingRequests == 0 {
			reset = max(reset, q.ResetRequests)
		}
	}
	if q.LimitTokens > 0 && q.RemainingTokens >= 0 {
		share, known = min(share, float64(q.RemainingTokens)/float64(q.LimitTokens)), true
		if q.RemainingTokens == 0 {
			reset = max(reset, q.ResetTokens)
		}
	}
	if !known {
		return false, 0
	}
	valid := max(q.ResetRequests, q.ResetTokens)
	if valid <= 0 {
		valid = time.Minute
	}
	d.quota.Store(math.Float64bits(max(share, 0)))
	d.quotaUntil.Store(int64(now + valid))
	return share <= 0, reset
}

// quotaShare returns the provider's last reported share left, 1 when it
// reported none or that report is out of date.
func (d *deployment) quotaShare(now time.Duration) float64 {
	if int64(now) >= d.quotaUntil.Load() {
		return 1
	}
	return math.Float64frombits(d.quota.Load())
}

// window keeps the latencies of a deployment's last successful calls and
// their p90.
type window struct {
	mu   sync.Mutex
	ring [64]time.Duration
	n    int
	// p90 is the current p90 plus 1 ns, 0 while unknown; last is the
	// monotonic instant of the newest sample.
	p90  atomic.Int64
	last atomic.Int64
}

// record adds a sample and recomputes the p90 over the window.
func (w *window) record(now, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ring[w.n%len(w.ring)] = d
	w.n++
	var buf [len(w.ring)]time.Duration
	s := buf[:copy(buf[:], w.ring[:min(w.n, len(w.ring))])]
	slices.Sort(s)
	// The nearest-rank p90: the smallest sample ≥ 90% of them.
	rank := (9*len(s) + 9) / 10
	w.p90.Store(int64(s[rank-1]) + 1)
	w.last.Store(int64(now))
}

// estimate returns the p90, and false when there is no sample newer than
// ttl.
func (w *window) estimate(now, ttl time.Duration) (time.Duration, bool) {
	p := w.p90.Load()
	if p == 0 || int64(now)-w.last.Load() > int64(ttl) {
		return 0, false
	}
	return time.Duration(p - 1), true
}
