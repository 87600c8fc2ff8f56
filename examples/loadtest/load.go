package main

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is the service under load and the HTTP client that reaches it.
type target struct {
	cfg     *config
	url     string
	header  http.Header
	client  *http.Client
	lastErr atomic.Value // string: the last transport error, for the summary
}

func newTarget(cfg *config, conns int) *target {
	h := http.Header{"Content-Type": {"application/json"}}
	if cfg.APIKey != "" {
		h.Set("X-API-Key", cfg.APIKey)
	}
	return &target{cfg: cfg, url: strings.TrimRight(cfg.URL, "/") + "/generate", header: h,
		client: &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
			DisableCompression: true,
		}}}
}

func (t *target) close() { t.client.CloseIdleConnections() }

// phase is one bounded stretch of load: a whole run, or one sweep step.
type phase struct {
	users    int     // closed loop: virtual users
	rate     float64 // open loop: arrivals per second (0: closed loop)
	poisson  bool    // open loop: exponential gaps instead of even ones
	duration time.Duration
	requests int // at most this many arrivals
}

// runPhase drives t for p and returns what it measured. New requests stop
// at p.duration, or when ctx ends; requests still in flight then get
// cfg.Drain to finish and are abandoned after it.
func runPhase(ctx context.Context, t *target, p phase, seed uint64) *collector {
	start := time.Now()
	col := newCollector(t.cfg.SLO, start, p.duration)
	issue, stopIssuing := context.WithTimeout(ctx, p.duration)
	defer stopIssuing()
	inflight, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	// Abandon in-flight requests cfg.Drain after issuing stops, or at once
	// when the caller's ctx ends.
	drained := make(chan struct{})
	go func() {
		select {
		case <-issue.Done():
		case <-drained:
			return
		}
		select {
		case <-time.After(t.cfg.Drain):
		case <-ctx.Done():
		case <-drained:
		}
		abandon()
	}()
	var budget atomic.Int64
	budget.Store(int64(p.requests))
	if p.rate > 0 {
		openLoop(issue, inflight, t, p, &budget, col, seed)
	} else {
		closedLoop(issue, inflight, t, p, &budget, col, seed)
	}
	close(drained)
	return col
}

// closedLoop runs p.users users, each sending a request, waiting for the
// answer, then pausing -wait before the next: the seed's Locust users.
func closedLoop(issue, inflight context.Context, t *target, p phase, budget *atomic.Int64, col *collector, seed uint64) {
	var wg sync.WaitGroup
	for u := range p.users {
		wg.Go(func() {
			w := newWorker(seed + uint64(u))
			var pause *time.Timer
			for issue.Err() == nil && budget.Add(-1) >= 0 {
				col.add(w.do(inflight, t, time.Now(), col.start))
				if d := t.cfg.Wait.draw(w.rng); d > 0 {
					if pause == nil {
						pause = time.NewTimer(d)
					} else {
						pause.Reset(d)
					}
					select {
					case <-pause.C:
					case <-issue.Done():
					}
				}
			}
			if pause != nil {
				pause.Stop()
			}
		})
	}
	wg.Wait()
}

// openLoop sends requests at p.rate whatever the answers: evenly spaced or
// as Poisson arrivals. At most cfg.Concurrency are in flight; an arrival
// that finds them all busy is counted as dropped, never delayed, so a slow
// service shows up as latency and drops instead of a slower load.
func openLoop(issue, inflight context.Context, t *target, p phase, budget *atomic.Int64, col *collector, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, ^seed))
	slots := make(chan struct{}, t.cfg.Concurrency)
	workers := sync.Pool{New: func() any { return newWorker(rng.Uint64()) }}
	var wg sync.WaitGroup
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	gap := float64(time.Second) / p.rate
	offset := 0.0 // of the next arrival from the start, in ns
	for i := 0; budget.Add(-1) >= 0; i++ {
		if p.poisson {
			offset += rng.ExpFloat64() * gap
		} else {
			offset = float64(i) * gap
		}
		at := col.start.Add(time.Duration(offset))
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-issue.Done():
			}
		}
		if issue.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		default:
			col.dropped(at.Sub(col.start))
			continue
		}
		w := workers.Get().(*worker) // taken here: the pool's New uses rng
		wg.Go(func() {
			col.add(w.do(inflight, t, at, col.start))
			workers.Put(w)
			<-slots
		})
	}
	wg.Wait()
}

// waitRange is the closed loop's pause between a user's requests, drawn
// uniformly from [Min, Max] like Locust's between(min, max).
type waitRange struct {
	Min time.Duration `json:"min_ns"`
	Max time.Duration `json:"max_ns"`
}

func (r waitRange) draw(rng *rand.Rand) time.Duration {
	if r.Max <= r.Min {
		return r.Min
	}
	return r.Min + time.Duration(rng.Int64N(int64(r.Max-r.Min)+1))
}

func (r waitRange) String() string {
	if r.Max <= r.Min {
		return r.Min.String()
	}
	return r.Min.String() + "," + r.Max.String()
}

// Set parses "1s,5s" or a single "2s" (flag.Value).
func (r *waitRange) Set(v string) error {
	lo, hi, two := strings.Cut(v, ",")
	a, err := time.ParseDuration(strings.TrimSpace(lo))
	if err != nil {
		return err
	}
	b := a
	if two {
		if b, err = time.ParseDuration(strings.TrimSpace(hi)); err != nil {
			return err
		}
	}
	*r = waitRange{a, b}
	return nil
}
