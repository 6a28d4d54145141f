package sip

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rvoip/users-core/identity"
)

// ParseAlgorithms parses a comma-separated list of Digest algorithms in
// order of preference, such as "SHA-256,MD5".
func ParseAlgorithms(list string) ([]identity.DigestAlgorithm, error) {
	var out []identity.DigestAlgorithm
	seen := map[identity.DigestAlgorithm]bool{}
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		var alg identity.DigestAlgorithm
		for _, a := range identity.DigestAlgorithms {
			if strings.EqualFold(p, string(a)) {
				alg = a
			}
		}
		if alg == "" {
			return nil, fmt.Errorf("unknown Digest algorithm %q (known: SHA-512-256, SHA-256, MD5)", p)
		}
		if seen[alg] {
			return nil, fmt.Errorf("Digest algorithm %s listed twice", alg)
		}
		seen[alg] = true
		out = append(out, alg)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no Digest algorithm listed")
	}
	return out, nil
}

// ClientRule adjusts the challenge for the clients whose User-Agent
// matches: deployed phones are fragile with challenges (see the package
// README section on client rules). Algorithms, when set, replaces the
// algorithm list; Bearer, when set, turns the Bearer challenge on or off.
type ClientRule struct {
	Name       string
	UserAgent  *regexp.Regexp
	Algorithms []identity.DigestAlgorithm
	Bearer     *bool
}

// DefaultClientRules are the shipped rules for clients known to answer
// only MD5 and to give up at a challenge they cannot answer (or to read
// only the last challenge).
func DefaultClientRules() []ClientRule {
	off := false
	md5 := []identity.DigestAlgorithm{identity.MD5}
	return []ClientRule{
		// SIPp 3.x computes only MD5 and fails on any other algorithm.
		{Name: "sipp", UserAgent: regexp.MustCompile(`(?i)\bsipp\b`), Algorithms: md5, Bearer: &off},
		// sipsak computes only MD5.
		{Name: "sipsak", UserAgent: regexp.MustCompile(`(?i)^sipsak\b`), Algorithms: md5, Bearer: &off},
		// JsSIP reads only the last WWW-Authenticate and computes only MD5.
		{Name: "jssip", UserAgent: regexp.MustCompile(`(?i)\bJsSIP\b`), Algorithms: md5, Bearer: &off},
		// Linksys/Cisco SPA ATAs and phones compute only MD5.
		{Name: "cisco-spa", UserAgent: regexp.MustCompile(`(?i)\b(Linksys|Cisco)/SPA`), Algorithms: md5, Bearer: &off},
	}
}

// challengePlan is what one 401 offers.
type challengePlan struct {
	algorithms []identity.DigestAlgorithm
	bearer     bool
}

// fallbackMemory remembers which Call-IDs were challenged recently, so a
// client that comes back without credentials (it could not answer the
// first challenge: an MD5-only phone facing SHA-256 first) is offered the
// algorithms weakest first the next time. Bounded: when it holds max
// entries it drops the expired ones, then arbitrary ones down to half
// (amortized O(1) per call).
type fallbackMemory struct {
	mu   sync.Mutex
	max  int
	ttl  time.Duration
	seen map[string]time.Time
}

func newFallbackMemory(max int, ttl time.Duration) *fallbackMemory {
	return &fallbackMemory{max: max, ttl: ttl, seen: make(map[string]time.Time, 1024)}
}

// challenged records that key was challenged at now and reports whether it
// had already been challenged within the ttl.
func (f *fallbackMemory) challenged(key string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	prev, ok := f.seen[key]
	if !ok && len(f.seen) >= f.max {
		for k, t := range f.seen {
			if now.Sub(t) >= f.ttl {
				delete(f.seen, k)
			}
		}
		for k := range f.seen {
			if len(f.seen) < f.max/2 {
				break
			}
			delete(f.seen, k)
		}
	}
	f.seen[key] = now
	return ok && now.Sub(prev) < f.ttl
}

// reversed returns algs weakest first.
func reversed(algs []identity.DigestAlgorithm) []identity.DigestAlgorithm {
	out := make([]identity.DigestAlgorithm, len(algs))
	for i, a := range algs {
		out[len(algs)-1-i] = a
	}
	return out
}
