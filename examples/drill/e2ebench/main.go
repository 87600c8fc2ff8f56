// Command e2ebench measures what examples/service adds on top of its
// provider, end to end over loopback HTTP: against the same instant
// OpenAI-compatible mock (examples/drill/mock), at each concurrency, it
// compares
//
//   - direct: calls straight to the mock;
//   - proxy: a bare httputil.ReverseProxy in front of the mock, with the
//     transport the OpenAI adapter builds (openai.DefaultMaxIdleConnsPerHost
//     idle connections per host);
//   - adapter: POST /generate answered through the bare OpenAI adapter,
//     no decorator: what the SDK costs on its own;
//   - service: POST /generate without a temperature (never cached);
//   - cached: POST /generate of one question at temperature 0 (a cache hit
//     after the first).
//
// It prints a Markdown table of requests/s and p50/p99 latency, and the
// p50 each adds over direct calls. One command builds and runs everything
// and stops every process it started by its PID:
//
//	go run ./examples/drill/e2ebench
//	go run ./examples/drill/e2ebench -concurrency 1,64 -duration 3s -cpuprofile /tmp/svc.pprof
//
// Every process shares the machine with the load generator: compare the
// rows with each other, not with other machines.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/llmkit/llmkit/provider/openai"
)

func main() {
	role := flag.String("role", "bench", "bench; proxy or adapter are the reference servers the bench starts")
	listen := flag.String("listen", "", "proxy: the loopback address to listen on")
	upstream := flag.String("upstream", "", "proxy: the mock's base URL")
	levels := flag.String("concurrency", "1,8,32,64", "comma-separated concurrency levels")
	warmup := flag.Duration("warmup", time.Second, "unmeasured time before each run")
	duration := flag.Duration("duration", 5*time.Second, "measured time of each run")
	cpuprofile := flag.String("cpuprofile", "", "write the service's CPU profile, taken during the uncached run at the highest concurrency, to this file")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch *role {
	case "proxy":
		err = runProxy(ctx, *listen, *upstream)
	case "adapter":
		err = runAdapter(ctx, *listen, *upstream)
	case "bench":
		var conc []int
		if conc, err = parseLevels(*levels); err == nil {
			err = runBench(ctx, os.Stdout, benchConfig{Concurrency: conc, Warmup: *warmup, Duration: *duration, CPUProfile: *cpuprofile})
		}
	default:
		err = fmt.Errorf("-role %q: want bench, proxy or adapter", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2ebench:", err)
		os.Exit(1)
	}
}

func parseLevels(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("-concurrency %q: want numbers from 1 to 1024, comma-separated", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// newProxy is the bare reverse proxy: httputil.ReverseProxy to upstream,
// with the transport the OpenAI adapter gives the SDK.
func newProxy(upstream *url.URL) *httputil.ReverseProxy {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = openai.DefaultMaxIdleConnsPerHost
	tr.MaxIdleConns = max(tr.MaxIdleConns, openai.DefaultMaxIdleConnsPerHost)
	return &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(upstream) },
		Transport: tr,
	}
}

// runProxy serves the reverse proxy on listen until ctx is done.
func runProxy(ctx context.Context, listen, upstream string) error {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-upstream %q: want the mock's base URL", upstream)
	}
	if err := loopbackOnly(listen); err != nil {
		return err
	}
	return serve(ctx, listen, newProxy(u))
}

func loopbackOnly(addr string) error {
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		return fmt.Errorf("%q: listen on 127.0.0.1 only", addr)
	}
	return nil
}

// fetch GETs url and returns its body, or an error for a non-200 answer.
func fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errors.New(resp.Status)
	}
	return b, err
}
