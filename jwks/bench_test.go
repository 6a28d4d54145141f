package jwks

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"testing"
)

// Benchmarks of the token hot paths. BenchmarkRSAVerifyRaw is the ceiling:
// one RSA-2048 PKCS#1 v1.5 verification and nothing else.

func BenchmarkSignJWT(b *testing.B) {
	clock := newClock()
	k := newTestKeyring(b, NewMemoryKeyStore(), testSealer(b), clock, keyGen(b, 4))
	claims := accessClaims(clock.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.SignJWT("at+jwt", claims); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyLocal verifies access tokens of our own keyring: "full"
// with the cache of verified tokens off (every call an RSA verification,
// compare with BenchmarkRSAVerifyRaw), "cached" with 1,000 clients each
// presenting its own token again (the cache's steady state).
func BenchmarkVerifyLocal(b *testing.B) {
	for _, bc := range []struct {
		name      string
		cacheSize int
	}{{"full", -1}, {"cached", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			clock := newClock()
			k := newTestKeyring(b, NewMemoryKeyStore(), testSealer(b), clock, keyGen(b, 4))
			v, err := NewVerifier(VerifierConfig{
				Issuers:   []IssuerConfig{{Name: "self", Issuer: testIssuer, Audience: testAudience, Keys: k}},
				Now:       clock.Now,
				CacheSize: bc.cacheSize,
			})
			if err != nil {
				b.Fatal(err)
			}
			toks := make([]string, 1000)
			for i := range toks {
				c := accessClaims(clock.Now())
				c["jti"] = fmt.Sprint("tok-", i)
				toks[i] = mustSign(b, k, c)
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, toks[i%len(toks)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkVerifyRemoteCached(b *testing.B) {
	ctx := context.Background()
	key := poolKey(b, 0)
	fi := newFakeIssuer(b, key)
	clock := newClock()
	r := fi.remote(clock)
	if err := r.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{Now: clock.Now, Issuers: []IssuerConfig{{Issuer: fi.srv.URL, Audience: testAudience, Keys: r}}})
	if err != nil {
		b.Fatal(err)
	}
	claims := accessClaims(clock.Now())
	claims["iss"] = fi.srv.URL
	tok := compact(b, map[string]any{"alg": "RS256", "kid": kidOf(key), "typ": "at+jwt"}, claims, rs256(b, key))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	if n := fi.jwksHits.Load(); n != 1 {
		b.Fatalf("%d fetches during the benchmark", n)
	}
}

func BenchmarkRSAVerifyRaw(b *testing.B) {
	key := poolKey(b, 0)
	sum := sha256.Sum256([]byte("header.payload"))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		b.Fatal(err)
	}
	pub := &key.PublicKey
	b.ReportAllocs()
	for b.Loop() {
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRSASignRaw is the floor of SignJWT: one RSA-2048 PKCS#1 v1.5
// signature.
func BenchmarkRSASignRaw(b *testing.B) {
	key := poolKey(b, 0)
	sum := sha256.Sum256([]byte("header.payload"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:]); err != nil {
			b.Fatal(err)
		}
	}
}
