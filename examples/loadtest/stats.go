package main

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The metrics measured per request, indexes into collector.hist.
const (
	mTTFT = iota
	mITL
	mTPOT
	mE2E
	numMetrics
)

var metricNames = [numMetrics]string{"ttft", "itl", "tpot", "e2e"}

// Histograms record microseconds, from 1 µs to an hour, to three
// significant figures: HdrHistogram's own trade of size for accuracy.
const (
	histMax     = int64(time.Hour / time.Microsecond)
	histFigures = 3
)

func newHist(figures int) *hdrhistogram.Histogram { return hdrhistogram.New(1, histMax, figures) }

func record(h *hdrhistogram.Histogram, d time.Duration) {
	_ = h.RecordValue(min(max(d.Microseconds(), 1), histMax)) // clamped: never out of range
}

// window is one slice of the run's timeline: latency over time.
type window struct {
	sent, good, answered int
	e2e, ttft            *hdrhistogram.Histogram
}

// collector merges every request's sample. One mutex: a sample is
// recorded in well under a microsecond, far below a request's cost.
type collector struct {
	mu    sync.Mutex
	slo   slo
	start time.Time
	width time.Duration // of each window
	// hist[0] is every request; hist[1+i] is classes[i].
	hist                 [][numMetrics]*hdrhistogram.Histogram
	windows              []window
	outcomes             map[string]int
	statuses             map[int]int
	sent, answered, good int
	tokensIn, tokensOut  int64
	last                 time.Time // the last request's end
}

// newCollector keeps about 120 windows whatever the run's length.
func newCollector(s slo, start time.Time, length time.Duration) *collector {
	c := &collector{slo: s, start: start, width: max(time.Second, (length / 120).Round(time.Second)),
		outcomes: map[string]int{}, statuses: map[int]int{}, last: start}
	c.hist = make([][numMetrics]*hdrhistogram.Histogram, 1+len(classes))
	for i := range c.hist {
		for m := range numMetrics {
			c.hist[i][m] = newHist(histFigures)
		}
	}
	return c
}

func (c *collector) window(at time.Duration) *window {
	i := max(0, int(at/c.width))
	for len(c.windows) <= i {
		c.windows = append(c.windows, window{e2e: newHist(2), ttft: newHist(2)})
	}
	return &c.windows[i]
}

// add records one request.
func (c *collector) add(s *sample) {
	good := answered(s.outcome) && c.slo.meets(s)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.After(c.last) {
		c.last = now
	}
	c.sent++
	c.outcomes[s.outcome]++
	if s.status != 0 {
		c.statuses[s.status]++
	}
	w := c.window(s.at)
	w.sent++
	if good {
		c.good++
		w.good++
	}
	if !answered(s.outcome) {
		return
	}
	c.answered++
	w.answered++
	c.tokensIn += int64(s.tokensIn)
	c.tokensOut += int64(s.tokensOut)
	record(w.e2e, s.e2e)
	for _, h := range [2]*[numMetrics]*hdrhistogram.Histogram{&c.hist[0], &c.hist[1+s.class]} {
		record(h[mE2E], s.e2e)
		if !s.streamed || s.chunks == 0 {
			continue
		}
		record(h[mTTFT], s.ttft)
		for _, g := range s.gaps {
			record(h[mITL], g)
		}
		if s.tokensOut > 1 {
			record(h[mTPOT], s.tpot())
		}
	}
	if s.streamed && s.chunks > 0 {
		record(w.ttft, s.ttft)
	}
}

// dropped records an arrival the open loop could not send.
func (c *collector) dropped(at time.Duration) {
	c.add(&sample{at: at, outcome: outDropped})
}
