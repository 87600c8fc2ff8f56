// Command service is a small HTTP service that answers LLM requests through
// llmkit's recommended stack: the program docs/deploy.md scrapes, alerts on
// and runs three replicas of.
//
//	go run ./examples/service
//	curl -s localhost:8000/generate -d '{"prompt":"Why is the sky blue?","endpoint":"chat","temperature":0}'
//	curl -sN localhost:8000/generate -d '{"prompt":"Tell me a story","stream":true}'
//	curl -s localhost:8000/metrics | grep llm_requests_total
//
// Routes: POST /generate (JSON, or Server-Sent Events with "stream": true;
// it needs an API key when keys are configured), GET /metrics
// (Prometheus), GET /readyz (readiness: 200 while this replica can answer,
// fallbacks included; 503 once it shuts down), GET /healthz (liveness: the
// process is up), GET /statusz (JSON for people: the provider's breaker
// and quota, Redis, the keys). pprof is served on a separate loopback
// listener, never on the service's own mux. "service probe [/path]" GETs
// /readyz (or path) of the service running on this host and exits 1 unless
// it answers 200: a container healthcheck where there is no curl.
//
// Environment (a bad value stops the service at start, naming the variable):
//
//	LISTEN_ADDR        where the service listens (default :8000)
//	PPROF_ADDR         the pprof listener (default 127.0.0.1:0: a free port,
//	                   logged, so replicas on one host never collide; "off")
//	PPROF_TOKEN        a bearer token the pprof listener requires
//	REDIS_URL          redis://[user:password@]host:port/db: share the cache
//	                   across replicas (ristretto in front of Redis)
//	REDIS_ADDR         host:port, instead of REDIS_URL
//	REDIS_KEY_PREFIX   starts the service's Redis keys (default "llmkit:"; the
//	                   cache's are <prefix>cache:…, the key limits' <prefix>limit:…)
//	LLMKIT_API_KEYS    "<key> <tenant> [rpm] [tpm]" entries, comma-separated
//	LLMKIT_API_KEYS_FILE  the same entries, one per line (# comments)
//	FALLBACK_MESSAGE, FALLBACK_TIMEOUT_MESSAGE
//	                   the static answers to a failure and to a timeout
//	TIMEOUT_TOTAL, TIMEOUT_ATTEMPT, TIMEOUT_FIRST_CHUNK
//	                   durations (defaults 2m, 1m, none)
//	CACHE_NONDETERMINISTIC=1  also cache requests without a temperature
//	LATENCY_BUCKETS    llm_request_duration_seconds bounds: "0.1,0.25,0.5,1"
//	DRAIN_DELAY        how long /readyz fails before shutdown (default 0)
//	OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY, LLMKIT_MODEL
//	                   a real provider instead of the simulated model
//	LOG_LEVEL          debug, info (default), warn or error
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/profiling"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		// A container healthcheck without curl: "service probe /readyz".
		if err := probe(os.Getenv, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, nil); err != nil {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
}

// probe GETs a path (default /readyz) of the service listening on
// LISTEN_ADDR's port on loopback, and fails unless it answers 200.
func probe(getenv func(string) string, args []string) error {
	path := "/readyz"
	if len(args) > 0 {
		path = args[0]
	}
	if !strings.HasPrefix(path, "/") || len(args) > 1 {
		return errors.New("usage: service probe [/path]")
	}
	_, port, err := net.SplitHostPort(cmp.Or(getenv("LISTEN_ADDR"), ":8000"))
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort("127.0.0.1", port) + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return nil
}

// run serves until ctx is done, then shuts down gracefully: /readyz
// answers 503 for DRAIN_DELAY, then in-flight requests get up to 30 s to
// finish. listening, when set, receives the service's address once it
// accepts connections.
func run(ctx context.Context, getenv func(string) string, listening chan<- string) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	srv, err := newServer(serverConfig{config: cfg, Getenv: getenv, Logger: logger})
	if err != nil {
		return err
	}
	defer srv.Close()
	if cfg.Keys == nil {
		logger.Warn("no API keys configured (LLMKIT_API_KEYS, LLMKIT_API_KEYS_FILE): /generate is open to anyone who reaches it")
	}
	if srv.redis != nil {
		ping, cancel := context.WithTimeout(ctx, time.Second)
		if err := srv.redis.Ping(ping).Err(); err != nil {
			// Not fatal: the cache works from memory until Redis answers.
			logger.Warn("redis does not answer; the cache is per replica until it does",
				"addr", cfg.Redis.Addr, "err", llm.Redact(err.Error()))
		}
		cancel()
	}

	// pprof on its own loopback listener and its own mux: never reachable
	// through the service's port. Both listeners are opened before either
	// server starts, so that a failure leaves nothing running.
	var dln net.Listener
	var debugHandler http.Handler
	if cfg.PprofAddr != "" {
		var opts []profiling.HandlerOption
		if cfg.PprofToken != "" {
			opts = append(opts, profiling.Token(cfg.PprofToken))
		}
		if debugHandler, err = profiling.Handler(opts...); err != nil {
			return err
		}
		if dln, err = net.Listen("tcp", cfg.PprofAddr); err != nil {
			return fmt.Errorf("PPROF_ADDR: %w", err)
		}
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		if dln != nil {
			dln.Close()
		}
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	api := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- api.Serve(ln) }()
	var debug *http.Server
	if dln != nil {
		debug = &http.Server{Handler: debugHandler, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- debug.Serve(dln) }()
		logger.Info("pprof listening", "addr", dln.Addr().String())
	}
	logger.Info("service listening", "addr", ln.Addr().String(), "provider", srv.provider, "model", srv.model,
		"redis", cfg.Redis != nil, "api_keys", cfg.Keys != nil)
	if listening != nil {
		listening <- ln.Addr().String()
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down", "drain_delay", cfg.DrainDelay.String())
	srv.drain()
	if cfg.DrainDelay > 0 {
		// Load balancers see /readyz fail and stop sending; requests that
		// still arrive are served.
		t := time.NewTimer(cfg.DrainDelay)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return err
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = api.Shutdown(shutdown)
	if debug != nil {
		err = errors.Join(err, debug.Shutdown(shutdown))
	}
	logger.Info("stopped", "err", err)
	return err
}
