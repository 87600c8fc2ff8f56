// Command instant answers POST /generate at once with a fixed JSON body,
// as examples/service does on a cache hit but with nothing behind it: the
// target for measuring a load generator itself (examples/loadtest, wrk,
// hey) rather than the service. It listens on loopback only.
//
//	go run ./examples/loadtest/instant -addr 127.0.0.1:18080
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// answer is what every request gets: a cached, one-token reply.
const answer = `{"text":"ok","model":"instant","cached":true,"degraded":false,"usage":{"input":5,"output":1}}` + "\n"

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "loopback address to listen on")
	flag.Parse()
	host, _, err := net.SplitHostPort(*addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fmt.Fprintln(os.Stderr, "instant: -addr must be a loopback IP and port")
		os.Exit(1)
	}
	srv := &http.Server{Addr: *addr, Handler: handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, "instant: listening on", *addr)
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "instant:", err)
		os.Exit(1)
	}
}

func handler() http.Handler {
	body := []byte(answer)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // read it all, as a real service does
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}
