// Command service is a small HTTP service that answers LLM requests through
// llmkit's recommended stack: the program docs/deploy.md scrapes, alerts on
// and runs three replicas of.
//
//	go run ./examples/service
//	curl -s localhost:8000/generate -d '{"prompt":"Why is the sky blue?","endpoint":"chat","temperature":0}'
//	curl -sN localhost:8000/generate -d '{"prompt":"Tell me a story","stream":true}'
//	curl -s localhost:8000/metrics | grep llm_requests_total
//
// Routes: POST /generate (JSON, or Server-Sent Events with "stream": true),
// GET /metrics (Prometheus), GET /readyz (ready, degraded or unavailable
// from the breaker and the provider's quota), GET /healthz (the process is
// up). pprof is served on a separate loopback listener, never on the
// service's own mux.
//
// Environment:
//
//	LISTEN_ADDR       where the service listens (default :8000)
//	PPROF_ADDR        the pprof listener (default 127.0.0.1:6060; "off" disables)
//	PPROF_TOKEN       a bearer token the pprof listener requires
//	REDIS_ADDR        share the cache across replicas: ristretto in front of Redis
//	OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY, LLMKIT_MODEL
//	                  a real provider instead of the simulated model
//	LOG_LEVEL         debug, info (default), warn or error
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/llmkit/llmkit/profiling"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, nil); err != nil {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down gracefully: in-flight
// requests get up to 30 s to finish. listening, when set, receives the
// service's address once it accepts connections.
func run(ctx context.Context, getenv func(string) string, listening chan<- string) error {
	level := slog.LevelInfo
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("LOG_LEVEL: %w", err)
		}
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	srv, err := newServer(serverConfig{Getenv: getenv, RedisAddr: getenv("REDIS_ADDR"), Logger: logger})
	if err != nil {
		return err
	}
	defer srv.Close()

	// pprof on its own loopback listener and its own mux: never reachable
	// through the service's port. Both listeners are opened before either
	// server starts, so that a failure leaves nothing running.
	var dln net.Listener
	var debugHandler http.Handler
	if pprofAddr := getenv("PPROF_ADDR"); pprofAddr != "off" {
		if pprofAddr == "" {
			pprofAddr = "127.0.0.1:6060"
		}
		var opts []profiling.HandlerOption
		if tok := getenv("PPROF_TOKEN"); tok != "" {
			opts = append(opts, profiling.Token(tok))
		}
		if debugHandler, err = profiling.Handler(opts...); err != nil {
			return err
		}
		if dln, err = net.Listen("tcp", pprofAddr); err != nil {
			return fmt.Errorf("PPROF_ADDR: %w", err)
		}
	}
	addr := getenv("LISTEN_ADDR")
	if addr == "" {
		addr = ":8000"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if dln != nil {
			dln.Close()
		}
		return err
	}
	api := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- api.Serve(ln) }()
	var debug *http.Server
	if dln != nil {
		debug = &http.Server{Handler: debugHandler, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- debug.Serve(dln) }()
	}
	logger.Info("service listening", "addr", ln.Addr().String(), "provider", srv.provider, "model", srv.model)
	if listening != nil {
		listening <- ln.Addr().String()
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = api.Shutdown(shutdown)
	if debug != nil {
		err = errors.Join(err, debug.Shutdown(shutdown))
	}
	return err
}
