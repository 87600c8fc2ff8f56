package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// prompts are weighted like the seed document's Locust tasks: short 3,
// medium 2, long 1.
var prompts = []struct {
	weight   int
	endpoint string
	text     string
}{
	{3, "chat", "Give me a short greeting."},
	{2, "summarize", "Summarize the benefits of caching LLM responses for a team of backend engineers in three sentences."},
	{1, "search", "Here is some context about our product: it is a service that routes customer questions to the right team, " +
		"records the answers, and learns from them. Using that context, explain how a circuit breaker protects it when " +
		"the language model provider degrades, and what the users see meanwhile."},
}

// result is what the workers saw; each keeps its own and they are merged.
type result struct {
	elapsed   time.Duration
	sent      int
	statuses  map[int]int
	transport int // requests that got no HTTP answer
	// streamFailed are streams answered 200 that then ended with an SSE
	// "error" event: counted apart from the 200s, with no latency.
	streamFailed int
	lastErr      error
	cached       int
	degraded     int
	latencies    []time.Duration
	ttfts        []time.Duration
}

func newResult() *result { return &result{statuses: map[int]int{}} }

func (r *result) merge(o *result) {
	r.sent += o.sent
	r.transport += o.transport
	r.streamFailed += o.streamFailed
	if o.lastErr != nil {
		r.lastErr = o.lastErr
	}
	r.cached += o.cached
	r.degraded += o.degraded
	for k, v := range o.statuses {
		r.statuses[k] += v
	}
	r.latencies = append(r.latencies, o.latencies...)
	r.ttfts = append(r.ttfts, o.ttfts...)
}

// load runs cfg.Concurrency virtual users until ctx ends or cfg.Requests
// were sent.
func load(ctx context.Context, client *http.Client, cfg config) *result {
	total := newResult()
	var budget atomic.Int64
	budget.Store(int64(cfg.Requests))
	var tokens <-chan time.Time
	if cfg.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
		defer t.Stop()
		tokens = t.C
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for u := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := newResult()
			rng := rand.New(rand.NewPCG(uint64(u), uint64(start.UnixNano())))
			for ctx.Err() == nil && budget.Add(-1) >= 0 {
				if tokens != nil {
					select {
					case <-tokens:
					case <-ctx.Done():
						continue
					}
				}
				one(ctx, client, cfg, rng, own)
			}
			mu.Lock()
			total.merge(own)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	return total
}

func pick(rng *rand.Rand) (endpoint, text string) {
	sum := 0
	for _, p := range prompts {
		sum += p.weight
	}
	n := rng.IntN(sum)
	for _, p := range prompts {
		if n < p.weight {
			return p.endpoint, p.text
		}
		n -= p.weight
	}
	return prompts[0].endpoint, prompts[0].text
}

// one sends one request and records what came back.
func one(ctx context.Context, client *http.Client, cfg config, rng *rand.Rand, r *result) {
	endpoint, text := pick(rng)
	body := map[string]any{"endpoint": endpoint, "tenant": fmt.Sprintf("tenant-%d", rng.IntN(4))}
	if rng.Float64() < cfg.RepeatShare {
		body["prompt"], body["temperature"] = text, 0
	} else {
		body["prompt"], body["temperature"] = fmt.Sprintf("%s (variation %d)", text, rng.Int64()), 0.8
	}
	stream := rng.Float64() < cfg.StreamShare
	body["stream"] = stream
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(cfg.URL, "/")+"/generate", bytes.NewReader(b))
	if err != nil {
		r.transport++
		r.lastErr = err
		return
	}
	req.Header.Set("Content-Type", "application/json")
	r.sent++
	began := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil { // the run ended mid-request: not the service's fault
			r.sent--
			return
		}
		r.transport++
		r.lastErr = err
		return
	}
	defer resp.Body.Close()
	r.statuses[resp.StatusCode]++
	var meta struct {
		Cached   bool `json:"cached"`
		Degraded bool `json:"degraded"`
	}
	if stream && resp.StatusCode == http.StatusOK {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		first, done := true, false
		for sc.Scan() {
			line := sc.Text()
			if first && strings.HasPrefix(line, "data: ") {
				first = false
				r.ttfts = append(r.ttfts, time.Since(began))
			}
			if line == "event: error" {
				r.statuses[resp.StatusCode]--
				r.streamFailed++
				return
			}
			if line == "event: done" {
				done = true
			} else if done && strings.HasPrefix(line, "data: ") {
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &meta)
				break
			}
		}
	} else if resp.StatusCode == http.StatusOK {
		_ = json.NewDecoder(resp.Body).Decode(&meta)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	r.latencies = append(r.latencies, time.Since(began))
	if meta.Cached {
		r.cached++
	}
	if meta.Degraded {
		r.degraded++
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[int(p*float64(len(ds)-1))].Round(10 * time.Microsecond)
}

func (r *result) print(w io.Writer) {
	slices.Sort(r.latencies)
	slices.Sort(r.ttfts)
	ok := r.statuses[http.StatusOK]
	fmt.Fprintf(w, "\n%d requests in %v: %.0f/s; %d answered 200 (%d cached, %d degraded), %d streams failed after they began, %d without an HTTP answer\n",
		r.sent, r.elapsed.Round(time.Millisecond), float64(r.sent)/r.elapsed.Seconds(), ok, r.cached, r.degraded, r.streamFailed, r.transport)
	codes := make([]int, 0, len(r.statuses))
	for c := range r.statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "  status %d: %d\n", c, r.statuses[c])
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tn\tp50\tp90\tp95\tp99\tmax\t")
	for _, row := range []struct {
		name string
		ds   []time.Duration
	}{{"latency", r.latencies}, {"time to first chunk", r.ttfts}} {
		if len(row.ds) == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%v\t%v\t%v\t%v\t%v\t\n", row.name, len(row.ds),
			percentile(row.ds, .5), percentile(row.ds, .9), percentile(row.ds, .95), percentile(row.ds, .99), percentile(row.ds, 1))
	}
	_ = tw.Flush()
	if r.lastErr != nil {
		fmt.Fprintf(w, "last transport error: %v\n", r.lastErr)
	}
}
