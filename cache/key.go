package cache

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"

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
	// Digest is a 128-bit hash of the versioned canonical encoding of the
	// tenant and every output-affecting request field.
	Digest [16]byte
}

// String returns the key in hex, "scope:digest".
func (k Key) String() string {
	var b [8*2 + 1 + 16*2]byte
	hex.Encode(b[:16], k.Scope[:])
	b[16] = ':'
	hex.Encode(b[17:], k.Digest[:])
	return string(b[:])
}

// The seeds of the three hashes: two independent 64-bit halves of the
// digest and one for the tenant scope. They are part of the key version.
const (
	seedDigestLo = 0x6c6c6d6b69742d31 // "llmkit-1"
	seedDigestHi = 0x9e3779b97f4a7c15
	seedScope    = 0x736370652d746e74
)

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

// directWrite is the string length above which a string is hashed in
// place rather than copied into the buffer.
const directWrite = 256

// hasher is the pooled per-call state of key computation: two digests and a
// scratch buffer, so that a key costs no allocation.
type hasher struct {
	lo, hi, sc *xxhash.Digest
	buf        []byte
	keys       []string
}

var hasherPool = sync.Pool{New: func() any {
	return &hasher{
		lo:  xxhash.NewWithSeed(seedDigestLo),
		hi:  xxhash.NewWithSeed(seedDigestHi),
		sc:  xxhash.NewWithSeed(seedScope),
		buf: make([]byte, 0, 1024),
	}
}}

func (h *hasher) flush() {
	if len(h.buf) > 0 {
		h.lo.Write(h.buf)
		h.hi.Write(h.buf)
		h.buf = h.buf[:0]
	}
}

func (h *hasher) uvarint(v uint64) { h.buf = binary.AppendUvarint(h.buf, v) }

func (h *hasher) str(s string) {
	h.uvarint(uint64(len(s)))
	if len(s) > directWrite {
		h.flush()
		h.lo.WriteString(s)
		h.hi.WriteString(s)
		return
	}
	h.buf = append(h.buf, s...)
}

// float appends an optional float: a presence byte, then its IEEE bits with
// -0 folded into 0 (they compare equal and mean the same to a provider).
func (h *hasher) float(tag byte, p *float64) {
	if p == nil {
		h.buf = append(h.buf, tag, 0)
		return
	}
	v := *p
	if v == 0 {
		v = 0
	}
	h.buf = append(h.buf, tag, 1)
	h.buf = binary.LittleEndian.AppendUint64(h.buf, math.Float64bits(v))
}

// KeyOf returns the cache key of req. It does not validate req; the
// middleware validates before it calls KeyOf. It fails only when an Extra
// value cannot be encoded as JSON.
func KeyOf(req *llm.Request) (Key, error) {
	h := hasherPool.Get().(*hasher)
	k, err := h.key(req)
	if cap(h.buf) <= 64<<10 {
		hasherPool.Put(h)
	}
	return k, err
}

func (h *hasher) key(req *llm.Request) (Key, error) {
	var k Key
	h.lo.ResetWithSeed(seedDigestLo)
	h.hi.ResetWithSeed(seedDigestHi)
	h.buf = append(h.buf[:0], KeyVersion, tagTenant)
	h.str(req.Tenant)
	h.buf = append(h.buf, tagModel)
	h.str(req.Model)
	h.buf = append(h.buf, tagSystem)
	h.str(req.System)
	h.buf = append(h.buf, tagMessages)
	h.uvarint(uint64(len(req.Messages)))
	for i := range req.Messages {
		m := &req.Messages[i]
		h.str(string(m.Role))
		h.str(m.Content)
	}
	h.buf = append(h.buf, tagMaxTokens)
	h.buf = binary.AppendVarint(h.buf, int64(req.MaxTokens))
	h.float(tagTemperature, req.Temperature)
	h.float(tagTopP, req.TopP)
	if req.Seed == nil {
		h.buf = append(h.buf, tagSeed, 0)
	} else {
		h.buf = append(h.buf, tagSeed, 1)
		h.buf = binary.LittleEndian.AppendUint64(h.buf, uint64(*req.Seed))
	}
	h.buf = append(h.buf, tagStop)
	h.uvarint(uint64(len(req.Stop)))
	for _, s := range req.Stop {
		h.str(s)
	}
	h.buf = append(h.buf, tagExtra)
	h.uvarint(uint64(len(req.Extra)))
	if len(req.Extra) > 0 {
		if err := h.extra(req.Extra); err != nil {
			return k, err
		}
	}
	h.buf = append(h.buf, tagEnd)
	h.flush()
	binary.LittleEndian.PutUint64(k.Digest[:8], h.lo.Sum64())
	binary.LittleEndian.PutUint64(k.Digest[8:], h.hi.Sum64())
	h.sc.ResetWithSeed(seedScope)
	h.sc.WriteString(req.Tenant)
	binary.LittleEndian.PutUint64(k.Scope[:], h.sc.Sum64())
	return k, nil
}

// extra encodes the extras in sorted key order, each value as its JSON
// encoding (encoding/json sorts map keys, so nested maps are canonical too).
func (h *hasher) extra(extra map[string]any) error {
	h.keys = h.keys[:0]
	for k := range extra {
		h.keys = append(h.keys, k)
	}
	slices.Sort(h.keys)
	for _, k := range h.keys {
		v, err := json.Marshal(extra[k])
		if err != nil {
			clear(h.keys)
			return err
		}
		h.str(k)
		h.uvarint(uint64(len(v)))
		h.buf = append(h.buf, v...)
	}
	clear(h.keys) // do not keep the caller's strings alive in the pool
	return nil
}
