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
// The encoding is fed to the hash field by field, never built in a buffer,
// so a key costs the same per byte at any prompt size and allocates
// nothing for a request without extras.
func KeyOf(req *llm.Request) (Key, error) {
	var e encoder
	e.h.Reset()
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
	e.write(binary.AppendVarint(e.buf[:0], int64(req.MaxTokens)))
	e.float(tagTemperature, req.Temperature)
	e.float(tagTopP, req.TopP)
	if req.Seed == nil {
		e.write(append(e.buf[:0], tagSeed, 0))
	} else {
		e.write(binary.LittleEndian.AppendUint64(append(e.buf[:0], tagSeed, 1), uint64(*req.Seed)))
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
	h := e.h.Sum128()
	binary.LittleEndian.PutUint64(k.Digest[:8], h.Lo)
	binary.LittleEndian.PutUint64(k.Digest[8:], h.Hi)
	binary.LittleEndian.PutUint64(k.Scope[:], xxh3.HashString(req.Tenant))
	return k, nil
}

// encoder feeds the canonical encoding to a streaming XXH3 hash, which
// gives the digest one-shot XXH3-128 gives the same bytes.
type encoder struct {
	h   xxh3.Hasher
	buf [2 + binary.MaxVarintLen64]byte // a tag and a number at most
}

func (e *encoder) write(b []byte) { e.h.Write(b) }

func (e *encoder) tag(t byte) { e.write(append(e.buf[:0], t)) }

func (e *encoder) uvarint(v uint64) { e.write(binary.AppendUvarint(e.buf[:0], v)) }

// str writes s length-prefixed.
func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.h.WriteString(s)
}

// float writes an optional float: a presence byte, then its IEEE bits with
// -0 folded into 0 (they compare equal and mean the same to a provider).
func (e *encoder) float(tag byte, p *float64) {
	if p == nil {
		e.write(append(e.buf[:0], tag, 0))
		return
	}
	v := *p
	if v == 0 {
		v = 0
	}
	e.write(binary.LittleEndian.AppendUint64(append(e.buf[:0], tag, 1), math.Float64bits(v)))
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
		e.write(v)
	}
	return nil
}
