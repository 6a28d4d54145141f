package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
)

func userKey(name string) identity.AttemptKey {
	return identity.AttemptKey{Kind: identity.AttemptUser, Value: name}
}

func addrKey(addr string) identity.AttemptKey {
	return identity.AttemptKey{Kind: identity.AttemptAddr, Value: addr}
}

// mustFail records a failure for key at at and returns the count since.
func mustFail(t testing.TB, s Store, key identity.AttemptKey, at, since time.Time) int {
	t.Helper()
	n, err := s.RecordFailure(context.Background(), key, at, since)
	if err != nil {
		t.Fatalf("RecordFailure(%v): %v", key, err)
	}
	return n
}

func mustLock(t testing.TB, s Store, key identity.AttemptKey, until time.Time) {
	t.Helper()
	if err := s.Lock(context.Background(), key, until); err != nil {
		t.Fatalf("Lock(%v): %v", key, err)
	}
}

// checkLockedUntil fails t unless LockedUntil(keys, now) is want.
func checkLockedUntil(t testing.TB, s Store, what string, keys []identity.AttemptKey, now, want time.Time) {
	t.Helper()
	got, err := s.LockedUntil(context.Background(), keys, now)
	if err != nil {
		t.Fatalf("%s: LockedUntil: %v", what, err)
	}
	if !got.Equal(want) || got.IsZero() != want.IsZero() {
		t.Errorf("%s: LockedUntil = %v, want %v", what, got, want)
	}
}

var attemptTests = []subtest{
	{"counts only failures at or after since", func(t *testing.T, s Store) {
		k := userKey("alice")
		for i, want := range []int{1, 2, 3} {
			if n := mustFail(t, s, k, base.Add(time.Duration(i)*time.Minute), base); n != want {
				t.Errorf("failure %d: count %d, want %d", i+1, n, want)
			}
		}
		// Failures at base, base+1m, base+2m and now base+3m; since base+1m
		// counts the last three, the one exactly at since included.
		if n := mustFail(t, s, k, base.Add(3*time.Minute), base.Add(time.Minute)); n != 3 {
			t.Errorf("count since base+1m = %d, want 3", n)
		}
		if n := mustFail(t, s, k, base.Add(4*time.Minute), base.Add(4*time.Minute)); n != 1 {
			t.Errorf("count since this failure = %d, want 1", n)
		}
	}},
	{"keys of different kinds or values count separately", func(t *testing.T, s Store) {
		keys := []identity.AttemptKey{userKey("alice"), userKey("bob"), addrKey("alice"), addrKey("192.0.2.1")}
		// Interleaved: key i fails in rounds 0..i, i+1 times in all.
		for round := range len(keys) {
			for i, k := range keys {
				if round <= i {
					mustFail(t, s, k, base.Add(time.Duration(round)*time.Second), base)
				}
			}
		}
		for i, k := range keys {
			want := i + 2 // the failures above plus this one
			if n := mustFail(t, s, k, base.Add(time.Minute), base); n != want {
				t.Errorf("%v: count %d, want %d", k, n, want)
			}
		}
	}},
	{"clearing a key forgets its failures and nothing else", func(t *testing.T, s Store) {
		alice, bob := userKey("alice"), userKey("bob")
		for range 3 {
			mustFail(t, s, alice, base, base)
			mustFail(t, s, bob, base, base)
		}
		mustLock(t, s, alice, base.Add(time.Hour))
		if err := s.ClearFailures(context.Background(), alice); err != nil {
			t.Fatalf("ClearFailures: %v", err)
		}
		if n := mustFail(t, s, alice, base.Add(time.Minute), base); n != 1 {
			t.Errorf("alice after clear: count %d, want 1", n)
		}
		if n := mustFail(t, s, bob, base.Add(time.Minute), base); n != 4 {
			t.Errorf("bob: count %d, want 4", n)
		}
		checkLockedUntil(t, s, "alice's lock", []identity.AttemptKey{alice}, base, base.Add(time.Hour))
	}},
	{"a lock keeps the later end", func(t *testing.T, s Store) {
		k := addrKey("192.0.2.1")
		keys := []identity.AttemptKey{k}
		mustLock(t, s, k, base.Add(2*time.Hour))
		mustLock(t, s, k, base.Add(time.Hour))
		checkLockedUntil(t, s, "after an earlier lock", keys, base, base.Add(2*time.Hour))
		mustLock(t, s, k, base.Add(3*time.Hour+5*time.Millisecond))
		checkLockedUntil(t, s, "after a later lock", keys, base, base.Add(3*time.Hour+5*time.Millisecond))
	}},
	{"LockedUntil picks the latest active lock among the keys and ignores ended ones", func(t *testing.T, s Store) {
		now := base
		alice, bob, addr, old, edge := userKey("alice"), userKey("bob"), addrKey("192.0.2.1"), addrKey("192.0.2.2"), userKey("carol")
		mustLock(t, s, alice, now.Add(time.Hour))
		mustLock(t, s, addr, now.Add(2*time.Hour))
		mustLock(t, s, bob, now.Add(3*time.Hour)) // not asked about
		mustLock(t, s, old, now.Add(-time.Minute))
		mustLock(t, s, edge, now) // ends at now: no longer locked
		checkLockedUntil(t, s, "alice and her address", []identity.AttemptKey{alice, addr}, now, now.Add(2*time.Hour))
		checkLockedUntil(t, s, "alice alone", []identity.AttemptKey{alice}, now, now.Add(time.Hour))
		checkLockedUntil(t, s, "alice and an ended lock", []identity.AttemptKey{old, alice}, now, now.Add(time.Hour))
		checkLockedUntil(t, s, "an ended lock", []identity.AttemptKey{old}, now, time.Time{})
		checkLockedUntil(t, s, "a lock ending now", []identity.AttemptKey{edge}, now, time.Time{})
		checkLockedUntil(t, s, "an unknown key", []identity.AttemptKey{userKey("dave")}, now, time.Time{})
		checkLockedUntil(t, s, "the address value as a user", []identity.AttemptKey{userKey("192.0.2.1")}, now, time.Time{})
		checkLockedUntil(t, s, "no keys", nil, now, time.Time{})
		checkLockedUntil(t, s, "alice later", []identity.AttemptKey{alice, addr}, now.Add(90*time.Minute), now.Add(2*time.Hour))
	}},
	{"pruning removes old failures and ended locks and keeps recent ones", func(t *testing.T, s Store) {
		k := userKey("alice")
		before := base
		mustFail(t, s, k, before.Add(-2*time.Hour), time.Time{})
		mustFail(t, s, k, before.Add(-time.Millisecond), time.Time{})
		mustFail(t, s, k, before, time.Time{})
		mustFail(t, s, k, before.Add(time.Hour), time.Time{})
		mustLock(t, s, addrKey("192.0.2.1"), before.Add(-time.Hour))
		mustLock(t, s, addrKey("192.0.2.2"), before)
		mustLock(t, s, addrKey("192.0.2.3"), before.Add(time.Hour))

		n, err := s.PruneAttempts(context.Background(), before)
		if err != nil {
			t.Fatalf("PruneAttempts: %v", err)
		}
		if n != 3 {
			t.Errorf("PruneAttempts = %d, want 3 (2 failures, 1 lock)", n)
		}
		if n := mustFail(t, s, k, before.Add(2*time.Hour), time.Time{}); n != 3 {
			t.Errorf("count of every failure after pruning = %d, want 3", n)
		}
		checkLockedUntil(t, s, "the lock ending at before", []identity.AttemptKey{addrKey("192.0.2.2")}, before.Add(-time.Minute), before)
		checkLockedUntil(t, s, "the lock ending later", []identity.AttemptKey{addrKey("192.0.2.3")}, before, before.Add(time.Hour))
		if n, err := s.PruneAttempts(context.Background(), before); err != nil || n != 0 {
			t.Errorf("PruneAttempts again = %d, %v; want 0, nil", n, err)
		}
	}},
	{"20 concurrent failures of one key count 1 to 20 each once", func(t *testing.T, s Store) {
		const n = 20
		k := addrKey("198.51.100.7")
		counts := make([]int, n)
		errs := make([]error, n)
		AtOnce(n, func(i int) {
			counts[i], errs[i] = s.RecordFailure(context.Background(), k, base, base)
		})
		seen := make(map[int]bool, n)
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("RecordFailure %d: %v", i, errs[i])
			}
			c := counts[i]
			if c < 1 || c > n || seen[c] {
				t.Errorf("RecordFailure %d: count %d, want a distinct count in 1..%d (all: %v)", i, c, n, counts)
			}
			seen[c] = true
		}
	}},
}
