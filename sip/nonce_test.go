package sip

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
)

// nonceTestClock is a settable clock for tests.
type nonceTestClock struct {
	mu sync.Mutex
	t  time.Time
}

func newNonceTestClock() *nonceTestClock {
	return &nonceTestClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *nonceTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *nonceTestClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testNonceSecret(tb testing.TB, b byte) []byte {
	tb.Helper()
	return bytes.Repeat([]byte{b}, 32)
}

var digestTestAlgs = []identity.DigestAlgorithm{identity.MD5, identity.SHA256, identity.SHA512256}

func TestNonceIsShortAndURLSafe(t *testing.T) {
	k := NewNonceKeeper(testNonceSecret(t, 1), 0, nil)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		n := k.New("example.com", identity.SHA256)
		// 40 characters: three challenges of ~110 bytes fit a 401 on UDP.
		if len(n) != NonceLen || NonceLen > 48 {
			t.Fatalf("len(%q) = %d, want %d (<= 48)", n, len(n), NonceLen)
		}
		if strings.Trim(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("nonce %q has characters outside base64url", n)
		}
		if seen[n] {
			t.Fatalf("nonce %q issued twice", n)
		}
		seen[n] = true
	}
	if k.Lifetime() != 5*time.Minute {
		t.Errorf("default lifetime = %v", k.Lifetime())
	}
}

func TestNonceCheck(t *testing.T) {
	clock := newNonceTestClock()
	k := NewNonceKeeper(testNonceSecret(t, 1), time.Minute, clock.Now)

	t.Run("a fresh nonce is valid for its realm and algorithm", func(t *testing.T) {
		for _, alg := range digestTestAlgs {
			if got := k.Check(k.New("example.com", alg), "example.com", alg); got != NonceValid {
				t.Errorf("%s: %v", alg, got)
			}
		}
	})
	t.Run("a nonce is valid until its lifetime and stale from then on", func(t *testing.T) {
		c := newNonceTestClock()
		k := NewNonceKeeper(testNonceSecret(t, 1), time.Minute, c.Now)
		n := k.New("example.com", identity.MD5)
		c.Advance(59 * time.Second)
		if got := k.Check(n, "example.com", identity.MD5); got != NonceValid {
			t.Fatalf("after 59s: %v", got)
		}
		c.Advance(time.Second)
		if got := k.Check(n, "example.com", identity.MD5); got != NonceStale {
			t.Fatalf("after 60s: %v", got)
		}
		c.Advance(time.Hour)
		if got := k.Check(n, "example.com", identity.MD5); got != NonceStale {
			t.Fatalf("after an hour: %v", got)
		}
	})
	t.Run("a nonce from a node with a slightly fast clock is valid", func(t *testing.T) {
		ahead := newNonceTestClock()
		ahead.Advance(5 * time.Second)
		other := NewNonceKeeper(testNonceSecret(t, 1), time.Minute, ahead.Now)
		if got := k.Check(other.New("example.com", identity.MD5), "example.com", identity.MD5); got != NonceValid {
			t.Fatalf("%v", got)
		}
	})
	t.Run("a nonce issued beyond the skew in the future is stale", func(t *testing.T) {
		ahead := newNonceTestClock()
		ahead.Advance(30 * time.Second)
		other := NewNonceKeeper(testNonceSecret(t, 1), time.Minute, ahead.Now)
		if got := k.Check(other.New("example.com", identity.MD5), "example.com", identity.MD5); got != NonceStale {
			t.Fatalf("%v", got)
		}
	})
	t.Run("any changed character makes a nonce invalid", func(t *testing.T) {
		n := k.New("example.com", identity.SHA256)
		for i := 0; i < len(n); i++ {
			b := []byte(n)
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			if got := k.Check(string(b), "example.com", identity.SHA256); got != NonceInvalid {
				t.Errorf("character %d changed: %v", i, got)
			}
		}
	})
	t.Run("a nonce for another realm is invalid", func(t *testing.T) {
		n := k.New("example.com", identity.SHA256)
		for _, realm := range []string{"example.org", "EXAMPLE.COM", "example.com.", ""} {
			if got := k.Check(n, realm, identity.SHA256); got != NonceInvalid {
				t.Errorf("realm %q: %v", realm, got)
			}
		}
	})
	t.Run("answering with another algorithm (a downgrade) is invalid", func(t *testing.T) {
		for _, issued := range digestTestAlgs {
			n := k.New("example.com", issued)
			for _, answered := range append(digestTestAlgs, "MD5-sess", "") {
				if answered == issued {
					continue
				}
				if got := k.Check(n, "example.com", answered); got != NonceInvalid {
					t.Errorf("issued for %s, answered with %s: %v", issued, answered, got)
				}
			}
		}
	})
	t.Run("a nonce issued for an unknown algorithm never checks", func(t *testing.T) {
		n := k.New("example.com", "SHA-1")
		for _, alg := range append(digestTestAlgs, "SHA-1") {
			if got := k.Check(n, "example.com", alg); got != NonceInvalid {
				t.Errorf("%s: %v", alg, got)
			}
		}
	})
	t.Run("two nodes with the same secret accept each other's nonces", func(t *testing.T) {
		node2 := NewNonceKeeper(testNonceSecret(t, 1), time.Minute, clock.Now)
		if got := node2.Check(k.New("example.com", identity.SHA256), "example.com", identity.SHA256); got != NonceValid {
			t.Errorf("node2 on node1's nonce: %v", got)
		}
		if got := k.Check(node2.New("example.com", identity.MD5), "example.com", identity.MD5); got != NonceValid {
			t.Errorf("node1 on node2's nonce: %v", got)
		}
	})
	t.Run("a keeper with another secret refuses the nonce", func(t *testing.T) {
		other := NewNonceKeeper(testNonceSecret(t, 2), time.Minute, clock.Now)
		if got := other.Check(k.New("example.com", identity.SHA256), "example.com", identity.SHA256); got != NonceInvalid {
			t.Errorf("%v", got)
		}
	})
	t.Run("garbage is invalid", func(t *testing.T) {
		for _, s := range []string{"", "x", strings.Repeat("A", NonceLen), strings.Repeat("=", NonceLen),
			strings.Repeat("A", NonceLen-1) + "=", strings.Repeat("/", NonceLen), k.New("example.com", identity.MD5) + "A"} {
			if got := k.Check(s, "example.com", identity.MD5); got != NonceInvalid {
				t.Errorf("%q: %v", s, got)
			}
		}
	})
	t.Run("the caller's secret slice may be reused", func(t *testing.T) {
		secret := testNonceSecret(t, 3)
		k := NewNonceKeeper(secret, time.Minute, clock.Now)
		n := k.New("r", identity.MD5)
		secret[0] = 9
		if got := k.Check(n, "r", identity.MD5); got != NonceValid {
			t.Errorf("%v", got)
		}
	})
}

// poolKeepsItems reports whether sync.Pool reuses what is put back; the
// race detector makes it drop items at random, so allocation counts of
// pooled code mean nothing then.
func poolKeepsItems() bool {
	p := sync.Pool{New: func() any { return new([64]byte) }}
	return testing.AllocsPerRun(10, func() {
		for i := 0; i < 100; i++ {
			p.Put(p.Get())
		}
	}) == 0
}

func TestNonceCheckDoesNotAllocate(t *testing.T) {
	if !poolKeepsItems() {
		t.Skip("sync.Pool drops items in this build (race detector)")
	}
	k := NewNonceKeeper(testNonceSecret(t, 1), time.Minute, nil)
	n := k.New("example.com", identity.SHA256)
	if a := testing.AllocsPerRun(100, func() { k.Check(n, "example.com", identity.SHA256) }); a != 0 {
		t.Errorf("Check allocates %v times", a)
	}
	if a := testing.AllocsPerRun(100, func() { k.Check("garbage", "example.com", identity.SHA256) }); a != 0 {
		t.Errorf("Check of garbage allocates %v times", a)
	}
}

func TestNonceIssuedAt(t *testing.T) {
	clock := newNonceTestClock()
	k := NewNonceKeeper(testNonceSecret(t, 1), time.Minute, clock.Now)
	at, ok := k.IssuedAt(k.New("r", identity.MD5))
	if !ok || !at.Equal(clock.Now()) {
		t.Errorf("IssuedAt = %v, %v; want %v", at, ok, clock.Now())
	}
	if _, ok := k.IssuedAt("not a nonce"); ok {
		t.Error("IssuedAt accepted garbage")
	}
}

func TestNewNonceKeeperRefusesAShortSecret(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a 31-byte secret")
		}
	}()
	NewNonceKeeper(make([]byte, 31), 0, nil)
}

func TestNonceStatusString(t *testing.T) {
	if NonceValid.String() != "valid" || NonceStale.String() != "stale" || NonceInvalid.String() != "invalid" || NonceStatus(9).String() != "invalid" {
		t.Error("NonceStatus strings")
	}
}

func FuzzNonceCheck(f *testing.F) {
	other := NewNonceKeeper(testNonceSecret(f, 7), 0, nil)
	for _, s := range []string{
		"", "A", strings.Repeat("A", NonceLen), strings.Repeat("_", NonceLen), strings.Repeat("A", NonceLen+1),
		"AQAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", other.New("example.com", identity.MD5),
		other.New("example.com", identity.SHA512256), "AQ==AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	} {
		f.Add(s, "example.com")
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // unknown to the fuzzer: no input may check
	k := NewNonceKeeper(secret, time.Hour, nil)
	f.Fuzz(func(t *testing.T, nonce, realm string) {
		for _, alg := range append(digestTestAlgs, "") {
			if got := k.Check(nonce, realm, alg); got == NonceValid || got == NonceStale {
				t.Fatalf("Check(%q, %q, %s) = %v", nonce, realm, alg, got)
			}
		}
		if at, ok := k.IssuedAt(nonce); ok && len(nonce) != NonceLen {
			t.Fatalf("IssuedAt accepted %q (%v)", nonce, at)
		}
	})
}

func BenchmarkNonceNew(b *testing.B) {
	k := NewNonceKeeper(testNonceSecret(b, 1), 0, nil)
	b.ReportAllocs()
	for b.Loop() {
		k.New("example.com", identity.SHA256)
	}
}

func BenchmarkNonceCheck(b *testing.B) {
	k := NewNonceKeeper(testNonceSecret(b, 1), 0, nil)
	n := k.New("example.com", identity.SHA256)
	b.ReportAllocs()
	for b.Loop() {
		if k.Check(n, "example.com", identity.SHA256) != NonceValid {
			b.Fatal("invalid")
		}
	}
}

// --- ReplayGuard ---

func TestReplayGuardNonceCounts(t *testing.T) {
	clock := newNonceTestClock()
	g := NewReplayGuard(0, WithReplayClock(clock.Now))
	exp := clock.Now().Add(5 * time.Minute)
	steps := []struct {
		name  string
		nonce string
		nc    uint32
		want  bool
	}{
		{"the first use of a nonce is accepted", "n1", 1, true},
		{"the same nc again is a replay", "n1", 1, false},
		{"a higher nc on refresh is accepted", "n1", 2, true},
		{"a jump in nc is accepted", "n1", 10, true},
		{"a lower nc is refused", "n1", 9, false},
		{"another nonce is tracked on its own", "n2", 1, true},
		{"nc 0 is refused (counts start at 1)", "n3", 0, false},
		{"the largest nc is accepted once", "n1", ^uint32(0), true},
		{"nothing is above the largest nc", "n1", ^uint32(0), false},
	}
	for _, s := range steps {
		if got := g.Use(s.nonce, s.nc, exp); got != s.want {
			t.Errorf("%s: Use(%q, %d) = %v", s.name, s.nonce, s.nc, got)
		}
	}
	if g.Len() != 2 {
		t.Errorf("Len = %d, want 2", g.Len())
	}
	if g.Use("n4", 1, clock.Now()) {
		t.Error("a nonce expiring now was accepted")
	}
	if g.Use("n4", 1, clock.Now().Add(-time.Second)) {
		t.Error("an expired nonce was accepted")
	}
}

func TestReplayGuardExpiryFreesEntries(t *testing.T) {
	clock := newNonceTestClock()
	g := NewReplayGuard(1000, WithReplayClock(clock.Now))
	for i := 0; i < 500; i++ {
		if !g.Use(fmt.Sprint("nonce", i), 1, clock.Now().Add(time.Duration(1+i%60)*time.Second)) {
			t.Fatalf("use %d refused", i)
		}
	}
	if g.Len() != 500 {
		t.Fatalf("Len = %d, want 500", g.Len())
	}
	clock.Advance(31 * time.Second)
	if n := g.Len(); n >= 500 || n == 0 {
		t.Fatalf("after 31 s Len = %d, want some expired", n)
	}
	clock.Advance(31 * time.Second)
	if n := g.Len(); n != 0 {
		t.Fatalf("after 62 s Len = %d, want 0", n)
	}
	// A swept nonce is not re-admitted: it has expired.
	if g.Use("nonce0", 2, clock.Now().Add(-time.Minute)) {
		t.Error("an expired, swept nonce was accepted")
	}
	if !g.Use("fresh", 1, clock.Now().Add(time.Minute)) || g.Len() != 1 {
		t.Error("the guard does not work after a full sweep")
	}
}

func TestReplayGuardCapacityBound(t *testing.T) {
	for _, max := range []int{1, 100, 1000, 5000} {
		t.Run(fmt.Sprintf("max %d under 1e5 inserts", max), func(t *testing.T) {
			clock := newNonceTestClock()
			g := NewReplayGuard(max, WithReplayClock(clock.Now))
			base := clock.Now()
			for i := 0; i < 100_000; i++ {
				if i%1000 == 0 {
					clock.Advance(time.Second)
				}
				// Expiries spread over five minutes, not in insertion order.
				exp := base.Add(5*time.Minute + time.Duration(i*7919%300)*time.Second)
				g.Use(fmt.Sprint("n", i), 1, exp)
				if i%97 == 0 {
					g.FirstFailure(fmt.Sprint("n", i), "r", exp)
				}
				if i%100 == 0 || i > 99_900 {
					if n := g.Len(); n > max {
						t.Fatalf("after %d inserts Len = %d > %d", i+1, n, max)
					}
				}
			}
			if max >= 1000 && g.Len() < max*9/10 {
				t.Errorf("Len = %d: capacity %d badly used", g.Len(), max)
			}
			for i := range g.shards {
				if n := len(g.shards[i].fail.m); n > max {
					t.Fatalf("failure table holds %d > %d", n, max)
				}
			}
		})
	}
}

func TestReplayGuardEvictsClosestToExpiryAndFailsClosed(t *testing.T) {
	clock := newNonceTestClock()
	g := NewReplayGuard(256, WithReplayClock(clock.Now)) // one shard of 256
	if len(g.shards) != 1 {
		t.Fatalf("%d shards", len(g.shards))
	}
	now := clock.Now()
	for i := 0; i < 256; i++ {
		g.Use(fmt.Sprint("n", i), 1, now.Add(time.Duration(10+i)*time.Second))
	}
	// Full: the next insert evicts n0, the entry closest to expiry.
	if !g.Use("late", 1, now.Add(time.Hour)) {
		t.Fatal("insert into a full guard refused")
	}
	if g.Len() != 256 {
		t.Fatalf("Len = %d", g.Len())
	}
	if g.Use("n0", 2, now.Add(10*time.Second)) {
		t.Error("the evicted nonce was accepted again: replay window")
	}
	if g.Use("never-seen", 1, now.Add(10*time.Second)) {
		t.Error("an unknown nonce expiring no later than an evicted one was accepted")
	}
	if !g.Use("n1", 2, now.Add(11*time.Second)) {
		t.Error("a tracked nonce lost its entry")
	}
	if g.Use("n1", 2, now.Add(11*time.Second)) {
		t.Error("a replay of a tracked nonce was accepted")
	}
}

func TestReplayGuardConcurrentUse(t *testing.T) {
	clock := newNonceTestClock()
	g := NewReplayGuard(10_000, WithReplayClock(clock.Now))
	exp := clock.Now().Add(time.Minute)
	const nonces, counts, workers = 50, 200, 8
	var accepted [nonces][counts + 1]atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for nc := uint32(1); nc <= counts; nc++ {
				for n := 0; n < nonces; n++ {
					if g.Use(fmt.Sprint("nonce-", n), nc, exp) {
						accepted[n][nc].Add(1)
					}
				}
				g.FirstFailure(fmt.Sprint("nonce-", w), "resp", exp)
				if nc%50 == 0 {
					_ = g.Len()
				}
			}
		}(w)
	}
	wg.Wait()
	for n := range accepted {
		for nc := range accepted[n] {
			if c := accepted[n][nc].Load(); c > 1 {
				t.Fatalf("nonce %d nc %d accepted %d times", n, nc, c)
			}
		}
		if accepted[n][counts].Load() != 1 {
			t.Errorf("nonce %d: the highest nc was never accepted", n)
		}
	}
}

func TestReplayGuardFirstFailure(t *testing.T) {
	clock := newNonceTestClock()
	g := NewReplayGuard(0, WithReplayClock(clock.Now))
	exp := clock.Now().Add(5 * time.Minute)
	if !g.FirstFailure("n1", "bad", exp) {
		t.Fatal("first failure not reported")
	}
	for i := 0; i < 5; i++ {
		if g.FirstFailure("n1", "bad", exp) {
			t.Fatal("a retried failure was reported again")
		}
	}
	if !g.FirstFailure("n1", "worse", exp) {
		t.Error("another response to the same nonce is another failure")
	}
	if !g.FirstFailure("n2", "bad", exp) {
		t.Error("the same response to another nonce is another failure")
	}
	// The pair encoding is unambiguous.
	if !g.FirstFailure("n1b", "ad", exp) {
		t.Error(`("n1b","ad") collided with ("n1","bad")`)
	}
	t.Run("a failure on an expired nonce is still counted once", func(t *testing.T) {
		past := clock.Now().Add(-time.Hour)
		if !g.FirstFailure("old", "x", past) || g.FirstFailure("old", "x", past) {
			t.Error("want true then false")
		}
	})
	t.Run("marks go when they expire", func(t *testing.T) {
		clock.Advance(6 * time.Minute)
		if !g.FirstFailure("n1", "bad", exp) {
			t.Error("an expired mark still suppressed a failure")
		}
	})
}

// TestReplayGuardMemory measures the bytes per nc entry stated in the
// ReplayGuard comment.
func TestReplayGuardMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("memory measurement")
	}
	const n = 200_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = replayTestKey(i)
	}
	clock := newNonceTestClock()
	exp := clock.Now().Add(5 * time.Minute)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g := NewReplayGuard(n, WithReplayClock(clock.Now))
	for i, k := range keys {
		g.Use(k, 1, exp.Add(time.Duration(i%300)*time.Second))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(g.Len())
	t.Logf("%d entries, %.0f bytes per entry", g.Len(), per)
	if per > 120 {
		t.Errorf("%.0f bytes per entry, the comment says about 56 (up to ~2x)", per)
	}
	runtime.KeepAlive(g)
	runtime.KeepAlive(keys)
}

func replayTestKey(i int) string { return fmt.Sprintf("%040d", i) }

func BenchmarkReplayGuardUse(b *testing.B) {
	g := NewReplayGuard(0)
	exp := time.Now().Add(time.Hour)
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = replayTestKey(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		g.Use(keys[i&(len(keys)-1)], uint32(i>>16)+1, exp)
		i++
	}
}
