package jwks

import (
	"crypto/rsa"
	"crypto/sha256"
	"sync"
	"time"
)

// DefaultCacheSize is how many verified tokens a Verifier remembers when
// VerifierConfig.CacheSize is zero.
const DefaultCacheSize = 10_000

// verifiedCache remembers tokens whose signature verified, so that a
// client presenting the same access token again (every REGISTER refresh of
// a WebRTC phone, every API call of a session) costs a hash and a map
// lookup instead of an RSA verification.
//
// An entry is keyed by the SHA-256 of the whole token, so nothing but the
// identical token matches it; it holds the claims and the key that
// verified them. A hit is re-checked on every use: the key must still be
// the one the issuer's key source returns for the kid (a key removed from
// the keyring or from a remote JWKS stops its tokens at once), and the
// time claims must still hold at now. Only successes are cached: a refused
// token is verified in full each time, so a changed key set or clock can
// never turn a cached refusal into a wrong answer.
//
// The cache holds at most max entries; when full, the oldest entry goes
// (a ring of insertion order), so its memory is bounded: about 100 bytes
// per entry beside the claims, which the caller's Claims share.
type verifiedCache struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]*verifiedEntry
	ring    [][sha256.Size]byte // insertion order; next is the slot to fill
	next    int
}

type verifiedEntry struct {
	claims *Claims
	iss    *issuer
	kid    string
	key    *rsa.PublicKey
}

func newVerifiedCache(max int) *verifiedCache {
	if max <= 0 {
		return nil
	}
	return &verifiedCache{max: max, entries: make(map[[sha256.Size]byte]*verifiedEntry, min(max, 1024))}
}

func (c *verifiedCache) get(sum [sha256.Size]byte) *verifiedEntry {
	c.mu.Lock()
	e := c.entries[sum]
	c.mu.Unlock()
	return e
}

func (c *verifiedCache) put(sum [sha256.Size]byte, e *verifiedEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[sum]; ok {
		c.entries[sum] = e
		return
	}
	if len(c.ring) < c.max {
		c.ring = append(c.ring, sum)
	} else {
		delete(c.entries, c.ring[c.next])
		c.ring[c.next] = sum
		c.next = (c.next + 1) % c.max
	}
	c.entries[sum] = e
}

func (c *verifiedCache) drop(sum [sha256.Size]byte) {
	c.mu.Lock()
	delete(c.entries, sum) // its ring slot is reused in turn
	c.mu.Unlock()
}

func (c *verifiedCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// stillValid re-checks the time claims of cached claims at now, with the
// verifier's leeway, exactly as checkClaims does.
func (v *Verifier) stillValid(c *Claims, now time.Time) bool {
	if !now.Before(c.ExpiresAt.Add(v.leeway)) {
		return false
	}
	if !c.NotBefore.IsZero() && c.NotBefore.After(now.Add(v.leeway)) {
		return false
	}
	return c.IssuedAt.IsZero() || !c.IssuedAt.After(now.Add(v.leeway))
}
