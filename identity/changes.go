package identity

import (
	"context"
	"time"
)

// Names of the change stamps a ChangeStamper keeps.
const (
	// StampUsers changes with every change to users as DigestHA1 and its
	// cache see them: a user inserted or deleted, any field of a user
	// changed other than LastLoginAt alone (the login time changes at every
	// login and nothing cached depends on it), a role granted or taken, a
	// SIP credential inserted, replaced or deleted.
	StampUsers = "users"
	// StampLocks changes with every change to the locks of an AttemptStore:
	// a lock placed, extended or deleted (pruned).
	StampLocks = "locks"
	// StampFailures changes with every change to the failures an
	// AttemptStore keeps for AttemptUser keys: a failure recorded, cleared or
	// deleted (pruned). Failures of addresses may leave it alone: nothing
	// kept in memory depends on them, and under a guessing attack they come
	// as often as the users' failures.
	StampFailures = "failures"
)

// DefaultCheckInterval is how often, at most, the credential cache, the
// lock snapshot and the set of users with failures read their change
// stamp, when their configuration leaves the interval zero. It is also how
// stale any of them may be.
const DefaultCheckInterval = 250 * time.Millisecond

// ChangeStamper is an optional interface of a store: a cheap way to learn
// that data changed since it was last read, so that readers may keep copies
// in memory. Service (the DigestHA1 cache) and Regulator (the lock
// snapshot and the set of users with failures) use it when their store
// implements it.
//
// ChangeStamp returns the current value of the stamp called name
// (StampUsers, StampLocks or StampFailures; any other name is an error
// matching ErrInvalid). The contract, which store/storetest checks:
//   - Every change the stamp's doc names, made by any process or node on
//     the same database, changes the stamp in the same transaction: a read
//     that starts after the change committed returns a value different from
//     every value read before the change (a counter that only grows does
//     this).
//   - Values mean nothing but equal or not. A stamp may change without a
//     data change (that costs readers a reload, never a wrong answer), but
//     must never stay the same across a change it covers.
//   - It is cheap (a lookup by primary key): readers call it up to a few
//     times a second.
type ChangeStamper interface {
	ChangeStamp(ctx context.Context, name string) (int64, error)
}

// AttemptLock is one lock of an AttemptStore.
type AttemptLock struct {
	Key   AttemptKey
	Until time.Time
}

// LockLister is an optional interface of an AttemptStore that also
// implements ChangeStamper: Regulator then keeps the active locks in memory
// and reloads them when StampLocks changes, instead of querying the store at
// every Check.
type LockLister interface {
	// ActiveLocks returns every lock that ends after now (millisecond
	// precision, one entry per key), in no particular order.
	ActiveLocks(ctx context.Context, now time.Time) ([]AttemptLock, error)
}

// FailureLister is an optional interface of an AttemptStore that also
// implements ChangeStamper: Regulator then keeps in memory the set of users
// that have failures, reloaded when StampFailures changes, and Success
// clears a user's failures only when the user is in it, instead of asking
// the store at every successful login and REGISTER.
type FailureLister interface {
	// UsersWithFailures returns the Value of every AttemptUser key that has
	// at least one recorded failure, however old, each once, in no
	// particular order.
	UsersWithFailures(ctx context.Context) ([]string, error)
}
