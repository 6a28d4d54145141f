package jwks

import (
	"context"
	"crypto"
	"crypto/rsa"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// swapSource serves one RSA key for every kid until it is swapped; a nil
// key is an unknown kid. It counts lookups.
type swapSource struct {
	key     atomic.Pointer[rsa.PublicKey]
	lookups atomic.Int64
}

func (s *swapSource) Key(context.Context, string) (crypto.PublicKey, string, error) {
	s.lookups.Add(1)
	k := s.key.Load()
	if k == nil {
		return nil, "", ErrUnknownKey
	}
	return k, AlgRS256, nil
}

func cacheVerifier(t *testing.T, src KeySource, clock *fakeClock, size int) *Verifier {
	t.Helper()
	v, err := NewVerifier(VerifierConfig{
		Issuers:   []IssuerConfig{{Name: "self", Issuer: testIssuer, Audience: testAudience, Keys: src}},
		Now:       clock.Now,
		CacheSize: size,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVerifierCacheHitsOnlyTheIdenticalToken: a remembered token gives the
// same claims again, and a token made of its signature with another
// payload is still refused: the cache is keyed by the whole token.
func TestVerifierCacheHitsOnlyTheIdenticalToken(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	priv := poolKey(t, 0)
	src := &swapSource{}
	src.key.Store(&priv.PublicKey)
	v := cacheVerifier(t, src, clock, 0)
	hdr := map[string]any{"alg": "RS256", "kid": "k1", "typ": "at+jwt"}
	tok := compact(t, hdr, accessClaims(clock.Now()), rs256(t, priv))

	first, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	first.Subject = "changed by the caller" // must not reach the cache
	again, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if again.Subject != "user-1" || again.Username != "alice" || !again.HasScope("sip.register") {
		t.Fatalf("cached claims differ: %+v", again)
	}
	if n := v.cache.len(); n != 1 {
		t.Fatalf("cache holds %d tokens, want 1", n)
	}

	// Same header and signature, another payload.
	forged := accessClaims(clock.Now())
	forged["sub"] = "admin"
	parts := strings.Split(tok, ".")
	other := strings.Split(compact(t, hdr, forged, nil), ".")
	if _, err := v.Verify(ctx, parts[0]+"."+other[1]+"."+parts[2]); ReasonOf(err) != ReasonSignature {
		t.Fatalf("forged payload with a cached token's signature: %v, want %s", err, ReasonSignature)
	}
}

// TestVerifierCacheRechecksKeyAndTime: a remembered token stops passing
// when its key leaves the key source or is replaced, and when it expires.
func TestVerifierCacheRechecksKeyAndTime(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	priv, other := poolKey(t, 0), poolKey(t, 1)
	src := &swapSource{}
	src.key.Store(&priv.PublicKey)
	v := cacheVerifier(t, src, clock, 0)
	tok := compact(t, map[string]any{"alg": "RS256", "kid": "k1", "typ": "at+jwt"}, accessClaims(clock.Now()), rs256(t, priv))
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}

	src.key.Store(nil) // the key is withdrawn
	if _, err := v.Verify(ctx, tok); ReasonOf(err) != ReasonUnknownKey {
		t.Fatalf("after the key was removed: %v, want %s", err, ReasonUnknownKey)
	}
	src.key.Store(&other.PublicKey) // another key under the same kid
	if _, err := v.Verify(ctx, tok); ReasonOf(err) != ReasonSignature {
		t.Fatalf("after the key was replaced: %v, want %s", err, ReasonSignature)
	}
	src.key.Store(&priv.PublicKey)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("with the key back: %v", err)
	}
	clock.Advance(15*time.Minute + DefaultLeeway)
	if _, err := v.Verify(ctx, tok); ReasonOf(err) != ReasonExpired {
		t.Fatalf("after expiry: %v, want %s", err, ReasonExpired)
	}
}

// TestVerifierCacheIsBounded: the cache never holds more than CacheSize
// tokens, and CacheSize < 0 turns it off.
func TestVerifierCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	priv := poolKey(t, 0)
	src := &swapSource{}
	src.key.Store(&priv.PublicKey)
	v := cacheVerifier(t, src, clock, 3)
	var toks []string
	for i := range 7 {
		c := accessClaims(clock.Now())
		c["jti"] = fmt.Sprint("tok-", i)
		toks = append(toks, compact(t, map[string]any{"alg": "RS256", "kid": "k1", "typ": "at+jwt"}, c, rs256(t, priv)))
		if _, err := v.Verify(ctx, toks[i]); err != nil {
			t.Fatal(err)
		}
		if n := v.cache.len(); n > 3 {
			t.Fatalf("cache holds %d tokens, bound 3", n)
		}
	}
	for _, tok := range toks { // evicted ones verify in full again
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	off := cacheVerifier(t, src, clock, -1)
	if _, err := off.Verify(ctx, toks[0]); err != nil || off.cache != nil {
		t.Fatalf("CacheSize -1: err %v, cache %v", err, off.cache)
	}
}
