package cache

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"slices"
	"sync"

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
	var b [8*2 + 1 + 16*2]byte
	hex.Encode(b[:16], k.Scope[:])
	b[16] = ':'
	hex.Encode(b[17:], k.Digest[:])
	return string(b[:])
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

// stackBuf is the size of the on-stack buffer small requests are encoded
// into; larger ones use a pooled buffer.
const stackBuf = 512

// maxPooled is the largest buffer kept in the pool: a request whose
// encoding is bigger gets a buffer of its own for that call.
const maxPooled = 64 << 10

// scratch is the pooled state of key computation for requests that do not
// fit the stack buffer or carry extras.
type scratch struct {
	buf  []byte
	keys []string
}

var scratchPool = sync.Pool{New: func() any { return &scratch{buf: make([]byte, 0, 4096)} }}

// KeyOf returns the cache key of req. It does not validate req; the
// middleware validates before it calls KeyOf. It fails only when an Extra
// value cannot be encoded as JSON.
//
// The encoding is built in one buffer (on the stack for the usual small
// request, pooled otherwise) and hashed in one shot, so a key costs no
// allocation.
func KeyOf(req *llm.Request) (Key, error) {
	var k Key
	err := keyOf(req, &k)
	return k, err
}

// keyOf is KeyOf writing the key into *k: the middleware passes its keys
// by pointer, since a Key copied by value is read back with wider loads
// than the stores that wrote it, which stalls the CPU's store forwarding.
func keyOf(req *llm.Request, k *Key) error {
	if len(req.Extra) == 0 && smallEncoding(req) {
		var arr [stackBuf]byte
		n := encodeSmall(&arr, req)
		sum(k, arr[:n], req.Tenant)
		return nil
	}
	sc := scratchPool.Get().(*scratch)
	b, err := appendEncoding(sc.buf[:0], req, &sc.keys)
	if err == nil {
		sum(k, b, req.Tenant)
	}
	if cap(b) <= maxPooled {
		sc.buf = b
	}
	scratchPool.Put(sc)
	return err
}

// sum hashes an encoding into k: XXH3-128 of the encoding, and XXH3-64 of
// the tenant alone for the scope.
func sum(k *Key, b []byte, tenant string) {
	h := xxh3.Hash128(b)
	binary.LittleEndian.PutUint64(k.Digest[:8], h.Lo)
	binary.LittleEndian.PutUint64(k.Digest[8:], h.Hi)
	binary.LittleEndian.PutUint64(k.Scope[:], xxh3.HashString(tenant))
}

// smallEncoding reports whether req's encoding surely fits stackBuf: a
// bound of its size from the lengths of its strings and a generous
// allowance for tags and length prefixes.
func smallEncoding(req *llm.Request) bool {
	n := 64 + len(req.Tenant) + len(req.Model) + len(req.System) + 24*len(req.Messages) + 12*len(req.Stop)
	if n > stackBuf {
		return false
	}
	for i := range req.Messages {
		n += len(req.Messages[i].Role) + len(req.Messages[i].Content)
	}
	for _, s := range req.Stop {
		n += len(s)
	}
	return n <= stackBuf
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendFloat appends an optional float: a presence byte, then its IEEE
// bits with -0 folded into 0 (they compare equal and mean the same to a
// provider).
func appendFloat(b []byte, tag byte, p *float64) []byte {
	if p == nil {
		return append(b, tag, 0)
	}
	v := *p
	if v == 0 {
		v = 0
	}
	return binary.LittleEndian.AppendUint64(append(b, tag, 1), math.Float64bits(v))
}

// appendEncoding appends the canonical encoding of req to b.
// keys is scratch space for sorting extras; it may be nil when req has
// none.
func appendEncoding(b []byte, req *llm.Request, keys *[]string) ([]byte, error) {
	b = append(b, KeyVersion, tagTenant)
	b = appendStr(b, req.Tenant)
	b = appendStr(append(b, tagModel), req.Model)
	b = appendStr(append(b, tagSystem), req.System)
	b = binary.AppendUvarint(append(b, tagMessages), uint64(len(req.Messages)))
	for i := range req.Messages {
		m := &req.Messages[i]
		b = appendStr(b, string(m.Role))
		b = appendStr(b, m.Content)
	}
	b = binary.AppendVarint(append(b, tagMaxTokens), int64(req.MaxTokens))
	b = appendFloat(b, tagTemperature, req.Temperature)
	b = appendFloat(b, tagTopP, req.TopP)
	if req.Seed == nil {
		b = append(b, tagSeed, 0)
	} else {
		b = binary.LittleEndian.AppendUint64(append(b, tagSeed, 1), uint64(*req.Seed))
	}
	b = binary.AppendUvarint(append(b, tagStop), uint64(len(req.Stop)))
	for _, s := range req.Stop {
		b = appendStr(b, s)
	}
	b = binary.AppendUvarint(append(b, tagExtra), uint64(len(req.Extra)))
	if len(req.Extra) > 0 {
		var err error
		if b, err = appendExtra(b, req.Extra, keys); err != nil {
			return b, err
		}
	}
	return append(b, tagEnd), nil
}

// appendExtra encodes the extras in sorted key order, each value as its
// JSON encoding (encoding/json sorts map keys, so nested maps are canonical
// too).
func appendExtra(b []byte, extra map[string]any, keys *[]string) ([]byte, error) {
	ks := (*keys)[:0]
	for k := range extra {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	defer func() {
		clear(ks) // do not keep the caller's strings alive in the pool
		*keys = ks[:0]
	}()
	for _, k := range ks {
		v, err := json.Marshal(extra[k])
		if err != nil {
			return b, err
		}
		b = appendStr(b, k)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b, nil
}

// putStr writes s length-prefixed at b[i:] and returns the next index.
func putStr(b *[stackBuf]byte, i int, s string) int {
	i += binary.PutUvarint(b[i:], uint64(len(s)))
	return i + copy(b[i:], s)
}

// putFloat writes an optional float as appendFloat does.
func putFloat(b *[stackBuf]byte, i int, tag byte, p *float64) int {
	b[i] = tag
	if p == nil {
		b[i+1] = 0
		return i + 2
	}
	v := *p
	if v == 0 {
		v = 0
	}
	b[i+1] = 1
	binary.LittleEndian.PutUint64(b[i+2:], math.Float64bits(v))
	return i + 10
}

// encodeSmall writes the canonical encoding of a request without extras
// whose encoding smallEncoding said fits, byte for byte what
// appendEncoding appends, by index into b: no append bookkeeping. It
// returns the encoding's length.
func encodeSmall(b *[stackBuf]byte, req *llm.Request) int {
	b[0], b[1] = KeyVersion, tagTenant
	i := putStr(b, 2, req.Tenant)
	b[i] = tagModel
	i = putStr(b, i+1, req.Model)
	b[i] = tagSystem
	i = putStr(b, i+1, req.System)
	b[i] = tagMessages
	i++
	i += binary.PutUvarint(b[i:], uint64(len(req.Messages)))
	for j := range req.Messages {
		m := &req.Messages[j]
		i = putStr(b, i, string(m.Role))
		i = putStr(b, i, m.Content)
	}
	b[i] = tagMaxTokens
	i++
	i += binary.PutVarint(b[i:], int64(req.MaxTokens))
	i = putFloat(b, i, tagTemperature, req.Temperature)
	i = putFloat(b, i, tagTopP, req.TopP)
	b[i] = tagSeed
	if req.Seed == nil {
		b[i+1] = 0
		i += 2
	} else {
		b[i+1] = 1
		binary.LittleEndian.PutUint64(b[i+2:], uint64(*req.Seed))
		i += 10
	}
	b[i] = tagStop
	i++
	i += binary.PutUvarint(b[i:], uint64(len(req.Stop)))
	for _, s := range req.Stop {
		i = putStr(b, i, s)
	}
	b[i], b[i+1], b[i+2] = tagExtra, 0, tagEnd
	return i + 3
}
