package identity_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/store/sqlite"
)

// lockCounter is the real SQLite store, counting the queries a
// Regulator's Check may make, and able to fail ActiveLocks.
type lockCounter struct {
	*sqlite.DB
	lockedUntil, activeLocks, stamps atomic.Int64
	failList                         atomic.Bool
	// duringList, when set, runs inside ActiveLocks after the store
	// answered: a write racing a reload.
	duringList func()
}

func (c *lockCounter) LockedUntil(ctx context.Context, keys []identity.AttemptKey, now time.Time) (time.Time, error) {
	c.lockedUntil.Add(1)
	return c.DB.LockedUntil(ctx, keys, now)
}

func (c *lockCounter) ActiveLocks(ctx context.Context, now time.Time) ([]identity.AttemptLock, error) {
	c.activeLocks.Add(1)
	if c.failList.Load() {
		return nil, errors.New("disk on fire")
	}
	locks, err := c.DB.ActiveLocks(ctx, now)
	if c.duringList != nil {
		c.duringList()
	}
	return locks, err
}

func (c *lockCounter) ChangeStamp(ctx context.Context, name string) (int64, error) {
	c.stamps.Add(1)
	return c.DB.ChangeStamp(ctx, name)
}

// queries returns the LockedUntil, ActiveLocks and ChangeStamp calls so
// far and resets them.
func (c *lockCounter) queries() (lockedUntil, activeLocks, stamps int64) {
	return c.lockedUntil.Swap(0), c.activeLocks.Swap(0), c.stamps.Swap(0)
}

// attemptStoreOnly hides every method but AttemptStore's: a backend
// without change stamps.
type attemptStoreOnly struct{ identity.AttemptStore }

// lockWorld is a database file and the clock of the Regulators on it.
type lockWorld struct {
	t     testing.TB
	path  string
	clock *clock
}

func newLockWorld(t testing.TB) *lockWorld {
	return &lockWorld{t: t, path: filepath.Join(t.TempDir(), "users.db"), clock: &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}}
}

// regulator opens a store handle on the world's file and a Regulator over
// it with the default rules (5 user failures lock for 15 minutes).
func (w *lockWorld) regulator(wrap func(*lockCounter) identity.AttemptStore) (*identity.Regulator, *lockCounter) {
	w.t.Helper()
	return regulatorOn(w, newLockCounter, wrap, checkEvery)
}

func newLockCounter(db *sqlite.DB) *lockCounter { return &lockCounter{DB: db} }

// regulatorOn opens a store handle on w's file, wraps it in the counting
// store counter makes (and wrap, when set, in what the Regulator sees) and
// returns a Regulator over it with the default rules, w's clock and the
// check interval given.
func regulatorOn[C identity.AttemptStore](w *lockWorld, counter func(*sqlite.DB) C, wrap func(C) identity.AttemptStore, interval time.Duration) (*identity.Regulator, C) {
	w.t.Helper()
	db, err := sqlite.Open(context.Background(), w.path)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { db.Close() })
	c := counter(db)
	var st identity.AttemptStore = c
	if wrap != nil {
		st = wrap(c)
	}
	cfg := identity.DefaultRegulatorConfig()
	cfg.Now, cfg.CheckInterval = w.clock.now, interval
	return identity.NewRegulator(st, cfg), c
}

// locked reports whether Check refuses user from addr, failing the test on
// any other error.
func locked(t testing.TB, r *identity.Regulator, user, addr string) bool {
	t.Helper()
	err := r.Check(context.Background(), user, addr)
	if err == nil {
		return false
	}
	var e *identity.Error
	if !errors.As(err, &e) || e.Code != identity.CodeAccountLocked || e.RetryAfter < time.Second {
		t.Fatalf("Check(%s, %s): %v, want nil or ACCOUNT_LOCKED with a Retry-After", user, addr, err)
	}
	return true
}

// guess records failures for user from addr until the Regulator locks.
func guess(t testing.TB, r *identity.Regulator, user, addr string) {
	t.Helper()
	for i := range 100 {
		l, err := r.Failure(context.Background(), user, addr)
		if err != nil {
			t.Fatal(err)
		}
		if l {
			return
		}
		if i == 99 {
			t.Fatal("100 failures and no lock")
		}
	}
}

func TestRegulatorSeesItsOwnLockAtOnce(t *testing.T) {
	w := newLockWorld(t)
	r, st := w.regulator(nil)
	if locked(t, r, "alice", "192.0.2.1") {
		t.Fatal("locked before any failure")
	}
	guess(t, r, "Alice", "198.51.100.9")
	// The clock has not moved, so the snapshot was not reloaded: the lock
	// came from Failure itself.
	if !locked(t, r, "alice", "192.0.2.1") {
		t.Error("the lock this Regulator placed is not seen at once")
	}
	if l, _, _ := st.queries(); l != 0 {
		t.Errorf("%d LockedUntil queries, want 0 (the snapshot answers)", l)
	}
	if locked(t, r, "bob", "192.0.2.1") {
		t.Error("bob locked by alice's lock")
	}
	w.clock.advance(15*time.Minute + time.Second)
	if locked(t, r, "alice", "192.0.2.1") {
		t.Error("still locked after the lock ended")
	}
}

func TestRegulatorCheckWithinTheIntervalQueriesNothing(t *testing.T) {
	w := newLockWorld(t)
	r, st := w.regulator(nil)
	locked(t, r, "alice", "192.0.2.1")
	if l, a, s := st.queries(); l != 0 || a != 1 || s != 1 {
		t.Errorf("first Check: %d LockedUntil, %d ActiveLocks, %d ChangeStamp; want 0, 1, 1", l, a, s)
	}
	for i := range 100 {
		locked(t, r, fmt.Sprintf("user%d", i), "192.0.2.1")
	}
	if l, a, s := st.queries(); l != 0 || a != 0 || s != 0 {
		t.Errorf("100 Checks within the interval: %d LockedUntil, %d ActiveLocks, %d ChangeStamp; want none", l, a, s)
	}
	w.clock.advance(checkEvery)
	for i := range 10 {
		locked(t, r, fmt.Sprintf("user%d", i), "192.0.2.1")
	}
	if l, a, s := st.queries(); l != 0 || a != 0 || s != 1 {
		t.Errorf("10 Checks after the interval, nothing changed: %d LockedUntil, %d ActiveLocks, %d ChangeStamp; want 0, 0, 1", l, a, s)
	}
}

func TestRegulatorSeesALockOfAnotherProcessWithinTheInterval(t *testing.T) {
	w := newLockWorld(t)
	server, _ := w.regulator(nil)
	other, _ := w.regulator(nil) // another node on the same database
	if locked(t, server, "alice", "192.0.2.1") || locked(t, server, "", "203.0.113.5") {
		t.Fatal("locked before any failure")
	}
	guess(t, other, "alice", "198.51.100.9")
	cfg := identity.DefaultRegulatorConfig()
	for range cfg.AddrMaxFailures {
		if _, err := other.Failure(context.Background(), "", "203.0.113.5"); err != nil {
			t.Fatal(err)
		}
	}
	// Within the interval the server may answer from its snapshot: the
	// documented staleness bound.
	w.clock.advance(checkEvery - time.Millisecond)
	if locked(t, server, "alice", "192.0.2.1") {
		t.Log("seen before the interval ended (allowed, not required)")
	}
	w.clock.advance(time.Millisecond)
	if !locked(t, server, "ALICE", "192.0.2.1") {
		t.Error("the other process's user lock is not seen after the interval")
	}
	if !locked(t, server, "bob", "203.0.113.5") {
		t.Error("the other process's address lock is not seen after the interval")
	}
	if locked(t, server, "bob", "192.0.2.1") {
		t.Error("bob from another address is locked")
	}
}

func TestRegulatorKeepsItsOwnLockAcrossAReload(t *testing.T) {
	w := newLockWorld(t)
	r, _ := w.regulator(nil)
	other, _ := w.regulator(nil)
	locked(t, r, "alice", "")
	guess(t, r, "alice", "198.51.100.9")
	guess(t, other, "bob", "198.51.100.10")
	w.clock.advance(checkEvery) // the reload sees bob's lock and keeps alice's
	if !locked(t, r, "alice", "") || !locked(t, r, "bob", "") {
		t.Error("after a reload: alice's or bob's lock is missing")
	}
}

func TestRegulatorKeepsALockPlacedDuringAReload(t *testing.T) {
	w := newLockWorld(t)
	r, st := w.regulator(nil)
	st.duringList = func() {
		st.duringList = nil
		guess(t, r, "carol", "198.51.100.9")
	}
	if locked(t, r, "dave", "") {
		t.Fatal("dave locked")
	}
	if !locked(t, r, "carol", "") {
		t.Error("the lock placed while the snapshot was loading is lost")
	}
}

func TestRegulatorFallsBackToTheStore(t *testing.T) {
	t.Run("without change stamps", func(t *testing.T) {
		w := newLockWorld(t)
		r, st := w.regulator(func(lc *lockCounter) identity.AttemptStore { return attemptStoreOnly{lc} })
		other, _ := w.regulator(nil)
		locked(t, r, "alice", "192.0.2.1")
		guess(t, other, "alice", "198.51.100.9")
		if !locked(t, r, "alice", "192.0.2.1") {
			t.Error("the other process's lock is not seen at once")
		}
		if l, a, _ := st.queries(); l != 2 || a != 0 {
			t.Errorf("2 Checks: %d LockedUntil, %d ActiveLocks; want 2, 0", l, a)
		}
	})
	t.Run("when the locks cannot be listed", func(t *testing.T) {
		w := newLockWorld(t)
		r, st := w.regulator(nil)
		other, _ := w.regulator(nil)
		st.failList.Store(true)
		guess(t, other, "alice", "198.51.100.9")
		if !locked(t, r, "alice", "192.0.2.1") {
			t.Error("the lock is not seen through the fallback")
		}
		if l, _, _ := st.queries(); l != 1 {
			t.Errorf("%d LockedUntil queries, want 1", l)
		}
		st.failList.Store(false)
		if !locked(t, r, "alice", "192.0.2.1") {
			t.Error("the lock is not seen once the list works again")
		}
		if l, a, _ := st.queries(); l != 0 || a != 1 {
			t.Errorf("after recovery: %d LockedUntil, %d ActiveLocks; want 0, 1", l, a)
		}
	})
	t.Run("with a negative interval", func(t *testing.T) {
		r, lc := regulatorOn(newLockWorld(t), newLockCounter, nil, -1)
		locked(t, r, "alice", "192.0.2.1")
		locked(t, r, "alice", "192.0.2.1")
		if l, a, _ := lc.queries(); l != 2 || a != 0 {
			t.Errorf("2 Checks: %d LockedUntil, %d ActiveLocks; want 2, 0", l, a)
		}
	})
}

// BenchmarkRegulatorCheck checks users that are not locked, from
// addresses that are not locked, with 1,000 other locks in the store: the
// Check every REGISTER makes.
func BenchmarkRegulatorCheck(b *testing.B) {
	for _, c := range []struct {
		name     string
		interval time.Duration
	}{{"snapshot=off", -1}, {"snapshot=on", 0}} {
		b.Run(c.name, func(b *testing.B) {
			db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "users.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			for i := range 1000 {
				if err := db.Lock(ctx, identity.AttemptKey{Kind: identity.AttemptAddr, Value: fmt.Sprintf("10.0.%d.%d", i/256, i%256)}, time.Now().Add(time.Hour)); err != nil {
					b.Fatal(err)
				}
			}
			cfg := identity.DefaultRegulatorConfig()
			cfg.CheckInterval = c.interval
			r := identity.NewRegulator(db, cfg)
			names := make([]string, 1000)
			for i := range names {
				names[i] = fmt.Sprintf("user%05d", i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := r.Check(ctx, names[i%len(names)], "192.0.2.1"); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
