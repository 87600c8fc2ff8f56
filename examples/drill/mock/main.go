// Command mock is an OpenAI-compatible provider for drills and benchmarks:
// it answers chat completions (JSON or streamed) at once with a fixed text,
// and its faults are switched over HTTP while it runs.
//
//	go run ./examples/drill/mock -addr 127.0.0.1:9900 &
//	OPENAI_BASE_URL=http://127.0.0.1:9900/v1 OPENAI_API_KEY=sk-dummy go run ./examples/service
//	curl -s -XPOST '127.0.0.1:9900/fault?mode=unavailable'                # 503 to every call
//	curl -s -XPOST '127.0.0.1:9900/fault?mode=ratelimited&retry_after=30s' # 429 + Retry-After
//	curl -s -XPOST '127.0.0.1:9900/fault?mode=slow&delay=3s'               # answer after 3 s
//	curl -s -XPOST '127.0.0.1:9900/fault?mode=ok'                          # healthy again
//	curl -s 127.0.0.1:9900/stats
//
// It listens on loopback only and prints "mock listening on http://ADDR"
// once it accepts connections (with -addr 127.0.0.1:0 the port is picked
// by the system). SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, func(a string) { fmt.Printf("mock listening on http://%s\n", a) }); err != nil {
		fmt.Fprintln(os.Stderr, "mock:", err)
		os.Exit(1)
	}
}

// run serves the mock on addr until ctx is done; listening receives the
// address once connections are accepted.
func run(ctx context.Context, addr string, listening func(string)) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-addr %q: the mock listens on loopback only", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newMock(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	listening(ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
