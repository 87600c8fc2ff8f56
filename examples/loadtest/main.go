// Command loadtest drives an llmkit service's POST /generate (see
// examples/service) with the seed document's 3:2:1 prompt mix and reports
// what LLM operators need: time to first chunk, inter-token latency, time
// per output token, end-to-end latency, tokens, outcomes, and goodput (the
// requests per second meeting every SLO), as percentiles from
// HdrHistograms. Every run writes report.json and report.html (plots made
// with gonum/plot) to -out.
//
//	go run ./examples/service &
//	go run ./examples/loadtest -duration 30s -concurrency 64                  # closed loop
//	go run ./examples/loadtest -profile closed -concurrency 50 -wait 1s,5s    # the seed's Locust users
//	go run ./examples/loadtest -profile poisson -rate 200 -slo ttft=500ms,e2e=5s
//	go run ./examples/loadtest -profile sweep -sweep-rates 50,100,200,400 -slo ttft=500ms
//
// Profiles: closed (-concurrency users, each waiting -wait between calls),
// constant and poisson (open loop at -rate, at most -concurrency in
// flight), sweep (one step per -sweep-rates or -sweep-users, stopping at
// the first that misses the SLOs).
//
// Every run stops by itself after -duration or -requests, whichever comes
// first; requests in flight then get -drain to finish. Only loopback
// targets are allowed unless -allow-remote is given.
//
// Exit status: 0 the run met the SLOs (or set none), 1 it could not run or
// no request reached the service, 2 a flag did not parse, 3 it missed the
// SLOs. A sweep passes when at least its first step met them: it exists to
// find where they break.
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
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Exit statuses.
const (
	exitMet    = 0
	exitFailed = 1
	exitMissed = 3
)

func main() {
	cfg := defaultConfig()
	fs := newFlagSet(&cfg)
	cpuProfile := fs.String("cpuprofile", "", "write the generator's own CPU profile to this file (for go tool pprof)")
	_ = fs.Parse(os.Args[1:])
	cfg.APIKey = os.Getenv("LOADTEST_API_KEY")
	stop, err := startCPUProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(exitFailed)
	}
	code, err := run(context.Background(), os.Stdout, &cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
	}
	os.Exit(code)
}

// startCPUProfile profiles the process into path until stop is called;
// with an empty path it does nothing. The profile is not part of a run's
// config: it measures the generator, not the service.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// config is one run's settings; it is written into report.json as is.
type config struct {
	URL          string        `json:"url"`
	Profile      string        `json:"profile"`
	Duration     time.Duration `json:"duration_ns"`
	Requests     int           `json:"requests"`
	Concurrency  int           `json:"concurrency"`
	Rate         float64       `json:"rate,omitempty"`
	Wait         waitRange     `json:"wait"`
	SweepRates   []float64     `json:"sweep_rates,omitempty"`
	SweepUsers   []int         `json:"sweep_users,omitempty"`
	StepDuration time.Duration `json:"step_duration_ns,omitempty"`
	Arrivals     string        `json:"arrivals,omitempty"` // a rate sweep's: constant or poisson
	StreamShare  float64       `json:"stream_share"`
	RepeatShare  float64       `json:"repeat_share"`
	Timeout      time.Duration `json:"timeout_ns"`
	Drain        time.Duration `json:"drain_ns"`
	SLO          slo           `json:"slo"`
	SLOTarget    float64       `json:"slo_target"`
	Out          string        `json:"out"`
	Seed         uint64        `json:"seed"`
	AllowRemote  bool          `json:"allow_remote"`
	// APIKey is sent as X-API-Key; read from $LOADTEST_API_KEY so that it
	// never shows in a process list, and never written to a report.
	APIKey string `json:"-"`
}

func defaultConfig() config {
	return config{URL: "http://127.0.0.1:8000", Profile: "closed", Duration: 10 * time.Second, Requests: 1_000_000,
		Concurrency: 16, StepDuration: 10 * time.Second, Arrivals: "poisson", StreamShare: 0.25, RepeatShare: 0.7,
		Timeout: 60 * time.Second, Drain: 5 * time.Second, SLOTarget: 0.99, Out: "loadtest-report"}
}

// newFlagSet binds c's fields to the command's flags.
func newFlagSet(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("loadtest", flag.ExitOnError)
	fs.StringVar(&c.URL, "url", c.URL, "the service's base URL")
	fs.StringVar(&c.Profile, "profile", c.Profile, "closed, constant, poisson or sweep")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long the whole run may last")
	fs.IntVar(&c.Requests, "requests", c.Requests, "stop after this many requests")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "closed loop: virtual users; open loop: most requests in flight")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "constant and poisson: requests per second")
	fs.Var(&c.Wait, "wait", "closed loop: each user's pause between calls, a duration or min,max (like Locust's between(1, 5): 1s,5s)")
	fs.Func("sweep-rates", "sweep: comma-separated open-loop rates, ascending", func(v string) (err error) {
		c.SweepRates, err = parseList(v, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
		return err
	})
	fs.Func("sweep-users", "sweep: comma-separated closed-loop user counts, ascending", func(v string) (err error) {
		c.SweepUsers, err = parseList(v, strconv.Atoi)
		return err
	})
	fs.DurationVar(&c.StepDuration, "step", c.StepDuration, "sweep: how long each step lasts")
	fs.StringVar(&c.Arrivals, "arrivals", c.Arrivals, "rate sweep: constant or poisson arrivals")
	fs.Float64Var(&c.StreamShare, "stream", c.StreamShare, "share of requests that stream (0 to 1)")
	fs.Float64Var(&c.RepeatShare, "repeat", c.RepeatShare, "share of requests that repeat a common question at temperature 0 (cacheable)")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "per-request timeout")
	fs.DurationVar(&c.Drain, "drain", c.Drain, "how long requests in flight at the end may take to finish")
	fs.Var(&c.SLO, "slo", "limits a good request meets, e.g. ttft=500ms,itl=50ms,tpot=20ms,e2e=5s")
	fs.Float64Var(&c.SLOTarget, "slo-target", c.SLOTarget, "share of requests that must meet every SLO for the run to pass")
	fs.StringVar(&c.Out, "out", c.Out, "directory for report.json and report.html")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "random seed (0: from the clock)")
	fs.BoolVar(&c.AllowRemote, "allow-remote", c.AllowRemote, "allow a target that is not on this machine")
	return fs
}

func parseList[T any](v string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for s := range strings.SplitSeq(v, ",") {
		x, err := parse(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, x)
	}
	return out, nil
}

func (c *config) validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("-url %q is not an http(s) URL", c.URL)
	case c.Duration <= 0 || c.Requests <= 0 || c.Concurrency <= 0 || c.Timeout <= 0 || c.Drain < 0:
		return errors.New("-duration, -requests, -concurrency and -timeout must be positive, -drain not negative")
	case c.Concurrency > 100_000:
		return errors.New("-concurrency is at most 100,000")
	case c.StreamShare < 0 || c.StreamShare > 1 || c.RepeatShare < 0 || c.RepeatShare > 1:
		return errors.New("-stream and -repeat are shares between 0 and 1")
	case c.Wait.Min < 0 || c.Wait.Max < 0 || c.Wait.Max > 0 && c.Wait.Max < c.Wait.Min:
		return errors.New("-wait is a duration or min,max with 0 <= min <= max")
	case c.SLOTarget <= 0 || c.SLOTarget > 1:
		return errors.New("-slo-target is a share in (0, 1]")
	case c.Out == "":
		return errors.New("-out is required: every run writes report.json and report.html")
	}
	okRate := func(r float64) bool { return r > 0 && r <= 1e6 }
	switch c.Profile {
	case "closed":
		if c.Rate != 0 {
			return errors.New("-rate is for -profile constant or poisson; a closed loop paces itself with -wait")
		}
	case "constant", "poisson":
		if !okRate(c.Rate) {
			return errors.New("-rate must be between 0 and 1,000,000 requests per second")
		}
	case "sweep":
		switch {
		case (len(c.SweepRates) > 0) == (len(c.SweepUsers) > 0):
			return errors.New("a sweep needs -sweep-rates or -sweep-users, not both")
		case !c.SLO.set():
			return errors.New("a sweep stops when an SLO breaks: set -slo")
		case c.StepDuration <= 0:
			return errors.New("-step must be positive")
		case c.Arrivals != "constant" && c.Arrivals != "poisson":
			return errors.New("-arrivals is constant or poisson")
		case !slices.IsSorted(c.SweepRates) || !slices.IsSorted(c.SweepUsers):
			return errors.New("sweep steps must be in ascending order")
		}
		for _, r := range c.SweepRates {
			if !okRate(r) {
				return errors.New("-sweep-rates must lie between 0 and 1,000,000")
			}
		}
		for _, u := range c.SweepUsers {
			if u <= 0 || u > 100_000 {
				return errors.New("-sweep-users must lie between 1 and 100,000")
			}
		}
	default:
		return fmt.Errorf("-profile %q: want closed, constant, poisson or sweep", c.Profile)
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

// run validates cfg, drives the load, prints a summary to w, writes
// report.json and report.html to cfg.Out, and returns the exit status.
func run(ctx context.Context, w io.Writer, cfg *config) (int, error) {
	return runWith(ctx, w, cfg, nil)
}

// runWith is run over rt instead of a new http.Transport, when rt is set.
func runWith(ctx context.Context, w io.Writer, cfg *config, rt http.RoundTripper) (int, error) {
	if err := cfg.validate(); err != nil {
		return exitFailed, err
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return exitFailed, err
	}
	conns := cfg.Concurrency
	for _, u := range cfg.SweepUsers {
		conns = max(conns, u)
	}
	t := newTarget(cfg, conns)
	if rt != nil {
		t.client.Transport = rt
	}
	defer t.close()
	rep := &report{Tool: "llmkit examples/loadtest", Started: time.Now().UTC(), Config: cfg, Classes: classes}
	fmt.Fprintf(w, "loadtest: %s, profile %s, up to %v or %d requests\n", cfg.URL, cfg.Profile, cfg.Duration, cfg.Requests)
	switch cfg.Profile {
	case "sweep":
		rep.Sweep = sweep(ctx, w, t, cfg, cfg.Seed)
		if n := len(rep.Sweep.Steps); n > 0 {
			rep.Result = rep.Sweep.Steps[n-1]
		}
		fmt.Fprintln(w, "sweep:", rep.Sweep.Reason)
	default:
		p := phase{users: cfg.Concurrency, duration: cfg.Duration, requests: cfg.Requests}
		var offered = float64(cfg.Concurrency)
		if cfg.Profile != "closed" {
			p.rate, p.poisson, offered = cfg.Rate, cfg.Profile == "poisson", cfg.Rate
		}
		rep.Result = runPhase(ctx, t, p, cfg.Seed).stats(offered, cfg.SLOTarget)
	}
	printSummary(w, &rep.Result)
	if e, _ := t.lastErr.Load().(string); e != "" {
		rep.LastErr = e
		fmt.Fprintln(w, "last transport error:", e)
	}
	var err error
	rep.Met = rep.Result.SLO.Met
	if rep.Sweep != nil { // a sweep passes when some step met the SLOs
		rep.Met = len(rep.Sweep.Steps) > 0 && (!rep.Sweep.Crossed || rep.Sweep.LastMet > 0)
	}
	switch sent, res := rep.Result.Sent, &rep.Result; {
	case sent == 0:
		rep.ExitCode, err = exitFailed, errors.New("no request was sent")
	case res.Outcomes[outTransport]+res.Outcomes[outTimeout]+res.Outcomes[outAbandoned] == sent:
		rep.ExitCode, err = exitFailed, fmt.Errorf("no request got an answer from %s: %s", cfg.URL, rep.LastErr)
	case !rep.Met:
		rep.ExitCode, err = exitMissed, errors.New("the run missed its SLOs")
	}
	if werr := writeReports(cfg.Out, rep); werr != nil {
		return exitFailed, errors.Join(err, werr)
	}
	fmt.Fprintf(w, "reports: %s, %s\n", filepath.Join(cfg.Out, "report.json"), filepath.Join(cfg.Out, "report.html"))
	return rep.ExitCode, err
}
