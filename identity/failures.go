package identity

import (
	"context"
	"sync"
	"time"
)

// failureSet is a Regulator's idea of which users may have recorded
// failures: Success asks the store to clear a user's failures only when the
// user is in it. It must hold every user that has failures in the store
// (a user it holds without failures costs one needless ClearFailures, a
// user it misses keeps failures a success should have cleared), within the
// staleness bound of the other caches:
//   - the users the store listed at the last load, reloaded whole when the
//     store's StampFailures changes (read at most once per interval), so a
//     failure recorded by another process is seen within the interval;
//   - plus the users this process recorded failures for, added as soon as
//     the store has the failure, so they are seen at once.
//
// Keys leave the set only by a reload: a reload follows every ClearFailures
// that deleted something, because the delete changes the stamp.
type failureSet struct {
	watch  *stampWatch
	lister FailureLister

	mu     sync.RWMutex
	loaded map[string]struct{} // the users of the last load
	// local holds the users this process recorded failures for, with the
	// value of seq when each was last added. A load that started before a
	// user was added may have read the store before the failure was in it,
	// so each load keeps the users added since it started and forgets the
	// others (the load read their failures from the store).
	local map[string]uint64
	seq   uint64
}

func newFailureSet(stamper ChangeStamper, lister FailureLister, interval time.Duration, now func() time.Time) *failureSet {
	return &failureSet{
		watch:  newStampWatch(stamper, StampFailures, interval, now),
		lister: lister,
		loaded: map[string]struct{}{},
		local:  map[string]uint64{},
	}
}

// mayHave reports whether user (an AttemptUser key's Value) may have
// recorded failures. ok is false when the set could not be brought up to
// date (the store failed): the caller must then assume it may. A nil set
// always says so.
func (f *failureSet) mayHave(ctx context.Context, user string) (may, ok bool) {
	if f == nil {
		return true, false
	}
	if err := f.watch.poll(ctx, f.load); err != nil {
		return true, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, inLoaded := f.loaded[user]
	_, inLocal := f.local[user]
	return inLoaded || inLocal, true
}

// load replaces the loaded users with the store's list. The watch runs one
// load at a time.
func (f *failureSet) load(ctx context.Context) error {
	f.mu.RLock()
	start := f.seq
	f.mu.RUnlock()
	// Every failure added to local before start was in the store before
	// start, so this list, read after it, has it.
	list, err := f.lister.UsersWithFailures(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]struct{}, len(list))
	for _, u := range list {
		m[u] = struct{}{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for u, seq := range f.local {
		if seq <= start {
			delete(f.local, u)
		}
	}
	f.loaded = m
	return nil
}

// add records that this process recorded a failure for user, after the
// store has it (or after an attempt to record it failed, in case the store
// kept it anyway).
func (f *failureSet) add(user string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	f.local[user] = f.seq
}
