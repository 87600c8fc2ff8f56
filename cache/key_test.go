package cache

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/zeebo/xxh3"

	"github.com/llmkit/llmkit/llm"
)

func baseReq() *llm.Request {
	return &llm.Request{
		Model:       "m",
		System:      "sys",
		Messages:    []llm.Message{llm.User("hello"), llm.Assistant("hi"), llm.User("again")},
		MaxTokens:   100,
		Temperature: llm.Ptr(0.0),
		TopP:        llm.Ptr(0.5),
		Seed:        llm.Ptr(int64(1)),
		Stop:        []string{"END"},
		Extra:       map[string]any{"reasoning_effort": "low", "n": 1},
		Tenant:      "t1",
	}
}

func mustKey(t testing.TB, r *llm.Request) Key {
	t.Helper()
	k, err := KeyOf(r)
	if err != nil {
		t.Fatalf("KeyOf: %v", err)
	}
	return k
}

// mutations each change exactly one output-affecting field of baseReq.
var mutations = []struct {
	name string
	f    func(r *llm.Request)
}{
	{"model", func(r *llm.Request) { r.Model = "m2" }},
	{"model empty", func(r *llm.Request) { r.Model = "" }},
	{"system", func(r *llm.Request) { r.System = "sys2" }},
	{"system empty", func(r *llm.Request) { r.System = "" }},
	{"message content", func(r *llm.Request) { r.Messages[2].Content = "again!" }},
	{"message role", func(r *llm.Request) { r.Messages[1].Role = llm.RoleUser }},
	{"message order", func(r *llm.Request) { r.Messages[0], r.Messages[2] = r.Messages[2], r.Messages[0] }},
	{"message dropped", func(r *llm.Request) { r.Messages = r.Messages[:1] }},
	{"message boundary", func(r *llm.Request) { r.Messages[0].Content, r.Messages[1].Content = "hell", "ohi" }},
	{"system into message", func(r *llm.Request) { r.System, r.Messages[0].Content = "sysh", "ello" }},
	{"max tokens", func(r *llm.Request) { r.MaxTokens = 101 }},
	{"max tokens zero", func(r *llm.Request) { r.MaxTokens = 0 }},
	{"temperature", func(r *llm.Request) { r.Temperature = llm.Ptr(0.7) }},
	{"temperature unset", func(r *llm.Request) { r.Temperature = nil }},
	{"top-p", func(r *llm.Request) { r.TopP = llm.Ptr(0.51) }},
	{"top-p zero", func(r *llm.Request) { r.TopP = llm.Ptr(0.0) }},
	{"top-p unset", func(r *llm.Request) { r.TopP = nil }},
	{"seed", func(r *llm.Request) { r.Seed = llm.Ptr(int64(2)) }},
	{"seed zero", func(r *llm.Request) { r.Seed = llm.Ptr(int64(0)) }},
	{"seed unset", func(r *llm.Request) { r.Seed = nil }},
	{"stop", func(r *llm.Request) { r.Stop = []string{"STOP"} }},
	{"stop added", func(r *llm.Request) { r.Stop = []string{"END", "STOP"} }},
	{"stop unset", func(r *llm.Request) { r.Stop = nil }},
	{"extra value", func(r *llm.Request) { r.Extra = map[string]any{"reasoning_effort": "high", "n": 1} }},
	{"extra type", func(r *llm.Request) { r.Extra = map[string]any{"reasoning_effort": "low", "n": "1"} }},
	{"extra key", func(r *llm.Request) { r.Extra = map[string]any{"reasoning": "low", "n": 1} }},
	{"extra added", func(r *llm.Request) { r.Extra = map[string]any{"reasoning_effort": "low", "n": 1, "x": nil} }},
	{"extra unset", func(r *llm.Request) { r.Extra = nil }},
	{"tenant", func(r *llm.Request) { r.Tenant = "t2" }},
	{"tenant empty", func(r *llm.Request) { r.Tenant = "" }},
}

func TestKeyChangesWithEveryField(t *testing.T) {
	base := mustKey(t, baseReq())
	seen := map[Key]string{base: "base"}
	for _, m := range mutations {
		r := baseReq()
		m.f(r)
		k := mustKey(t, r)
		if prev, dup := seen[k]; dup {
			t.Errorf("%s: key equals that of %s", m.name, prev)
		}
		seen[k] = m.name
	}
}

func TestKeyUnsetDiffersFromZero(t *testing.T) {
	zero, unset := baseReq(), baseReq()
	zero.TopP, zero.Seed = llm.Ptr(0.0), llm.Ptr(int64(0))
	unset.TopP, unset.Seed = nil, nil
	if mustKey(t, zero) == mustKey(t, unset) {
		t.Fatal("unset top-p and seed share a key with zero ones")
	}
}

func TestKeyEquivalentRequests(t *testing.T) {
	t.Run("prompt vs one user message", func(t *testing.T) {
		a := llm.Prompt("what is 2+2?")
		b := &llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "what is 2+2?"}}}
		if mustKey(t, a) != mustKey(t, b) {
			t.Fatal("Prompt(x) and a request with one user message x have different keys")
		}
	})
	t.Run("extras in another order", func(t *testing.T) {
		a, b := baseReq(), baseReq()
		a.Extra, b.Extra = map[string]any{}, map[string]any{}
		for i := range 50 {
			a.Extra[fmt.Sprint("k", i)] = map[string]any{"z": i, "a": []int{i}}
			b.Extra[fmt.Sprint("k", 49-i)] = map[string]any{"a": []int{49 - i}, "z": 49 - i}
		}
		if mustKey(t, a) != mustKey(t, b) {
			t.Fatal("the same extras inserted in another order changed the key")
		}
	})
	t.Run("metadata ignored", func(t *testing.T) {
		a, b := baseReq(), baseReq()
		b.Endpoint, b.Cache = "summarize", llm.CacheSkipStore
		b.Stream = func(llm.Chunk) error { return nil }
		if mustKey(t, a) != mustKey(t, b) {
			t.Fatal("Endpoint, Cache or Stream changed the key")
		}
	})
	t.Run("negative zero", func(t *testing.T) {
		a, b := baseReq(), baseReq()
		b.Temperature = llm.Ptr(math.Copysign(0, -1))
		if mustKey(t, a) != mustKey(t, b) {
			t.Fatal("temperature -0 and 0 have different keys")
		}
	})
}

func TestKeyScopeIsTheTenantOnly(t *testing.T) {
	a, b := baseReq(), baseReq()
	b.Model = "other"
	ka, kb := mustKey(t, a), mustKey(t, b)
	if ka.Scope != kb.Scope {
		t.Fatal("the scope depends on more than the tenant")
	}
	b.Tenant = "t2"
	if mustKey(t, b).Scope == ka.Scope {
		t.Fatal("two tenants share a scope")
	}
}

func TestKeyUnencodableExtra(t *testing.T) {
	r := baseReq()
	r.Extra = map[string]any{"f": func() {}}
	if _, err := KeyOf(r); err == nil {
		t.Fatal("KeyOf accepted an extra JSON cannot encode")
	}
}

func TestKeyAllocs(t *testing.T) {
	skipUnderRace(t)
	for _, size := range append([]int{0}, promptSizes...) {
		r := baseReq()
		r.Extra = nil
		r.Messages[0].Content = strings.Repeat("m", size)
		if n := testing.AllocsPerRun(100, func() { mustKey(t, r) }); n != 0 {
			t.Fatalf("KeyOf of a %d-byte prompt allocates %v times, want 0", size, n)
		}
	}
}

// TestKeyGolden pins the keys of version 1: they change only with the
// encoding, and then KeyVersion must change too, so that no old entry (in
// Redis, say) answers a new request.
func TestKeyGolden(t *testing.T) {
	if KeyVersion != 1 {
		t.Skip("golden keys of version 1")
	}
	noExtra := baseReq()
	noExtra.Extra = nil
	long := baseReq()
	long.Extra = nil
	long.Messages[0].Content = strings.Repeat("m", 300<<10)
	for _, tc := range []struct {
		req  *llm.Request
		want string
	}{
		{baseReq(), "3cc32ac1fa3432c0:1a5363bf82c4927f62e770ee386b7edb"},
		{noExtra, "3cc32ac1fa3432c0:44d91dc831a349e41fd977fd5682ba8c"},
		{long, "3cc32ac1fa3432c0:7e24c8ef9f0853158fcd69f914c79641"},
		{llm.Prompt("x"), "c294d3380580062d:007775c20def9e3a8e3df72976df829b"},
	} {
		if got := mustKey(t, tc.req).String(); got != tc.want {
			t.Errorf("key of %.40q = %s, want %s", tc.req.PromptText(), got, tc.want)
		}
	}
}

// TestKeyIsTheHashOfTheEncoding checks that the streamed hash is XXH3-128
// of the canonical encoding, built here in one buffer as documented, at
// sizes on both sides of the hasher's internal block.
func TestKeyIsTheHashOfTheEncoding(t *testing.T) {
	for _, size := range []int{0, 100, 240, 1000, 1024, 1100, 4096, 300 << 10} {
		r := baseReq()
		r.Messages[0].Content = strings.Repeat("m", size)
		h := xxh3.Hash128(appendEncoding(nil, r))
		var want Key
		binary.LittleEndian.PutUint64(want.Digest[:8], h.Lo)
		binary.LittleEndian.PutUint64(want.Digest[8:], h.Hi)
		binary.LittleEndian.PutUint64(want.Scope[:], xxh3.HashString(r.Tenant))
		if got := mustKey(t, r); got != want {
			t.Fatalf("size %d: KeyOf = %v, the hash of the encoding = %v", size, got, want)
		}
	}
}

// appendEncoding appends the canonical encoding of req, the reference
// KeyOf is checked against.
func appendEncoding(b []byte, req *llm.Request) []byte {
	str := func(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	float := func(b []byte, tag byte, p *float64) []byte {
		if p == nil {
			return append(b, tag, 0)
		}
		return binary.LittleEndian.AppendUint64(append(b, tag, 1), math.Float64bits(*p+0))
	}
	b = str(append(b, KeyVersion, tagTenant), req.Tenant)
	b = str(append(b, tagModel), req.Model)
	b = str(append(b, tagSystem), req.System)
	b = binary.AppendUvarint(append(b, tagMessages), uint64(len(req.Messages)))
	for _, m := range req.Messages {
		b = str(str(b, string(m.Role)), m.Content)
	}
	b = binary.AppendVarint(append(b, tagMaxTokens), int64(req.MaxTokens))
	b = float(float(b, tagTemperature, req.Temperature), tagTopP, req.TopP)
	if req.Seed == nil {
		b = append(b, tagSeed, 0)
	} else {
		b = binary.LittleEndian.AppendUint64(append(b, tagSeed, 1), uint64(*req.Seed))
	}
	b = binary.AppendUvarint(append(b, tagStop), uint64(len(req.Stop)))
	for _, s := range req.Stop {
		b = str(b, s)
	}
	b = binary.AppendUvarint(append(b, tagExtra), uint64(len(req.Extra)))
	for _, k := range slices.Sorted(maps.Keys(req.Extra)) {
		v, _ := json.Marshal(req.Extra[k])
		b = append(binary.AppendUvarint(str(b, k), uint64(len(v))), v...)
	}
	return append(b, tagEnd)
}

// FuzzKey checks that the key is a function of the request's content (not
// of pointers or map order), and that changing any one field changes it.
func FuzzKey(f *testing.F) {
	f.Add("m", "sys", "hello", "hi", 10, 0.0, 0.5, int64(1), "END", "low", "t1", uint8(0))
	f.Add("", "", "x", "", 0, 2.0, 1.0, int64(0), "", "", "", uint8(7))
	f.Add("a", "b", "", "c", -1, 0.0, 0.0, int64(-5), "\x00", "\xff", "tenant", uint8(200))
	f.Fuzz(func(t *testing.T, model, system, msg, reply string, maxTok int, temp, topP float64,
		seed int64, stop, extra, tenant string, which uint8) {
		if math.IsNaN(temp) || math.IsNaN(topP) {
			return
		}
		build := func() *llm.Request {
			return &llm.Request{
				Model: model, System: system,
				Messages:  []llm.Message{llm.User(msg), llm.Assistant(reply)},
				MaxTokens: maxTok, Temperature: llm.Ptr(temp), TopP: llm.Ptr(topP), Seed: llm.Ptr(seed),
				Stop: []string{stop}, Extra: map[string]any{"effort": extra, "z": 1, "a": 2}, Tenant: tenant,
			}
		}
		k := mustKey(t, build())
		if k2 := mustKey(t, build()); k2 != k {
			t.Fatal("two builds of one request have different keys")
		}
		r := build()
		switch which % 12 {
		case 0:
			r.Model += "x"
		case 1:
			r.System += "x"
		case 2:
			r.Messages[0].Content += "x"
		case 3:
			r.Messages[1].Content += "x"
		case 4:
			r.MaxTokens++
			if r.MaxTokens == maxTok { // overflow
				return
			}
		case 5:
			r.Temperature = nil
		case 6:
			r.TopP = nil
		case 7:
			r.Seed = llm.Ptr(seed ^ 1)
		case 8:
			r.Stop = append(r.Stop, "x")
		case 9:
			r.Extra["effort"] = extra + "x"
		case 10:
			r.Tenant += "x"
		case 11:
			// Move one byte between adjacent fields: length prefixes
			// must keep the keys apart.
			if msg == "" {
				return
			}
			r.System, r.Messages[0].Content = system+msg[:1], msg[1:]
		}
		if mustKey(t, r) == k {
			t.Fatalf("mutation %d did not change the key", which%12)
		}
	})
}
