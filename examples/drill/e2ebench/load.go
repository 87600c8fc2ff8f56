package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// target is one way to get an answer: a URL and the body to post to it.
type target struct {
	Name string
	URL  string
	Body []byte
}

// result is what a run measured.
type result struct {
	Requests int           // answered with 200 during the measured period
	Errors   int           // any other outcome
	Elapsed  time.Duration // the measured period
	P50, P99 time.Duration
}

func (r result) RPS() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// measure runs concurrency closed-loop workers against tg: each posts,
// reads the whole answer and posts again. The first warmup is not
// measured (connections open, caches fill); then for duration every
// answer's latency is kept. The client keeps one idle connection per
// worker, so connections are reused and never pile up in TIME_WAIT.
func measure(ctx context.Context, tg target, concurrency int, warmup, duration time.Duration) (result, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = concurrency
	tr.MaxIdleConns = max(tr.MaxIdleConns, concurrency)
	tr.DisableCompression = true
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	start := time.Now()
	measureFrom, measureTo := start.Add(warmup), start.Add(warmup+duration)
	ctx, cancel := context.WithDeadline(ctx, measureTo)
	defer cancel()

	type worker struct {
		lat    []time.Duration
		errors int
		first  error
	}
	workers := make([]worker, concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				err := post(ctx, client, tg)
				t1 := time.Now()
				if t0.Before(measureFrom) || t1.After(measureTo) {
					continue // warmup, or cut by the end of the run
				}
				if err != nil {
					w.errors++
					if w.first == nil {
						w.first = err
					}
					continue
				}
				w.lat = append(w.lat, t1.Sub(t0))
			}
		})
	}
	wg.Wait()

	var all []time.Duration
	res := result{Elapsed: duration}
	var first error
	for _, w := range workers {
		all = append(all, w.lat...)
		res.Errors += w.errors
		if first == nil {
			first = w.first
		}
	}
	if len(all) == 0 {
		return res, fmt.Errorf("%s: no answer in %v (first error: %v)", tg.Name, duration, first)
	}
	slices.Sort(all)
	res.Requests = len(all)
	res.P50, res.P99 = quantile(all, 0.50), quantile(all, 0.99)
	if res.Errors > 0 {
		return res, fmt.Errorf("%s: %d errors (first: %v)", tg.Name, res.Errors, first)
	}
	return res, nil
}

func post(ctx context.Context, client *http.Client, tg target) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.URL, bytes.NewReader(tg.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return err
}

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
