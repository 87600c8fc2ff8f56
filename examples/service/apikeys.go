package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/llmkit/llmkit/llm"
)

// keyring holds the API keys /generate accepts, as SHA-256 digests only:
// the keys themselves are dropped once read, so neither a heap dump nor a
// log line can show them.
type keyring struct {
	keys []apiKey
	// limits are the per-tenant request and token limits, for the tenants
	// that have any.
	limits map[string]keyLimits
}

type apiKey struct {
	digest [sha256.Size]byte
	tenant string
}

// keyLimits are one tenant's limits per minute; 0 is no limit.
type keyLimits struct{ RPM, TPM int }

// loadKeys reads keys from inline (LLMKIT_API_KEYS: entries separated by
// commas) and from the file at path (LLMKIT_API_KEYS_FILE: one entry per
// line, # starts a comment). An entry is
//
//	<key> <tenant> [rpm] [tpm]
//
// separated by spaces: the key, the tenant it acts for (its cache scope),
// and its limits per minute (0 or absent: none). Keys of one tenant share
// its limits, so they must state the same ones. No keys at all: nil.
// Errors name the entry by position, never by its key.
func loadKeys(inline, path string) (*keyring, error) {
	kr := &keyring{limits: map[string]keyLimits{}}
	seen := map[string]keyLimits{}
	add := func(where, entry string) error {
		f := strings.Fields(entry)
		if len(f) == 0 {
			return nil
		}
		if len(f) < 2 || len(f) > 4 {
			return fmt.Errorf("%s: want <key> <tenant> [rpm] [tpm]", where)
		}
		var lim keyLimits
		for i, to := range []*int{&lim.RPM, &lim.TPM} {
			if len(f) > 2+i {
				n, err := strconv.Atoi(f[2+i])
				if err != nil || n < 0 {
					return fmt.Errorf("%s: the limits are whole numbers per minute, 0 for none", where)
				}
				*to = n
			}
		}
		d := sha256.Sum256([]byte(f[0]))
		for _, k := range kr.keys {
			if k.digest == d {
				return fmt.Errorf("%s: the same key is listed twice", where)
			}
		}
		tenant := f[1]
		if prev, ok := seen[tenant]; ok && prev != lim {
			return fmt.Errorf("%s: tenant %q's keys state different limits; a tenant's keys share its limits", where, tenant)
		}
		seen[tenant] = lim
		if lim != (keyLimits{}) {
			kr.limits[tenant] = lim
		}
		kr.keys = append(kr.keys, apiKey{digest: d, tenant: tenant})
		return nil
	}
	for i, e := range strings.Split(inline, ",") {
		if err := add(fmt.Sprintf("LLMKIT_API_KEYS entry %d", i+1), e); err != nil {
			return nil, err
		}
	}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("LLMKIT_API_KEYS_FILE: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line, _, _ := strings.Cut(sc.Text(), "#")
			if err := add(fmt.Sprintf("LLMKIT_API_KEYS_FILE line %d", n), line); err != nil {
				return nil, err
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("LLMKIT_API_KEYS_FILE: %w", err)
		}
	}
	if len(kr.keys) == 0 {
		if path != "" {
			return nil, errors.New("LLMKIT_API_KEYS_FILE holds no key")
		}
		return nil, nil
	}
	return kr, nil
}

// tenantFor returns the tenant of the key presented, if it is one of the
// ring's. Every stored digest is compared, in constant time, whatever
// matched before: how long this takes says nothing about which key, or
// how much of one, was right.
func (kr *keyring) tenantFor(presented string) (string, bool) {
	d := sha256.Sum256([]byte(presented))
	match := -1
	for i := range kr.keys {
		if subtle.ConstantTimeCompare(d[:], kr.keys[i].digest[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return "", false
	}
	return kr.keys[match].tenant, true
}

// presentedKey is the key a request carries: X-API-Key, or else the
// token of an "Authorization: Bearer" header.
func presentedKey(r *http.Request) string {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return k
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(token)
	}
	return ""
}

type tenantKey struct{}

// requireKey lets through requests that carry one of kr's keys, with the
// key's tenant on their context (tenantOf), and answers 401 to the
// others. The key is neither logged nor echoed.
func (kr *keyring) requireKey(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenant, ok := kr.tenantFor(presentedKey(r))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="llmkit"`)
			writeError(w, http.StatusUnauthorized, &llm.Error{Kind: llm.KindAuth, Provider: "service",
				Message: "missing or unknown API key (send X-API-Key or Authorization: Bearer)"})
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, tenant)))
	}
}

// tenantOf returns the tenant requireKey found for the request's key.
func tenantOf(ctx context.Context) (string, bool) {
	t, ok := ctx.Value(tenantKey{}).(string)
	return t, ok
}
