// Command loadtest drives an llmkit service's POST /generate (see
// examples/service) with a bounded mix of prompts and reports throughput,
// statuses, cache and fallback shares, and latency percentiles: the Go
// counterpart of a Locust script, with no dependencies.
//
//	go run ./examples/service &
//	go run ./examples/loadtest -duration 10s -concurrency 32
//
// The run stops by itself: after -duration, or after -requests requests,
// whichever comes first. Only loopback targets are allowed unless
// -allow-remote is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	cfg := config{}
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:8000", "the service's base URL")
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to run")
	flag.IntVar(&cfg.Requests, "requests", 100_000, "stop after this many requests")
	flag.IntVar(&cfg.Concurrency, "concurrency", 16, "concurrent virtual users")
	flag.Float64Var(&cfg.Rate, "rate", 0, "requests per second across all users (0: as fast as answers come)")
	flag.Float64Var(&cfg.StreamShare, "stream", 0.25, "share of requests that stream (0 to 1)")
	flag.Float64Var(&cfg.RepeatShare, "repeat", 0.7, "share of requests that repeat a common question at temperature 0 (cacheable)")
	flag.DurationVar(&cfg.Timeout, "timeout", 60*time.Second, "per-request timeout")
	flag.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a target that is not on this machine")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration)
	defer cancel()
	if err := run(ctx, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

type config struct {
	URL         string
	Duration    time.Duration
	Requests    int
	Concurrency int
	Rate        float64
	StreamShare float64
	RepeatShare float64
	Timeout     time.Duration
	AllowRemote bool
}

func (c config) validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("-url %q is not an http(s) URL", c.URL)
	case c.Requests <= 0 || c.Concurrency <= 0 || c.Timeout <= 0 || c.Rate < 0 || c.Rate > 1e6:
		return errors.New("-requests, -concurrency and -timeout must be positive, -rate between 0 and 1,000,000")
	case c.StreamShare < 0 || c.StreamShare > 1 || c.RepeatShare < 0 || c.RepeatShare > 1:
		return errors.New("-stream and -repeat are shares between 0 and 1")
	}
	if !c.AllowRemote && !loopback(u.Hostname()) {
		return fmt.Errorf("%s is not a loopback address; pass -allow-remote to load a remote service", u.Hostname())
	}
	return nil
}

// loopback reports whether host names this machine: localhost or a
// loopback IP. Names are not resolved.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func run(ctx context.Context, w io.Writer, cfg config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	client := &http.Client{
		Timeout:   cfg.Timeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency, MaxConnsPerHost: cfg.Concurrency},
	}
	defer client.CloseIdleConnections()
	fmt.Fprintf(w, "loadtest: %s, %d users, up to %v or %d requests\n", cfg.URL, cfg.Concurrency, cfg.Duration, cfg.Requests)
	res := load(ctx, client, cfg)
	res.print(w)
	if res.sent == 0 {
		return errors.New("no request was sent")
	}
	if res.transport == res.sent {
		return fmt.Errorf("every request failed to reach %s: %v", cfg.URL, res.lastErr)
	}
	return nil
}
