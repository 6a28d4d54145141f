package identity

import (
	"context"
	"sync"
	"time"
)

// lockSnapshot is a Regulator's copy of the active locks of its store:
// Check looks keys up in it instead of querying the store. It is reloaded
// whole when the store's StampLocks changes (read at most once per
// interval), and a lock the Regulator places is added at once.
type lockSnapshot struct {
	watch  *stampWatch
	lister LockLister

	mu    sync.RWMutex
	locks map[AttemptKey]time.Time // key -> end, as of the last load plus local locks
	// local holds the locks this process placed, with the value of seq
	// when each was added. A load that started before a lock was added may
	// not contain it, so each load keeps the local locks added since it
	// started and forgets the others (the load read them from the store).
	local map[AttemptKey]localLock
	seq   uint64
}

type localLock struct {
	until time.Time
	seq   uint64
}

func newLockSnapshot(stamper ChangeStamper, lister LockLister, interval time.Duration, now func() time.Time) *lockSnapshot {
	return &lockSnapshot{
		watch:  newStampWatch(stamper, StampLocks, interval, now),
		lister: lister,
		locks:  map[AttemptKey]time.Time{},
		local:  map[AttemptKey]localLock{},
	}
}

// lockedUntil returns the latest end after now among the locks of keys,
// zero when none is locked. ok is false when the snapshot could not be
// brought up to date (the store failed): the caller must ask the store. A
// nil snapshot always says so.
func (l *lockSnapshot) lockedUntil(ctx context.Context, keys []AttemptKey, now time.Time) (until time.Time, ok bool) {
	if l == nil {
		return time.Time{}, false
	}
	if err := l.watch.poll(ctx, func(ctx context.Context) error { return l.load(ctx, now) }); err != nil {
		return time.Time{}, false
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, k := range keys {
		if u, found := l.locks[k]; found && u.After(now) && u.After(until) {
			until = u
		}
	}
	return until, true
}

// load replaces the snapshot with the store's active locks. The watch runs
// one load at a time.
func (l *lockSnapshot) load(ctx context.Context, now time.Time) error {
	l.mu.RLock()
	start := l.seq
	l.mu.RUnlock()
	list, err := l.lister.ActiveLocks(ctx, now)
	if err != nil {
		return err
	}
	m := make(map[AttemptKey]time.Time, len(list))
	for _, x := range list {
		if x.Until.After(m[x.Key]) {
			m[x.Key] = x.Until
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, x := range l.local {
		if x.seq <= start || !x.until.After(now) {
			delete(l.local, k)
			continue
		}
		if x.until.After(m[k]) {
			m[k] = x.until
		}
	}
	l.locks = m
	return nil
}

// add records a lock this process placed (after the store has it). An
// existing later end is kept, as the store does.
func (l *lockSnapshot) add(k AttemptKey, until time.Time) {
	if l == nil {
		return
	}
	until = until.Truncate(time.Millisecond) // what the store keeps
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.locks[k]) {
		l.locks[k] = until
	}
	l.seq++
	l.local[k] = localLock{until: l.locks[k], seq: l.seq}
}
