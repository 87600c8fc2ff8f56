package redis

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/llmkit/llmkit/cache"
	"github.com/llmkit/llmkit/llm"
)

// entryVersion is the first byte of an encoded entry.
const entryVersion = 1

var errBadEntry = errors.New("cache/redis: malformed stored entry")

// appendEntry encodes e compactly: a version byte, the two deadlines in
// Unix nanoseconds, the answer's strings length-prefixed and its token
// counts as varints.
func appendEntry(b []byte, e cache.Entry) []byte {
	r := e.Response
	b = append(b, entryVersion)
	b = binary.AppendVarint(b, e.Expires.UnixNano())
	b = binary.AppendVarint(b, e.StaleUntil.UnixNano())
	for _, s := range [...]string{r.ID, r.Text, r.Model, string(r.FinishReason)} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, int64(r.Usage.InputTokens))
	b = binary.AppendVarint(b, int64(r.Usage.OutputTokens))
	b = binary.AppendVarint(b, int64(r.Usage.CachedInputTokens))
	return b
}

// decodeEntry is the inverse of appendEntry.
func decodeEntry(b []byte) (cache.Entry, error) {
	var e cache.Entry
	if len(b) == 0 || b[0] != entryVersion {
		return e, errBadEntry
	}
	b = b[1:]
	varint := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	str := func() (string, bool) {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return "", false
		}
		s := string(b[n : n+int(l)])
		b = b[n+int(l):]
		return s, true
	}
	exp, stale := varint(), varint()
	if b == nil {
		return e, errBadEntry
	}
	var f [4]string
	for i := range f {
		s, ok := str()
		if !ok {
			return e, errBadEntry
		}
		f[i] = s
	}
	r := &llm.Response{ID: f[0], Text: f[1], Model: f[2], FinishReason: llm.FinishReason(f[3])}
	r.Usage.InputTokens = int(varint())
	r.Usage.OutputTokens = int(varint())
	r.Usage.CachedInputTokens = int(varint())
	if b == nil || len(b) != 0 {
		return e, errBadEntry
	}
	e.Response = r
	e.Expires = time.Unix(0, exp)
	e.StaleUntil = time.Unix(0, stale)
	return e, nil
}
