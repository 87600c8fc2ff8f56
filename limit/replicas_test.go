package limit

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	cacheredis "github.com/llmkit/llmkit/cache/redis"
)

// admission is one admitted reservation, or one call, at a time in µs.
type admission struct {
	at         int64
	reqs, toks int
}

// busiestWindow returns the most requests and the most tokens any window
// (t - w, t] holds.
func busiestWindow(adms []admission, w int64) (reqs, toks int) {
	slices.SortFunc(adms, func(a, b admission) int { return int(a.at - b.at) })
	r, k, lo := 0, 0, 0
	for _, a := range adms {
		r, k = r+a.reqs, k+a.toks
		for adms[lo].at <= a.at-w {
			r, k = r-adms[lo].reqs, k-adms[lo].toks
			lo++
		}
		reqs, toks = max(reqs, r), max(toks, k)
	}
	return reqs, toks
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// runLoad runs three load replicas on the shared Redis and returns what
// Redis admitted, what the provider saw by the local clock, and each
// replica's latency line.
func runLoad(t *testing.T, rpm, tpm, lease int, window, run time.Duration) (admitted, used []admission, lat [][]string) {
	rdb, prefix := liveRedis(t)
	_ = rdb
	start := time.Now().Add(1500 * time.Millisecond) // time for the replicas to start
	rs := startReplicas(t, "load", 3, "LIMIT_ADDR="+cacheredis.Addr(), "LIMIT_PREFIX="+prefix,
		fmt.Sprint("LIMIT_RPM=", rpm), fmt.Sprint("LIMIT_TPM=", tpm), fmt.Sprint("LIMIT_LEASE=", lease),
		fmt.Sprint("LIMIT_WINDOW_MS=", window.Milliseconds()), fmt.Sprint("LIMIT_RUN_MS=", run.Milliseconds()),
		fmt.Sprint("LIMIT_START_NS=", start.UnixNano()))
	wait(t, rs, time.Minute)
	for i, r := range rs {
		a := fields(&r.out, "A")
		if len(a) == 0 {
			t.Fatalf("replica %d had no call admitted: the limit is not shared", i)
		}
		for _, f := range a {
			admitted = append(admitted, admission{at: int64(atoi(f[0])), reqs: atoi(f[1]), toks: atoi(f[2])})
		}
		for _, f := range fields(&r.out, "U") {
			used = append(used, admission{at: int64(atoi(f[0])), reqs: 1, toks: atoi(f[1])})
		}
		if d := fields(&r.out, "degraded"); len(d) != 1 || d[0][0] != "0" {
			t.Fatalf("replica %d: degraded decisions %v, want none: Redis decides every call\n%s", i, d, r.stderr.String())
		}
		l := fields(&r.out, "lat")
		if len(l) != 1 || atoi(l[0][3]) == 0 {
			t.Fatalf("replica %d: latency line %v: want calls refused, the load is above the limit", i, l)
		}
		lat = append(lat, l[0])
	}
	return admitted, used, lat
}

// TestReplicasShareTheLimit runs three OS processes against one Redis,
// each offering about nine times the limit, and checks every window as
// Redis counted it: at most the limit (× 1.02) of requests and tokens.
func TestReplicasShareTheLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rpm, tpm int
	}{
		{name: "rpm", rpm: 100},
		{name: "tpm", tpm: 8000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			window := time.Second
			admitted, used, lat := runLoad(t, tc.rpm, tc.tpm, 0, window, 3*window)
			reqs, toks := busiestWindow(admitted, window.Microseconds())
			t.Logf("busiest window by Redis's clock: %d requests (limit %d), %d tokens (limit %d); latency lines %v", reqs, tc.rpm, toks, tc.tpm, lat)
			if tc.rpm > 0 && (float64(reqs) > float64(tc.rpm)*1.02 || reqs < tc.rpm*9/10) {
				t.Fatalf("busiest window admitted %d requests, want at most %d × 1.02 and the limit reached", reqs, tc.rpm)
			}
			if tc.tpm > 0 && (float64(toks) > float64(tc.tpm)*1.02 || toks < tc.tpm*8/10) {
				t.Fatalf("busiest window holds %d tokens, want at most %d × 1.02 and near the limit", toks, tc.tpm)
			}
			// The same by the local clock, when the provider saw the calls
			// (reported: it includes the scheduling delay after Redis).
			lr, lt := busiestWindow(used, window.Microseconds())
			t.Logf("busiest window by the local clock: %d requests, %d tokens", lr, lt)
		})
	}
}

// TestReplicasLeaseBound runs three processes leasing permits in blocks of
// 10 and checks the documented bound on what the provider sees in any
// window: the limit plus replicas × block.
func TestReplicasLeaseBound(t *testing.T) {
	const rpm, block, replicas = 100, 10, 3
	window := time.Second
	admitted, used, _ := runLoad(t, rpm, 0, block, window, 3*window)
	ar, _ := busiestWindow(admitted, window.Microseconds())
	ur, _ := busiestWindow(used, window.Microseconds())
	t.Logf("leases of %d: busiest window %d requests by Redis's count, %d calls by the provider's clock (limit %d)", block, ar, ur, rpm)
	if ar > rpm {
		t.Fatalf("Redis counted %d requests in a window, over the limit %d", ar, rpm)
	}
	if ur > rpm+replicas*block {
		t.Fatalf("the provider saw %d calls in a window, over the bound %d + %d × %d", ur, rpm, replicas, block)
	}
}

// TestReplicasShareCooldown: one process sees a 429 with a Retry-After;
// two others, started after, skip the deployment until it has passed.
func TestReplicasShareCooldown(t *testing.T) {
	_, prefix := liveRedis(t)
	env := []string{"LIMIT_ADDR=" + cacheredis.Addr(), "LIMIT_PREFIX=" + prefix, "LIMIT_RETRY_MS=2500"}
	pub := startReplicas(t, "cool-publish", 1, env...)
	wait(t, pub, time.Minute)
	u := fields(&pub[0].out, "until")
	if len(u) != 1 {
		t.Fatalf("publisher printed %q", pub[0].out.String())
	}
	until := int64(atoi(u[0][0]))
	fol := startReplicas(t, "cool-follow", 2, env...)
	wait(t, fol, time.Minute)
	for i, r := range fol {
		first, ff, reached := fields(&r.out, "first"), fields(&r.out, "failfast"), fields(&r.out, "reached")
		if len(first) != 1 || first[0][0] != "circuit_open" {
			t.Fatalf("follower %d: first call %v, want circuit_open (the shared cooldown)", i, first)
		}
		if len(ff) != 1 || atoi(ff[0][0]) == 0 {
			t.Fatalf("follower %d: no call failed fast", i)
		}
		if len(reached) != 1 {
			t.Fatalf("follower %d never reached the deployment after the cooldown", i)
		}
		// Redis stores whole milliseconds: allow one.
		if at := int64(atoi(reached[0][0])); at < until-int64(2*time.Millisecond) {
			t.Fatalf("follower %d reached the deployment %v before the Retry-After ended", i, time.Duration(until-at))
		}
	}
}
