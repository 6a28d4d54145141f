package identity

import (
	"context"
	"time"
)

// RegulatorConfig sets the brute-force windows. A username with
// UserMaxFailures failures within UserWindow is locked for UserLock; an
// address with AddrMaxFailures failures within AddrWindow is banned for
// AddrLock.
type RegulatorConfig struct {
	UserMaxFailures int
	UserWindow      time.Duration
	UserLock        time.Duration
	AddrMaxFailures int
	AddrWindow      time.Duration
	AddrLock        time.Duration
	Now             func() time.Time // nil means time.Now
	// CheckInterval is how often, at most, Check reads the store's
	// StampLocks when the store keeps change stamps (ChangeStamper and
	// LockLister): Check then answers from a copy of the active locks in
	// memory, reloaded when the stamp changes, and a lock placed by another
	// process is seen within this interval. Likewise Success reads
	// StampFailures when the store is a FailureLister too, and asks the
	// store to clear only the users that may have failures: a failure
	// recorded by another process is cleared by a success within this
	// interval. 0 means DefaultCheckInterval; a negative value makes every
	// Check and every Success query the store.
	CheckInterval time.Duration
}

// DefaultRegulatorConfig: 5 failures in 5 minutes lock a username for 15
// minutes; 20 failures in 5 minutes from one address ban it for 15 minutes.
func DefaultRegulatorConfig() RegulatorConfig {
	return RegulatorConfig{
		UserMaxFailures: 5, UserWindow: 5 * time.Minute, UserLock: 15 * time.Minute,
		AddrMaxFailures: 20, AddrWindow: 5 * time.Minute, AddrLock: 15 * time.Minute,
	}
}

// Regulator throttles password guessing per username and per client
// address. Its state lives in an AttemptStore, so locks survive restarts
// and hold on every node. The HTTP login and the SIP registrar both use it,
// and both call Check before any expensive work (database lookups of the
// user, Argon2id, HA1 unsealing).
//
// Locks placed through a Regulator are seen by its own Check at once; share
// one Regulator between the HTTP and SIP sides of a process.
type Regulator struct {
	store    AttemptStore
	cfg      RegulatorConfig
	locks    *lockSnapshot // nil: Check queries the store
	failures *failureSet   // nil: Success always asks the store to clear
}

// NewRegulator returns a Regulator over store.
func NewRegulator(store AttemptStore, cfg RegulatorConfig) *Regulator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	r := &Regulator{store: store, cfg: cfg}
	stamper, ok1 := store.(ChangeStamper)
	lister, ok2 := store.(LockLister)
	if ok1 && ok2 && cfg.CheckInterval > 0 {
		r.locks = newLockSnapshot(stamper, lister, cfg.CheckInterval, cfg.Now)
	}
	if fl, ok := store.(FailureLister); ok1 && ok && cfg.CheckInterval > 0 {
		r.failures = newFailureSet(stamper, fl, cfg.CheckInterval, cfg.Now)
	}
	return r
}

func userKey(username string) AttemptKey {
	return AttemptKey{Kind: AttemptUser, Value: UsernameKey(username)}
}

func addrKey(addr string) AttemptKey { return AttemptKey{Kind: AttemptAddr, Value: addr} }

// keys returns the counters an attempt touches; an empty username or
// address has none.
func keys(username, addr string) []AttemptKey {
	var ks []AttemptKey
	if username != "" {
		ks = append(ks, userKey(username))
	}
	if addr != "" {
		ks = append(ks, addrKey(addr))
	}
	return ks
}

// Check returns an error with CodeAccountLocked and a RetryAfter when the
// username or the address is locked, nil when the attempt may proceed.
func (r *Regulator) Check(ctx context.Context, username, addr string) error {
	now := r.cfg.Now()
	ks := keys(username, addr)
	until, ok := r.locks.lockedUntil(ctx, ks, now)
	if !ok {
		var err error
		if until, err = r.store.LockedUntil(ctx, ks, now); err != nil {
			return Internal("identity.Regulator.Check", err)
		}
	}
	if until.IsZero() {
		return nil
	}
	retry := until.Sub(now).Round(time.Second)
	if retry < time.Second {
		retry = time.Second
	}
	return &Error{Op: "identity.Regulator.Check", Code: CodeAccountLocked,
		Message: "too many failed attempts; try again later", RetryAfter: retry}
}

// Failure records a failed attempt and locks the username or address when
// it crossed its threshold. It reports whether a new lock was set.
func (r *Regulator) Failure(ctx context.Context, username, addr string) (locked bool, err error) {
	now := r.cfg.Now()
	type rule struct {
		key    AttemptKey
		max    int
		window time.Duration
		lock   time.Duration
	}
	var rules []rule
	if username != "" && r.cfg.UserMaxFailures > 0 {
		rules = append(rules, rule{userKey(username), r.cfg.UserMaxFailures, r.cfg.UserWindow, r.cfg.UserLock})
	}
	if addr != "" && r.cfg.AddrMaxFailures > 0 {
		rules = append(rules, rule{addrKey(addr), r.cfg.AddrMaxFailures, r.cfg.AddrWindow, r.cfg.AddrLock})
	}
	for _, ru := range rules {
		n, err := r.store.RecordFailure(ctx, ru.key, now, now.Add(-ru.window))
		if ru.key.Kind == AttemptUser {
			// Even after an error: the store may have kept the failure.
			r.failures.add(ru.key.Value)
		}
		if err != nil {
			return locked, Internal("identity.Regulator.Failure", err)
		}
		if n >= ru.max {
			if err := r.store.Lock(ctx, ru.key, now.Add(ru.lock)); err != nil {
				return locked, Internal("identity.Regulator.Failure", err)
			}
			r.locks.add(ru.key, now.Add(ru.lock))
			// Start counting afresh once the lock ends.
			if err := r.store.ClearFailures(ctx, ru.key); err != nil {
				return locked, Internal("identity.Regulator.Failure", err)
			}
			locked = true
		}
	}
	return locked, nil
}

// Success forgets the username's failures. The address's failures stay:
// one valid account must not reset a guessing address's count.
//
// Failures this Regulator recorded are cleared by any Success that starts
// after Failure returned; failures recorded by another process, by a
// Success that starts one CheckInterval after they were recorded. When the
// user has no failures (the common case) Success makes no query.
func (r *Regulator) Success(ctx context.Context, username string) error {
	if username == "" {
		return nil
	}
	k := userKey(username)
	if may, ok := r.failures.mayHave(ctx, k.Value); ok && !may {
		return nil
	}
	if err := r.store.ClearFailures(ctx, k); err != nil {
		return Internal("identity.Regulator.Success", err)
	}
	return nil
}

// Prune deletes attempts and locks older than the longest window and lock.
func (r *Regulator) Prune(ctx context.Context) (int, error) {
	keep := max(r.cfg.UserWindow, r.cfg.AddrWindow, r.cfg.UserLock, r.cfg.AddrLock)
	return r.store.PruneAttempts(ctx, r.cfg.Now().Add(-keep))
}
