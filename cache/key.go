package cache

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"slices"

	"github.com/zeebo/xxh3"

	"github.com/llmkit/llmkit/llm"
)

// KeyVersion is the version of the key encoding. It is the first byte
// hashed, so changing the encoding (and bumping it) never lets an old entry
// answer a new request.
const KeyVersion = 1

// Key identifies a cached answer. It is a fixed-size value, comparable and
// cheap to copy.
type Key struct {
	// Scope is a hash of the tenant alone. Shared stores put it in their
	// key as a namespace, so that no raw tenant ever appears in a store.
	Scope [8]byte
	// Digest is the XXH3-128 hash of the versioned canonical encoding of
	// the tenant and every output-affecting request field.
	Digest [16]byte
}

// String returns the key in hex, "scope:digest".
func (k Key) String() string {
	b := hex.AppendEncode(make([]byte, 0, 49), k.Scope[:])
	return string(hex.AppendEncode(append(b, ':'), k.Digest[:]))
}

// Field tags keep the encoding self-delimiting and injective: every field
// is a tag followed by a fixed-size or length-prefixed value.
const (
	tagTenant byte = iota + 1
	tagModel
	tagSystem
	tagMessages
	tagMaxTokens
	tagTemperature
	tagTopP
	tagSeed
	tagStop
	tagExtra
	tagEnd
)

// KeyOf returns the cache key of req. It does not validate req; the
// middleware validates before it calls KeyOf. It fails only when an Extra
// value cannot be encoded as JSON.
//
// The encoding is fed to the hash as a stream, never built whole in a
// buffer, so a key costs the same per byte at any prompt size and
// allocates nothing for a request without extras.
func KeyOf(req *llm.Request) (Key, error) {
	var e encoder
	e.tag(KeyVersion)
	e.tag(tagTenant)
	e.str(req.Tenant)
	e.tag(tagModel)
	e.str(req.Model)
	e.tag(tagSystem)
	e.str(req.System)
	e.tag(tagMessages)
	e.uvarint(uint64(len(req.Messages)))
	for i := range req.Messages {
		e.str(string(req.Messages[i].Role))
		e.str(req.Messages[i].Content)
	}
	e.tag(tagMaxTokens)
	e.varint(int64(req.MaxTokens))
	e.float(tagTemperature, req.Temperature)
	e.float(tagTopP, req.TopP)
	e.tag(tagSeed)
	if req.Seed == nil {
		e.tag(0)
	} else {
		e.tag(1)
		e.uint64(uint64(*req.Seed))
	}
	e.tag(tagStop)
	e.uvarint(uint64(len(req.Stop)))
	for _, s := range req.Stop {
		e.str(s)
	}
	e.tag(tagExtra)
	e.uvarint(uint64(len(req.Extra)))
	if len(req.Extra) > 0 {
		if err := e.extra(req.Extra); err != nil {
			return Key{}, err
		}
	}
	e.tag(tagEnd)

	var k Key
	h := e.sum()
	binary.LittleEndian.PutUint64(k.Digest[:8], h.Lo)
	binary.LittleEndian.PutUint64(k.Digest[8:], h.Hi)
	binary.LittleEndian.PutUint64(k.Scope[:], xxh3.HashString(req.Tenant))
	return k, nil
}

// encoder feeds the canonical encoding to a streaming XXH3 hash, which
// gives the digest one-shot XXH3-128 gives the same bytes. The many small
// writes (tags, lengths, numbers, short strings) are batched in buf, which
// lives on the stack with the encoder, so the hasher sees a few large
// writes; a string that does not fit goes to the hasher directly, so the
// cost per byte is the same at any prompt size.
type encoder struct {
	h        xxh3.Hasher // zero value is ready to use
	streamed bool        // whether anything was written to h
	buf      [512]byte
	n        int // bytes of buf in use
}

// sum returns the digest. An encoding that fits in buf is hashed in one
// shot, which is what the hasher would do with it, minus a copy.
func (e *encoder) sum() xxh3.Uint128 {
	if !e.streamed {
		return xxh3.Hash128(e.buf[:e.n])
	}
	e.flush()
	return e.h.Sum128()
}

// flush hands the batched bytes to the hasher. It is kept out of line so
// that the fast paths of the small writes below inline.
//
//go:noinline
func (e *encoder) flush() {
	e.streamed = true
	e.h.Write(e.buf[:e.n])
	e.n = 0
}

// reserve makes room for k bytes in buf (k <= len(buf)).
func (e *encoder) reserve(k int) {
	if len(e.buf)-e.n < k {
		e.flush()
	}
}

func (e *encoder) tag(t byte) {
	e.reserve(1)
	e.buf[e.n] = t
	e.n++
}

func (e *encoder) uvarint(v uint64) {
	e.reserve(binary.MaxVarintLen64)
	e.n += binary.PutUvarint(e.buf[e.n:], v)
}

func (e *encoder) varint(v int64) {
	e.reserve(binary.MaxVarintLen64)
	e.n += binary.PutVarint(e.buf[e.n:], v)
}

func (e *encoder) uint64(v uint64) {
	e.reserve(8)
	binary.LittleEndian.PutUint64(e.buf[e.n:], v)
	e.n += 8
}

// raw writes s as is: batched when it fits in buf, else straight to the
// hasher after what is batched.
func (e *encoder) raw(s string) {
	if len(s) > len(e.buf)-e.n {
		e.flush()
		if len(s) > len(e.buf) {
			e.h.WriteString(s)
			return
		}
	}
	e.n += copy(e.buf[e.n:], s)
}

// str writes s length-prefixed.
func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.raw(s)
}

// float writes an optional float: a presence byte, then its IEEE bits with
// -0 folded into 0 (they compare equal and mean the same to a provider).
func (e *encoder) float(tag byte, p *float64) {
	e.tag(tag)
	if p == nil {
		e.tag(0)
		return
	}
	v := *p
	if v == 0 {
		v = 0
	}
	e.tag(1)
	e.uint64(math.Float64bits(v))
}

// extra writes the extras in sorted key order, each value as its JSON
// encoding (encoding/json sorts map keys, so nested maps are canonical
// too).
func (e *encoder) extra(extra map[string]any) error {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, err := json.Marshal(extra[k])
		if err != nil {
			return err
		}
		e.str(k)
		e.uvarint(uint64(len(v)))
		e.flush()
		e.h.Write(v)
	}
	return nil
}
