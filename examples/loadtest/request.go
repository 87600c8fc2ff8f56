package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/buger/jsonparser"
	"github.com/llmkit/llmkit/llm"
)

// promptClass is one kind of request in the mix: weighted like the seed
// document's Locust tasks, short 3, medium 2, long 1.
type promptClass struct {
	Name     string `json:"name"`
	Weight   int    `json:"weight"`
	Endpoint string `json:"endpoint"`
	Text     string `json:"-"` // prompts stay out of reports
	quoted   []byte // Text as a JSON string without the closing quote
}

var classes = func() []promptClass {
	cs := []promptClass{
		{Name: "short", Weight: 3, Endpoint: "chat", Text: "Give me a short greeting."},
		{Name: "medium", Weight: 2, Endpoint: "summarize", Text: "Summarize the benefits of caching LLM responses for a team of backend engineers in three sentences."},
		{Name: "long", Weight: 1, Endpoint: "search", Text: "Here is some context about our product: it is a service that routes customer questions to the right team, " +
			"records the answers, and learns from them. Using that context, explain how a circuit breaker protects it when " +
			"the language model provider degrades, and what the users see meanwhile."},
	}
	for i := range cs {
		q, _ := json.Marshal(cs[i].Text)
		cs[i].quoted = q[:len(q)-1]
	}
	return cs
}()

// pickClass draws a class index by weight.
func pickClass(rng *rand.Rand) int {
	sum := 0
	for _, c := range classes {
		sum += c.Weight
	}
	n := rng.IntN(sum)
	for i, c := range classes {
		if n < c.Weight {
			return i
		}
		n -= c.Weight
	}
	return 0
}

// sample is what one request measured. Durations start at the request's
// intended start: for open-loop profiles, time spent waiting for a free
// slot counts, as a user would see it.
type sample struct {
	class     int
	streamed  bool
	at        time.Duration // intended start, since the run began
	ttft, e2e time.Duration
	chunks    int
	maxGap    time.Duration
	gaps      []time.Duration // between chunks; reused by the worker
	tokensIn  int
	tokensOut int
	status    int // 0: no HTTP answer
	outcome   string
}

// tpot is the time per output token after the first, as vLLM defines it.
func (s *sample) tpot() time.Duration {
	if s.tokensOut < 2 {
		return 0
	}
	return (s.e2e - s.ttft) / time.Duration(s.tokensOut-1)
}

// Outcomes besides the llm.Kind names an error body carries.
const (
	outOK        = "ok"
	outCached    = "cached"
	outDegraded  = "degraded"
	outStreamCut = "stream_cut"     // the stream ended with neither "done" nor "error"
	outTransport = "transport"      // no HTTP answer
	outTimeout   = "client_timeout" // -timeout passed
	outAbandoned = "abandoned"      // still running when the run's drain time ended
	outDropped   = "dropped"        // open loop: every -concurrency slot was busy
	outHTTP      = "http_error"     // a non-200 without a known error kind
)

func answered(outcome string) bool {
	return outcome == outOK || outcome == outCached || outcome == outDegraded
}

// worker holds one in-flight request's reusable state, so that a request
// allocates little beyond what net/http itself needs.
type worker struct {
	rng  *rand.Rand
	body []byte
	rd   bytes.Reader // over body
	buf  bytes.Buffer
	br   *bufio.Reader
	r    reply
	s    sample
}

func newWorker(seed uint64) *worker {
	return &worker{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), br: bufio.NewReaderSize(nil, 64<<10)}
}

// reply is the subset of examples/service's JSON answers (and of its
// stream's "done" and "error" events) the tester reads.
type reply struct {
	Cached, Degraded bool
	Input, Output    int    // usage.input, usage.output
	Kind             string // error.kind
}

// replyPaths are reply's fields in the answer, in decode's order.
var replyPaths = [][]string{{"cached"}, {"degraded"}, {"usage", "input"}, {"usage", "output"}, {"error", "kind"}}

// decode sets the fields of r found in the JSON object b and leaves the
// others as they are; a malformed answer sets what it can. It reads only
// these five paths, in one pass and without reflection or allocation
// (jsonparser): at tens of thousands of requests a second, decoding the
// whole answer with encoding/json took 6% of the generator's CPU.
func (r *reply) decode(b []byte) {
	jsonparser.EachKey(b, func(i int, v []byte, typ jsonparser.ValueType, err error) {
		if err != nil {
			return
		}
		switch i {
		case 0, 1:
			if typ == jsonparser.Boolean {
				t, _ := jsonparser.ParseBoolean(v)
				if i == 0 {
					r.Cached = t
				} else {
					r.Degraded = t
				}
			}
		case 2, 3:
			if typ == jsonparser.Number {
				n, _ := jsonparser.ParseInt(v)
				if i == 2 {
					r.Input = int(n)
				} else {
					r.Output = int(n)
				}
			}
		case 4:
			if typ == jsonparser.String {
				r.Kind = string(v) // kinds are plain identifiers: nothing to unescape
			}
		}
	}, replyPaths...)
}

// do sends one request and measures it into w.s. began is the intended
// start; run is when the run began.
func (w *worker) do(ctx context.Context, t *target, began, run time.Time) *sample {
	s := &w.s
	*s = sample{gaps: s.gaps[:0], at: began.Sub(run)}
	s.class = pickClass(w.rng)
	s.streamed = w.rng.Float64() < t.cfg.StreamShare
	w.body = w.appendBody(w.body[:0], t.cfg, s.class, s.streamed)
	w.rd.Reset(w.body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, &w.rd)
	if err != nil {
		s.outcome = outTransport
		return s
	}
	// Shared by every request, never written: neither http.Client (no jar,
	// no user info in the URL) nor http.Transport modify a request's header.
	req.Header = t.header
	resp, err := t.client.Do(req)
	if err != nil {
		s.e2e = time.Since(began)
		var ne net.Error
		switch {
		case ctx.Err() != nil:
			s.outcome = outAbandoned
		case errors.As(err, &ne) && ne.Timeout():
			s.outcome = outTimeout
		default:
			s.outcome = outTransport
			t.lastErr.Store(err.Error())
		}
		return s
	}
	defer resp.Body.Close()
	s.status = resp.StatusCode
	r := &w.r
	*r = reply{}
	if s.streamed && resp.StatusCode == http.StatusOK {
		w.readStream(ctx, resp, began, r)
	} else {
		w.buf.Reset()
		_, err = w.buf.ReadFrom(resp.Body)
		s.e2e = time.Since(began)
		switch {
		case err != nil && ctx.Err() != nil:
			s.outcome = outAbandoned
		case err != nil:
			s.outcome = outTransport
		default:
			r.decode(w.buf.Bytes())
			s.outcome = outcomeOf(resp.StatusCode, r)
		}
	}
	s.tokensIn, s.tokensOut = r.Input, r.Output
	if s.streamed && s.tokensOut == 0 {
		s.tokensOut = s.chunks
	}
	return s
}

func outcomeOf(status int, r *reply) string {
	if status == http.StatusOK {
		switch {
		case r.Degraded:
			return outDegraded
		case r.Cached:
			return outCached
		}
		return outOK
	}
	if k, ok := llm.ParseKind(r.Kind); ok {
		return k.String()
	}
	return outHTTP
}

// readStream reads the service's Server-Sent Events: "data" events are
// chunks, then an "done" event with the answer's metadata, or an "error"
// event.
func (w *worker) readStream(ctx context.Context, resp *http.Response, began time.Time, r *reply) {
	s := &w.s
	w.br.Reset(resp.Body)
	defer w.br.Reset(nil)
	event := ""
	last := time.Duration(0)
	for {
		line, err := w.br.ReadSlice('\n')
		if err != nil && !(errors.Is(err, bufio.ErrBufferFull)) {
			s.e2e = time.Since(began)
			if ctx.Err() != nil {
				s.outcome = outAbandoned
			} else {
				s.outcome = outStreamCut
			}
			return
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("data: ")):
			data := line[len("data: "):]
			switch event {
			case "":
				now := time.Since(began)
				if s.chunks == 0 {
					s.ttft = now
				} else {
					gap := now - last
					s.gaps = append(s.gaps, gap)
					s.maxGap = max(s.maxGap, gap)
				}
				last = now
				s.chunks++
			case "done":
				s.e2e = time.Since(began)
				r.decode(data)
				s.outcome = outcomeOf(http.StatusOK, r)
				return
			case "error":
				s.e2e = time.Since(began)
				r.Kind = ""
				r.decode(data)
				if s.outcome = outcomeOf(0, r); s.outcome == outHTTP {
					s.outcome = outStreamCut
				}
				return
			}
		}
	}
}

// appendBody writes the request's JSON without encoding/json: the mix is
// fixed, so only the variation number and flags change.
func (w *worker) appendBody(b []byte, cfg *config, class int, stream bool) []byte {
	c := &classes[class]
	b = append(b, `{"endpoint":"`...)
	b = append(b, c.Endpoint...)
	b = append(b, `","tenant":"tenant-`...)
	b = strconv.AppendInt(b, int64(w.rng.IntN(4)), 10)
	b = append(b, `","prompt":`...)
	b = append(b, c.quoted...)
	if w.rng.Float64() < cfg.RepeatShare {
		b = append(b, `","temperature":0`...)
	} else {
		b = append(b, ` (variation `...)
		b = strconv.AppendUint(b, w.rng.Uint64(), 10)
		b = append(b, `)","temperature":0.8`...)
	}
	if stream {
		b = append(b, `,"stream":true`...)
	}
	return append(b, '}')
}
