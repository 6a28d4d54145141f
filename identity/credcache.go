package identity

import (
	"context"
	"errors"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCacheEntries bounds the DigestHA1 credential cache when
// ServiceConfig leaves CacheEntries zero. An entry is a few hundred bytes
// (the user, one sealed HA1 and the key), so the default costs some tens of
// MiB at most.
const DefaultCacheEntries = 100_000

// DigestCredentialReader is implemented by a UserStore that can read what
// a DigestHA1 cache miss needs in one step; DigestHA1 uses it when the
// store has it, and UserByName then Credentials otherwise. With many users
// most REGISTERs of a user not seen lately miss the cache, so this read is
// on the REGISTER path.
type DigestCredentialReader interface {
	// DigestCredentials returns the user whose UsernameKey is
	// UsernameKey(name) and its SIP credentials with algorithm alg and
	// Qualified equal to qualified, of every realm, read from one
	// snapshot. No such user matches ErrNotFound; a user without such a
	// credential comes with none.
	DigestCredentials(ctx context.Context, name string, alg DigestAlgorithm, qualified bool) (*User, []SIPCredential, error)
}

// lookupDigest is the miss path of DigestHA1 through a
// DigestCredentialReader: the same answers as Service.lookupHA1 gives
// through UserByName and Credentials.
func lookupDigest(ctx context.Context, r DigestCredentialReader, username, realm string, alg DigestAlgorithm, qualified bool) (*credEntry, error) {
	u, creds, err := r.DigestCredentials(ctx, username, alg, qualified)
	if errors.Is(err, ErrNotFound) {
		return &credEntry{}, nil
	}
	if err != nil {
		return nil, err
	}
	return digestEntry(u, creds, realm, alg, qualified), nil
}

// digestEntry is the DigestHA1 answer for user u with SIP credentials
// creds: negative for a disabled or token-only user, or when no
// credential matches realm (case-insensitively), alg and qualified.
func digestEntry(u *User, creds []SIPCredential, realm string, alg DigestAlgorithm, qualified bool) *credEntry {
	if !u.Active || u.TokenOnly {
		return &credEntry{}
	}
	for _, c := range creds {
		if c.Algorithm == alg && c.Qualified == qualified && strings.EqualFold(c.Realm, realm) {
			return &credEntry{user: u, cred: c}
		}
	}
	return &credEntry{}
}

// credKey names one DigestHA1 answer.
type credKey struct {
	user      string // UsernameKey of the username asked for
	realm     string // as asked for (the store compares it case-insensitively)
	alg       DigestAlgorithm
	qualified bool
}

// credEntry is one cached DigestHA1 answer. A nil user is a negative answer
// (no such user, disabled, token-only, or no HA1 for the key). The HA1 stays
// sealed in memory and is opened at each use.
type credEntry struct {
	user    *User // never handed out: callers get a Clone
	cred    SIPCredential
	expires time.Duration // since the cache's epoch, when the entry stops being used; 0: never
}

// credShards is the number of independently locked parts of the cache, so
// that concurrent REGISTERs rarely wait for one another.
const credShards = 64

// credCache is a bounded map of DigestHA1 answers. It is flushed whole on
// every change: by this process (Service calls flush after each write) or
// seen through the store's StampUsers (read at most once per interval).
// Without a ChangeStamper each entry lives for one interval.
type credCache struct {
	watch    *stampWatch // nil: no stamps, entries expire after ttl
	ttl      time.Duration
	now      func() time.Time
	epoch    time.Time // entries' expiry times count from here (monotonic clock)
	perShard int
	seed     maphash.Seed
	// gen counts flushes. A lookup notes it before reading the store and
	// stores its answer only if no flush came in between, so an answer read
	// before a change never outlives the flush that follows the change.
	gen    atomic.Uint64
	shards []credShard
}

type credShard struct {
	mu sync.Mutex
	m  map[credKey]*credEntry
	_  [48]byte // keeps neighbouring shards' locks off one cache line
}

// newCredCache returns a cache of at most maxEntries entries, or nil when
// maxEntries or interval is negative (no cache). Zero values mean the
// defaults.
func newCredCache(store UserStore, maxEntries int, interval time.Duration, now func() time.Time) *credCache {
	if maxEntries == 0 {
		maxEntries = DefaultCacheEntries
	}
	if interval == 0 {
		interval = DefaultCheckInterval
	}
	if maxEntries < 0 || interval < 0 {
		return nil
	}
	n := min(credShards, maxEntries)
	c := &credCache{
		ttl:      interval,
		now:      now,
		epoch:    now(),
		perShard: maxEntries / n,
		seed:     maphash.MakeSeed(),
		shards:   make([]credShard, n),
	}
	for i := range c.shards {
		c.shards[i].m = make(map[credKey]*credEntry)
	}
	if cs, ok := store.(ChangeStamper); ok {
		c.watch = newStampWatch(cs, StampUsers, interval, now)
	}
	return c
}

// begin readies the cache for one lookup: it polls the change stamp,
// flushing on a change. It returns the generation to pass to put, and
// false when the cache must not be used for this lookup (the stamp could
// not be read).
func (c *credCache) begin(ctx context.Context) (uint64, bool) {
	if c.watch != nil {
		if err := c.watch.poll(ctx, func(context.Context) error { c.flush(); return nil }); err != nil {
			return 0, false
		}
	}
	return c.gen.Load(), true
}

func (c *credCache) shard(k credKey) *credShard {
	return &c.shards[maphash.Comparable(c.seed, k)%uint64(len(c.shards))]
}

// get returns the entry for k, if there is a live one.
func (c *credCache) get(k credKey) (*credEntry, bool) {
	s := c.shard(k)
	s.mu.Lock()
	e, ok := s.m[k]
	s.mu.Unlock()
	if !ok || (e.expires != 0 && c.now().Sub(c.epoch) >= e.expires) {
		return nil, false
	}
	return e, true
}

// put stores e under k unless the cache was flushed since gen was taken.
// A full shard first drops one entry: Go's map iteration starts at a
// random place, so that entry is a random one, found without a scan.
func (c *credCache) put(k credKey, e *credEntry, gen uint64) {
	if c.watch == nil {
		e.expires = c.now().Sub(c.epoch) + c.ttl
	}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if _, ok := s.m[k]; !ok && len(s.m) >= c.perShard {
		for old := range s.m {
			delete(s.m, old)
			break
		}
	}
	s.m[k] = e
}

// flush forgets every entry. The generation moves first: a lookup that read
// the store before the flush then cannot store its answer after it.
func (c *credCache) flush() {
	c.gen.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
}

// len returns the number of entries, for tests.
func (c *credCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
