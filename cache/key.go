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

// hiPrefix starts the input of the digest's high half: the low half is
// xxh64(encoding), the high half xxh64(hiPrefix || encoding), two 64-bit
// hashes of different inputs. Both are part of the key version.
var hiPrefix = [8]byte{'l', 'l', 'm', 'k', 'i', 't', 'h', 'i'}

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

// bufLimit is how much of the encoding is kept in the buffer and hashed in
// one shot; a longer encoding spills into streaming digests. Both paths
// give the same key (a test changes it to prove that).
var bufLimit = 8 << 10

// hasher is the pooled per-call state of key computation: a scratch buffer
// holding hiPrefix and the encoding, and two digests for encodings longer
// than bufLimit, so that a key costs no allocation.
type hasher struct {
	lo, hi    *xxhash.Digest
	buf       []byte
	streaming bool
	keys      []string
}

var hasherPool = sync.Pool{New: func() any {
	return &hasher{lo: xxhash.New(), hi: xxhash.New(), buf: make([]byte, 0, 1024)}
}}

// spill moves what the buffer holds into the streaming digests.
func (h *hasher) spill() {
	if !h.streaming {
		h.streaming = true
		h.lo.Reset()
		h.hi.Reset()
		h.hi.Write(h.buf[:len(hiPrefix)])
		h.buf = h.buf[len(hiPrefix):]
	}
	h.lo.Write(h.buf)
	h.hi.Write(h.buf)
	h.buf = h.buf[:0]
}

func (h *hasher) uvarint(v uint64) { h.buf = binary.AppendUvarint(h.buf, v) }

func (h *hasher) str(s string) {
	h.uvarint(uint64(len(s)))
	if len(h.buf)+len(s) > bufLimit {
		h.spill()
		h.lo.WriteString(s)
		h.hi.WriteString(s)
		return
	}
	h.buf = append(h.buf, s...)
}

func (h *hasher) bytes(b []byte) {
	h.uvarint(uint64(len(b)))
	if len(h.buf)+len(b) > bufLimit {
		h.spill()
		h.lo.Write(b)
		h.hi.Write(b)
		return
	}
	h.buf = append(h.buf, b...)
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
	if cap(h.buf) <= 2*bufLimit {
		hasherPool.Put(h)
	}
	return k, err
}

func (h *hasher) key(req *llm.Request) (Key, error) {
	var k Key
	h.streaming = false
	h.buf = append(append(h.buf[:0], hiPrefix[:]...), KeyVersion, tagTenant)
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
	if h.streaming {
		h.spill()
		binary.LittleEndian.PutUint64(k.Digest[:8], h.lo.Sum64())
		binary.LittleEndian.PutUint64(k.Digest[8:], h.hi.Sum64())
	} else {
		binary.LittleEndian.PutUint64(k.Digest[:8], xxhash.Sum64(h.buf[len(hiPrefix):]))
		binary.LittleEndian.PutUint64(k.Digest[8:], xxhash.Sum64(h.buf))
	}
	binary.LittleEndian.PutUint64(k.Scope[:], xxhash.Sum64String(req.Tenant))
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
		h.bytes(v)
	}
	clear(h.keys) // do not keep the caller's strings alive in the pool
	return nil
}
