package jwks

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"sync"
	"testing"
	"time"
)

// RSA-2048 generation costs 50-200 ms (more under -race), so tests share a
// few keys from a lazily grown pool.
var keyPool struct {
	mu   sync.Mutex
	keys []*rsa.PrivateKey
}

// poolKey returns the i-th shared test key.
func poolKey(tb testing.TB, i int) *rsa.PrivateKey {
	tb.Helper()
	keyPool.mu.Lock()
	defer keyPool.mu.Unlock()
	for len(keyPool.keys) <= i {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			tb.Fatal(err)
		}
		keyPool.keys = append(keyPool.keys, k)
	}
	return keyPool.keys[i]
}

// keyGen hands out distinct pool keys in order, cycling over size keys;
// share one keyGen between Keyrings that must not generate the same key.
func keyGen(tb testing.TB, size int) func() (*rsa.PrivateKey, error) {
	var mu sync.Mutex
	n := 0
	return func() (*rsa.PrivateKey, error) {
		mu.Lock()
		defer mu.Unlock()
		k := poolKey(tb, n%size)
		n++
		return k, nil
	}
}

// fakeClock is a settable clock for everything that takes Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func testSealer(tb testing.TB) Sealer {
	tb.Helper()
	s, err := NewMemorySealer()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// testNode is one Keyring on a shared store, as one users-core node.
func newTestKeyring(tb testing.TB, store KeyStore, sealer Sealer, clock *fakeClock, gen func() (*rsa.PrivateKey, error)) *Keyring {
	tb.Helper()
	k, err := NewKeyring(context.Background(), KeyringConfig{
		Store: store, Sealer: sealer, Now: clock.Now, generateKey: gen,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

const (
	testIssuer   = "https://users.rvoip.local"
	testAudience = "rvoip-sip"
)

// accessClaims are the claims users-core puts in an access token issued at
// now.
func accessClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss":      testIssuer,
		"sub":      "user-1",
		"aud":      []string{"rvoip-api", testAudience},
		"exp":      now.Add(15 * time.Minute).Unix(),
		"iat":      now.Unix(),
		"nbf":      now.Unix(),
		"jti":      "tok-1",
		"username": "alice",
		"roles":    []string{"user"},
		"scope":    "openid sip.register",
	}
}

func newTestVerifier(tb testing.TB, keys KeySource, clock *fakeClock) *Verifier {
	tb.Helper()
	v, err := NewVerifier(VerifierConfig{
		Issuers: []IssuerConfig{{Name: "self", Issuer: testIssuer, Audience: testAudience, Keys: keys}},
		Now:     clock.Now,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// compact builds a compact JWS from header and claims, signed by sign over
// the signing input (nil sign: empty signature).
func compact(tb testing.TB, header, claims any, sign func(input []byte) []byte) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + b64.EncodeToString(sig)
}

// rs256 signs with priv.
func rs256(tb testing.TB, priv *rsa.PrivateKey) func([]byte) []byte {
	return func(input []byte) []byte {
		sum := sha256.Sum256(input)
		sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, sum[:])
		if err != nil {
			tb.Fatal(err)
		}
		return sig
	}
}

// signingKey returns the private key a Keyring signs with now.
func signingKey(tb testing.TB, k *Keyring) (*rsa.PrivateKey, string) {
	tb.Helper()
	vk := k.view.Load().signer(k.now())
	if vk == nil {
		tb.Fatal("no signing key")
	}
	return vk.priv, vk.stored.KID
}

// headerKID returns the kid in a token's header (no verification).
func headerKID(tb testing.TB, token string) string {
	tb.Helper()
	hdr, err := decodeObject(token[:indexDot(token)])
	if err != nil {
		tb.Fatal(err)
	}
	kid, _ := hdr["kid"].(string)
	return kid
}

func indexDot(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return i
		}
	}
	return len(s)
}

func mustSign(tb testing.TB, k *Keyring, claims any) string {
	tb.Helper()
	tok, err := k.SignJWT("at+jwt", claims)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func docKIDs(d Document) []string {
	var out []string
	for _, j := range d.Keys {
		out = append(out, j.Kid)
	}
	return out
}

func parsePKIX(der []byte) (*rsa.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, err
	}
	return k.(*rsa.PublicKey), nil
}
