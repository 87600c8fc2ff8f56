package limit

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmkit/llmkit/internal/redistest"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// The replicas of the multi-process tests are this test binary, started
// again with helperEnv naming what it runs (see TestMain); they take
// their settings from the environment and print what they saw.
const helperEnv = "LLMKIT_LIMIT_HELPER"

func runHelper(name string) int {
	var err error
	switch name {
	case "load":
		err = loadReplica()
	case "cool-publish":
		err = coolPublisher()
	case "cool-follow":
		err = coolFollower()
	case "killed":
		err = killedReplica()
	default:
		err = fmt.Errorf("unknown helper %q", name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func envInt(name string) int {
	n, _ := strconv.Atoi(os.Getenv(name))
	return n
}

func envMs(name string) time.Duration { return time.Duration(envInt(name)) * time.Millisecond }

// replica is one started helper process.
type replica struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	stderr bytes.Buffer
	// ready and done are set for a piped replica (startPiped) only.
	ready, done chan struct{}
}

// startReplicas starts n helpers with env added. Each is killed by its PID
// if it still runs when the test ends.
func startReplicas(t *testing.T, helper string, n int, env ...string) []*replica {
	t.Helper()
	rs := make([]*replica, n)
	for i := range rs {
		r := &replica{cmd: exec.Command(os.Args[0], "-test.run=^$")}
		r.cmd.Env = append(append(os.Environ(), helperEnv+"="+helper, fmt.Sprintf("LIMIT_REPLICA=%d", i)), env...)
		r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.stderr
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if r.cmd.ProcessState == nil {
				r.cmd.Process.Kill()
				r.cmd.Wait()
			}
		})
		rs[i] = r
	}
	return rs
}

// wait waits for every replica, at most d (then kills them), and fails the
// test if one failed.
func wait(t *testing.T, rs []*replica, d time.Duration) {
	t.Helper()
	timer := time.AfterFunc(d, func() {
		for _, r := range rs {
			r.cmd.Process.Kill()
		}
	})
	defer timer.Stop()
	for i, r := range rs {
		if r.done != nil {
			<-r.done // the output is read before Wait closes the pipe
		}
		if err := r.cmd.Wait(); err != nil {
			t.Fatalf("replica %d: %v\n%s", i, err, r.stderr.String())
		}
	}
}

// startPiped starts n helpers with env added, each killed by its PID if it
// still runs when the test ends, whose output the test reads as it comes:
// ready is closed when one prints "ready", done when its output ends; the
// other lines are in out once done is closed.
func startPiped(t *testing.T, helper string, n int, env ...string) []*replica {
	t.Helper()
	rs := make([]*replica, n)
	for i := range rs {
		r := &replica{cmd: exec.Command(os.Args[0], "-test.run=^$"), ready: make(chan struct{}), done: make(chan struct{})}
		r.cmd.Env = append(append(os.Environ(), helperEnv+"="+helper, fmt.Sprintf("LIMIT_REPLICA=%d", i)), env...)
		r.cmd.Stderr = &r.stderr
		stdout, err := r.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if r.cmd.ProcessState == nil {
				r.cmd.Process.Kill()
				<-r.done
				r.cmd.Wait()
			}
		})
		go func() {
			defer close(r.done)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if sc.Text() == "ready" {
					close(r.ready)
					continue
				}
				r.out.Write(sc.Bytes())
				r.out.WriteByte('\n')
			}
		}()
		rs[i] = r
	}
	return rs
}

// counts returns the counts a killed replica printed for mode.
func (r *replica) counts(t *testing.T, mode Mode) map[string]int {
	t.Helper()
	for _, f := range fields(&r.out, "M") {
		if f[0] != mode.String() {
			continue
		}
		c := map[string]int{}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			c[k] = atoi(v)
		}
		return c
	}
	t.Fatalf("no counts for %v in %q", mode, r.out.String())
	return nil
}

// fields returns the lines of out starting with tag, split in fields.
func fields(out *bytes.Buffer, tag string) [][]string {
	var rows [][]string
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && f[0] == tag {
			rows = append(rows, f[1:])
		}
	}
	return rows
}

// auditStore records each reservation the store admitted (at Redis's
// time) and what it was settled to, so that the test can check every
// window as Redis saw it.
type auditStore struct {
	store
	mu   sync.Mutex
	at   map[int64]int64
	reqs map[int64]int
	toks map[int64]int
}

func (a *auditStore) reserve(ctx context.Context, key string, id int64, reqs, toks, rpm, tpm int, partial bool) (decision, error) {
	d, err := a.store.reserve(ctx, key, id, reqs, toks, rpm, tpm, partial)
	if err == nil && d.admitted {
		a.mu.Lock()
		a.at[id], a.reqs[id], a.toks[id] = d.at, d.granted, toks
		a.mu.Unlock()
	}
	return d, err
}

func (a *auditStore) settle(ctx context.Context, key string, id int64, reqs, toks int) error {
	err := a.store.settle(ctx, key, id, reqs, toks)
	if err == nil {
		a.mu.Lock()
		a.reqs[id], a.toks[id] = reqs, toks
		a.mu.Unlock()
	}
	return err
}

// loadReplica offers calls well above the limit from a few workers, from
// LIMIT_START_NS for LIMIT_RUN_MS, and prints each admission as Redis
// counted it ("A µs requests tokens"), each call the provider saw by the
// local clock ("U µs tokens"), the decisions Redis failed to make
// ("degraded n") and the added latency ("lat p50 p99 calls rejected", in
// ns).
func loadReplica() error {
	rdb := redistest.Client(os.Getenv("LIMIT_ADDR"))
	defer rdb.Close()
	rec := &llmtest.Recorder{}
	l, err := New(Config{Redis: rdb, Prefix: os.Getenv("LIMIT_PREFIX"), RPM: envInt("LIMIT_RPM"), TPM: envInt("LIMIT_TPM"),
		Window: envMs("LIMIT_WINDOW_MS"), Lease: envInt("LIMIT_LEASE"), Timeout: time.Second, Observer: rec})
	if err != nil {
		return err
	}
	audit := &auditStore{store: l.store, at: map[int64]int64{}, reqs: map[int64]int{}, toks: map[int64]int{}}
	l.store = audit
	var mu sync.Mutex
	var uses [][2]int64
	var lat []time.Duration
	rejected := 0
	up := llm.ClientFunc(func(_ context.Context, req *llm.Request) (*llm.Response, error) {
		u := llm.Usage{InputTokens: req.EstimateInputTokens(), OutputTokens: 10 + rand.IntN(req.MaxTokens-10)}
		mu.Lock()
		uses = append(uses, [2]int64{time.Now().UnixMicro(), int64(u.Total())})
		mu.Unlock()
		return &llm.Response{Text: "ok", Usage: u}, nil
	})
	c := l.Middleware()(up)
	start := time.Unix(0, int64(envInt("LIMIT_START_NS")))
	end := start.Add(envMs("LIMIT_RUN_MS"))
	time.Sleep(time.Until(start)) // the replicas start together
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for now := range tick.C {
				if now.After(end) {
					return
				}
				req := &llm.Request{Messages: []llm.Message{llm.User("how many tokens is this")}, MaxTokens: 200}
				t0 := time.Now()
				_, err := c.Generate(context.Background(), req)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					rejected++
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
				if err != nil && llm.KindOf(err) != llm.KindRateLimited {
					fmt.Fprintln(os.Stderr, "call failed:", err)
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(context.Background()); err != nil {
		return err
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for id, at := range audit.at {
		fmt.Fprintln(w, "A", at, audit.reqs[id], audit.toks[id])
	}
	for _, u := range uses {
		fmt.Fprintln(w, "U", u[0], u[1])
	}
	slices.Sort(lat)
	fmt.Fprintln(w, "degraded", countEvents(rec, llm.EventLimit, FailOpen.String()))
	for _, ev := range rec.Events() {
		if ev.Reason == FailOpen.String() {
			fmt.Fprintln(os.Stderr, "Redis failed to decide:", ev.Err)
		}
	}
	if len(lat) > 0 {
		fmt.Fprintln(w, "lat", int64(lat[len(lat)/2]), int64(lat[len(lat)*99/100]), len(lat), rejected)
	}
	return nil
}

// coolPublisher calls a deployment that answers 429 with a Retry-After of
// LIMIT_RETRY_MS, through Hints, and prints "until ns": the earliest the
// cooldown it published can end.
func coolPublisher() error {
	rdb := redistest.Client(os.Getenv("LIMIT_ADDR"))
	defer rdb.Close()
	h, err := NewHints(rdb, HintsConfig{Prefix: os.Getenv("LIMIT_PREFIX"), Timeout: time.Second})
	if err != nil {
		return err
	}
	ra := envMs("LIMIT_RETRY_MS")
	up := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		return nil, &llm.Error{Kind: llm.KindRateLimited, Status: 429, Provider: "openai", RetryAfter: ra}
	})
	before := time.Now()
	if _, err := h.Middleware("dep")(up).Generate(context.Background(), llm.Prompt("x")); llm.KindOf(err) != llm.KindRateLimited {
		return fmt.Errorf("the publisher saw %v, want its deployment's 429", err)
	}
	fmt.Println("until", before.Add(ra).UnixNano())
	return nil
}

// coolFollower calls the same deployment, which answers, through Hints,
// every 20 ms until it got through twice (at most 10 s), and prints the
// first outcome's kind ("first kind"), the calls that failed fast
// ("failfast n") and when the deployment first saw a call ("reached ns").
func coolFollower() error {
	rdb := redistest.Client(os.Getenv("LIMIT_ADDR"))
	defer rdb.Close()
	h, err := NewHints(rdb, HintsConfig{Prefix: os.Getenv("LIMIT_PREFIX"), Timeout: time.Second})
	if err != nil {
		return err
	}
	var reached []time.Time
	up := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		reached = append(reached, time.Now())
		return &llm.Response{Text: "ok"}, nil
	})
	c := h.Middleware("dep")(up)
	failfast := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; len(reached) < 2 && time.Now().Before(deadline); i++ {
		_, err := c.Generate(context.Background(), llm.Prompt("x"))
		if i == 0 {
			fmt.Println("first", llm.KindOf(err))
		}
		if llm.KindOf(err) == llm.KindCircuitOpen {
			failfast++
		}
		<-tick.C
	}
	fmt.Println("failfast", failfast)
	if len(reached) > 0 {
		fmt.Println("reached", reached[0].UnixNano())
	}
	return nil
}
