package sim

import (
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/llmkit/llmkit/llm"
)

// vocabulary is what answers are made of: plain lower-case ASCII words, so
// that a word is one token and capitalising one changes one byte. There are
// exactly 64, so that six random bits pick one.
var vocabulary = [...]string{
	"the", "a", "model", "answer", "system", "request", "token", "latency",
	"cache", "data", "service", "result", "call", "stream", "client", "server",
	"error", "retry", "budget", "limit", "query", "context", "prompt", "response",
	"value", "signal", "metric", "trace", "queue", "worker", "batch", "window",
	"is", "are", "can", "will", "should", "may", "often", "usually",
	"quickly", "reliable", "fast", "steady", "clear", "useful", "small", "large",
	"every", "each", "this", "that", "it", "and", "because", "with",
	"from", "of", "to", "in", "for", "returns", "keeps", "shows",
}

// Fails to compile unless the vocabulary holds exactly 64 words.
var _ [64]struct{} = [len(vocabulary)]struct{}{}

// Sentences run from minSentence to minSentence+7 words: three random bits.
const minSentence = 6

// FNV-1a, 64 bits, written out so that hashing a request allocates nothing.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashByte(h uint64, b byte) uint64 { return (h ^ uint64(b)) * fnvPrime }

func hashUint64(h, v uint64) uint64 {
	for range 8 {
		h = hashByte(h, byte(v))
		v >>= 8
	}
	return h
}

// hashString hashes the length first, so that ("ab", "c") and ("a", "bc")
// differ.
func hashString(h uint64, s string) uint64 {
	h = hashUint64(h, uint64(len(s)))
	for i := 0; i < len(s); i++ {
		h = hashByte(h, s[i])
	}
	return h
}

// requestHash hashes what decides an answer: the seed, the resolved model,
// the system prompt, the messages and the request's own seed.
func requestHash(seed int64, model string, req *llm.Request) uint64 {
	h := hashUint64(fnvOffset, uint64(seed))
	h = hashString(h, model)
	h = hashString(h, req.System)
	h = hashUint64(h, uint64(len(req.Messages)))
	for i := range req.Messages {
		h = hashString(h, string(req.Messages[i].Role))
		h = hashString(h, req.Messages[i].Content)
	}
	if req.Seed != nil {
		h = hashByte(h, 1)
		h = hashUint64(h, uint64(*req.Seed))
	}
	return h
}

// mix64 is SplitMix64's finaliser: it spreads nearby inputs (call 1, call
// 2, ...) over the whole range before they seed a generator.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit returns a uniform float64 in [0, 1).
func unit(r *rand.PCG) float64 { return float64(r.Uint64()>>11) * 0x1p-53 }

// below returns a number in [0, n) for n > 0. Its bias is at most n/2^64.
func below(r *rand.PCG, n int) int {
	hi, _ := bits.Mul64(r.Uint64(), uint64(n))
	return int(hi)
}

// words walks the words of an answer of length full: which word, whether
// it starts a sentence (capitalised) and whether it ends one (a full stop).
// One 64-bit draw picks ten words, six bits each.
type words struct {
	r    *rand.PCG
	full int    // the uncut answer's length: its last word ends a sentence
	i    int    // the word next returns
	left int    // words left in the current sentence
	bits uint64 // unused random bits
	n    int    // how many six-bit fields bits still holds
}

// field returns six random bits.
func (w *words) field() int {
	if w.n == 0 {
		w.bits, w.n = w.r.Uint64(), 10
	}
	f := int(w.bits & 63)
	w.bits >>= 6
	w.n--
	return f
}

func (w *words) next() (word string, first, last bool) {
	if w.left == 0 {
		w.left = minSentence + w.field()&7
		first = true
	}
	word = vocabulary[w.field()]
	w.left--
	last = w.left == 0 || w.i == w.full-1
	w.i++
	return word, first, last
}

// answer is a composed answer. text holds the response id and then the
// answer, one allocation for both.
type answer struct {
	text   string
	idLen  int
	tokens int
	finish llm.FinishReason
}

func (a *answer) id() string   { return a.text[:a.idLen] }
func (a *answer) body() string { return a.text[a.idLen:] }

// compose builds the answer to req and the response id "sim-<hex call>".
// The answer is words separated by single spaces, so a stream can cut it
// into words without remembering where they begin.
func (m *Model) compose(req *llm.Request, model string, call uint64) answer {
	h := requestHash(m.seed, model, req)
	r := rand.NewPCG(h, mix64(h))
	full := m.minTokens + below(r, m.maxTokens-m.minTokens+1)
	a := answer{tokens: full, finish: llm.FinishStop}
	if req.MaxTokens > 0 && req.MaxTokens < full {
		a.tokens, a.finish = req.MaxTokens, llm.FinishLength
	}

	// Write into a buffer on the stack, big enough for the default lengths,
	// and copy once into a string of the exact size: id and text share
	// that one allocation.
	var buf [1024]byte
	b := append(buf[:0], "sim-"...)
	b = strconv.AppendUint(b, call, 16)
	a.idLen = len(b)
	w := words{r: r, full: full}
	for i := range a.tokens {
		word, first, last := w.next()
		if i > 0 {
			b = append(b, ' ')
		}
		if first {
			b = append(b, word[0]-'a'+'A')
			word = word[1:]
		}
		b = append(b, word...)
		if last {
			b = append(b, '.')
		}
	}
	a.text = string(b)
	return a
}

// nextChunk returns the chunk of text that starts at byte start: the first
// word, or a later word with the space before it.
func nextChunk(text string, start int) string {
	if j := strings.IndexByte(text[start+1:], ' '); j >= 0 {
		return text[start : start+1+j]
	}
	return text[start:]
}
