package sip

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"hash/maphash"
	"sync"
	"time"

	"github.com/rvoip/users-core/identity"
)

// NonceStatus is the verdict of NonceKeeper.Check.
type NonceStatus int

// Nonce verdicts. The zero value is NonceInvalid, so a forgotten
// assignment fails closed.
const (
	// NonceInvalid: not a nonce of ours for this realm and algorithm
	// (bad encoding, bad MAC, another realm, another algorithm). Answer
	// with a fresh challenge, without stale=true.
	NonceInvalid NonceStatus = iota
	// NonceValid: authentic, for this realm and algorithm, and within its
	// lifetime.
	NonceValid
	// NonceStale: authentic but expired (or issued too far in the future
	// by a node with a fast clock). If the response is right for it,
	// answer 401 with stale=true (RFC 7616 section 3.3) so the client
	// retries with a fresh nonce without asking the user.
	NonceStale
)

// String returns "valid", "stale" or "invalid".
func (s NonceStatus) String() string {
	switch s {
	case NonceValid:
		return "valid"
	case NonceStale:
		return "stale"
	}
	return "invalid"
}

// NonceLen is the length of every nonce from NonceKeeper.New: 30 bytes in
// unpadded base64url. Layout before encoding: version (1 byte), issue time
// in unix seconds (4 bytes, big-endian, good until 2106), algorithm (1),
// random (8), HMAC-SHA256 truncated to 16 bytes (128 bits: forging one
// takes ~2^128 tries). Three challenges with 40-character nonces leave a
// UDP 401 far below 1300 bytes.
const NonceLen = 40

// MinNonceSecretLen is the shortest secret NewNonceKeeper accepts.
const MinNonceSecretLen = 32

const (
	nonceVersion   = 1
	nonceRawLen    = 30
	nonceMACOff    = 14
	nonceMACLabel  = "users-core sip-digest-nonce v1"
	nonceMaxSkew   = 10 * time.Second // tolerated clock lead of another node
	defaultNonceLT = 5 * time.Minute
)

// nonceAlgCode maps an algorithm to its nonce byte; 0 for unknown algorithms,
// which Check never accepts.
func nonceAlgCode(alg identity.DigestAlgorithm) byte {
	switch alg {
	case identity.MD5:
		return 1
	case identity.SHA256:
		return 2
	case identity.SHA512256:
		return 3
	}
	return 0
}

// NonceKeeper issues and checks stateless Digest nonces: each nonce
// carries its issue time, its algorithm and an HMAC over them and the
// realm, so any node holding the shared secret can check a nonce another
// node issued, with no table and no database round trip. Replay of one
// nonce is the ReplayGuard's job (nc tracking). A NonceKeeper is safe for
// concurrent use.
type NonceKeeper struct {
	lifetime time.Duration
	now      func() time.Time
	macs     sync.Pool // of *nonceMAC: HMAC-SHA256 keyed with the secret
}

// NewNonceKeeper returns a NonceKeeper keyed with secret, which must be at
// least MinNonceSecretLen (32) random bytes and the same on every node
// (identity.SecretStore keeps it). lifetime <= 0 means 5 minutes; nil now
// means time.Now. It panics on a short secret: that is a wiring bug,
// and a weak key would make nonces forgeable.
func NewNonceKeeper(secret []byte, lifetime time.Duration, now func() time.Time) *NonceKeeper {
	if len(secret) < MinNonceSecretLen {
		panic("sip.NewNonceKeeper: the nonce secret must be at least 32 bytes")
	}
	if lifetime <= 0 {
		lifetime = defaultNonceLT
	}
	if now == nil {
		now = time.Now
	}
	key := append([]byte(nil), secret...) // the caller may reuse its slice
	k := &NonceKeeper{lifetime: lifetime, now: now}
	k.macs.New = func() any {
		return &nonceMAC{h: hmac.New(sha256.New, key), buf: make([]byte, 0, 128)}
	}
	return k
}

// Lifetime returns how long a nonce stays valid after it is issued.
func (k *NonceKeeper) Lifetime() time.Duration { return k.lifetime }

// New returns a fresh nonce for realm and alg: NonceLen (40) characters of
// base64url, safe inside a quoted-string. An algorithm other than MD5,
// SHA-256 and SHA-512-256 yields a nonce Check always refuses.
func (k *NonceKeeper) New(realm string, alg identity.DigestAlgorithm) string {
	var raw [nonceRawLen]byte
	raw[0] = nonceVersion
	binary.BigEndian.PutUint32(raw[1:5], uint32(k.now().Unix()))
	raw[5] = nonceAlgCode(alg)
	// Random bytes make every nonce unique even within one second, so nc
	// tracking per nonce is per client exchange.
	_, _ = rand.Read(raw[6:nonceMACOff]) // crypto/rand.Read never fails (Go 1.24+)
	k.mac(raw[nonceMACOff:], raw[:nonceMACOff], realm)
	var out [NonceLen]byte
	base64.RawURLEncoding.Encode(out[:], raw[:])
	return string(out[:])
}

// nonceMAC is a pooled HMAC with scratch space, so issuing and checking
// nonces does not allocate.
type nonceMAC struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// mac writes the first 16 bytes of HMAC-SHA256(secret, label || len(realm)
// || realm || head) to dst. The label separates this use of the secret
// from any other; the length prefix keeps realm and head apart whatever
// the realm holds.
func (k *NonceKeeper) mac(dst, head []byte, realm string) {
	st := k.macs.Get().(*nonceMAC)
	st.h.Reset()
	b := append(st.buf[:0], nonceMACLabel...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(realm)))
	b = append(b, realm...)
	b = append(b, head...)
	st.h.Write(b)
	copy(dst, st.h.Sum(st.sum[:0]))
	if cap(b) <= 1024 { // do not pin a buffer grown by a huge realm
		st.buf = b[:0]
	}
	k.macs.Put(st)
}

// Check tells whether nonce is one of ours for realm and alg. A nonce
// issued for another algorithm is NonceInvalid: a client answering a
// SHA-256 nonce with MD5 is a downgrade attempt (RFC 8760 section 3).
// The realm is compared byte for byte, as it was hashed into HA1.
func (k *NonceKeeper) Check(nonce, realm string, alg identity.DigestAlgorithm) NonceStatus {
	raw, ok := decodeNonce(nonce)
	if !ok {
		return NonceInvalid
	}
	if code := nonceAlgCode(alg); code == 0 || raw[5] != code {
		return NonceInvalid
	}
	var want [16]byte
	k.mac(want[:], raw[:nonceMACOff], realm)
	// Constant time: the MAC is the only secret-derived value an attacker
	// could learn byte by byte through timing.
	if !hmac.Equal(want[:], raw[nonceMACOff:]) {
		return NonceInvalid
	}
	issued := time.Unix(int64(binary.BigEndian.Uint32(raw[1:5])), 0)
	now := k.now()
	if issued.After(now.Add(nonceMaxSkew)) || !now.Before(issued.Add(k.lifetime)) {
		return NonceStale
	}
	return NonceValid
}

// IssuedAt returns the issue time written in nonce (second precision). It
// does not authenticate the nonce (the MAC binds the realm, which it does
// not take): call it only after Check. The nonce expires at IssuedAt plus
// Lifetime, the expiry to give ReplayGuard.
func (k *NonceKeeper) IssuedAt(nonce string) (time.Time, bool) {
	raw, ok := decodeNonce(nonce)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(binary.BigEndian.Uint32(raw[1:5])), 0), true
}

// nonceB64 maps base64url characters to their 6-bit values, 0xff otherwise.
var nonceB64 = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// decodeNonce decodes a NonceLen-character nonce of the current version
// without allocating (hostile input reaches it unauthenticated).
func decodeNonce(s string) (raw [nonceRawLen]byte, ok bool) {
	if len(s) != NonceLen {
		return raw, false
	}
	for i, j := 0, 0; i < NonceLen; i, j = i+4, j+3 {
		a, b, c, d := nonceB64[s[i]], nonceB64[s[i+1]], nonceB64[s[i+2]], nonceB64[s[i+3]]
		if (a|b|c|d)&0xc0 != 0 { // 0xff marks a character outside the alphabet
			return raw, false
		}
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d)
		raw[j], raw[j+1], raw[j+2] = byte(v>>16), byte(v>>8), byte(v)
	}
	return raw, raw[0] == nonceVersion
}

// NonceCounter records nonce counts so a captured Authorization cannot be
// replayed (RFC 7616 section 3.4: the server checks nc). ReplayGuard is
// the in-memory implementation, per process; NonceCountStore is the
// database-backed check that holds across nodes.
type NonceCounter interface {
	// Use returns true, and records nc, when nc is higher than every nc
	// seen for nonce; false for a repeated or lower nc. expires is when the
	// nonce stops being valid, after which the record may go.
	Use(nonce string, nc uint32, expires time.Time) bool
}

var _ NonceCounter = (*ReplayGuard)(nil)

// DefaultReplayCapacity is the entry bound NewReplayGuard uses for
// maxEntries <= 0.
const DefaultReplayCapacity = 200_000

// replayFailureRetention is the shortest time a failure mark is kept, so a
// client retrying one failed answer to an already expired nonce still
// counts once.
const replayFailureRetention = time.Minute

// ReplayGuard tracks, in bounded memory, the highest nonce count used
// with each nonce (Use) and which failed answers were already reported
// (FirstFailure). It is sharded, each shard under its own mutex. Use and
// FirstFailure are O(1) amortized: entries are filed in one-second expiry
// buckets, and only the first entry of a new second pays an O(log b) heap
// push, b being the distinct expiry seconds in the shard (at most the
// nonce lifetime in seconds). Safe for concurrent use.
//
// Memory: each table (nc counts, failure marks) holds at most maxEntries
// entries. An entry is a 64-bit key and a 16-byte value in a Go map slot
// (plus control byte and load-factor slack) and an 8-byte reference in its
// expiry bucket: TestReplayGuardMemory measures about 54 bytes per entry
// with 200 000 entries, up to about 70 just after a map has grown. The
// 200 000 default thus costs at most about 11-14 MB per table, 28 MB for
// both. The bound is per shard (maxEntries / shards), so a table may start
// evicting slightly before it holds maxEntries in total.
//
// When a table is full, the entry closest to expiry goes first. For nc
// counts that could reopen a replay window for the evicted nonce, so the
// shard remembers the latest expiry it evicted early and refuses unknown
// nonces that expire no later (the client gets a new challenge and
// carries on with a fresh nonce, which expires later). Under a flood the
// guard fails closed, never open.
//
// Keys are 64-bit keyed hashes (hash/maphash, random seed per process):
// an attacker cannot aim collisions, and among 200 000 entries an
// accidental one has a probability near 1e-9, whose only effect is one
// refused nc (a re-challenge) or one uncounted failure.
type ReplayGuard struct {
	shards   []replayShard
	mask     uint64
	ncSeed   maphash.Seed
	failSeed maphash.Seed
	now      func() time.Time
}

// ReplayOption configures NewReplayGuard.
type ReplayOption func(*ReplayGuard)

// WithReplayClock sets the clock the guard expires entries by. Pass the
// NonceKeeper's clock: the guard refuses nonces whose expiry has passed by
// this clock.
func WithReplayClock(now func() time.Time) ReplayOption {
	return func(g *ReplayGuard) {
		if now != nil {
			g.now = now
		}
	}
}

type replayShard struct {
	mu   sync.Mutex
	nc   replayTable
	fail replayTable
	_    [64]byte // keep shards' mutexes on separate cache lines
}

// NewReplayGuard returns a guard holding at most maxEntries nc records
// (and as many failure marks); maxEntries <= 0 means
// DefaultReplayCapacity. The clock is time.Now unless WithReplayClock is
// given.
func NewReplayGuard(maxEntries int, opts ...ReplayOption) *ReplayGuard {
	if maxEntries <= 0 {
		maxEntries = DefaultReplayCapacity
	}
	// Up to 64 shards, but at least 256 entries per shard so eviction
	// stays close to the global order of expiry.
	n := 1
	for n < 64 && maxEntries/(n*2) >= 256 {
		n *= 2
	}
	per := maxEntries / n // n*per <= maxEntries: the bound holds globally
	g := &ReplayGuard{
		shards:   make([]replayShard, n),
		mask:     uint64(n - 1),
		ncSeed:   maphash.MakeSeed(),
		failSeed: maphash.MakeSeed(),
		now:      time.Now,
	}
	for i := range g.shards {
		g.shards[i].nc.init(per)
		g.shards[i].fail.init(per)
	}
	for _, o := range opts {
		o(g)
	}
	return g
}

// Use returns true, and records nc, when nc is higher than every nc seen
// for nonce: a client that reuses a valid nonce with a higher nc (on a
// refresh) is accepted. It returns false for a repeated or lower nc, for
// nc 0 (counts start at 1), for a nonce whose expires has passed, and for
// an unknown nonce that may have been evicted early (see ReplayGuard).
// Call it only after the response verified, so only authenticated
// clients fill the table.
func (g *ReplayGuard) Use(nonce string, nc uint32, expires time.Time) bool {
	now := g.now()
	if nc == 0 || !expires.After(now) {
		return false
	}
	key := maphash.String(g.ncSeed, nonce)
	sh := &g.shards[key&g.mask]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := &sh.nc
	t.sweep(now.Unix())
	exp := expires.Unix()
	if e, ok := t.m[key]; ok {
		if nc <= e.nc {
			return false
		}
		t.put(key, replayEntry{exp: max(exp, e.exp), nc: nc}, e.exp)
		return true
	}
	if exp <= t.evicted {
		return false
	}
	t.add(key, replayEntry{exp: exp, nc: nc}, true)
	return true
}

// FirstFailure returns true the first time a failed answer (nonce,
// response) is reported and false for the same pair again, so a client
// retrying one wrong answer many times counts as one failed login. Marks
// are kept until expires, and at least a minute.
func (g *ReplayGuard) FirstFailure(nonce, response string, expires time.Time) bool {
	now := g.now()
	if floor := now.Add(replayFailureRetention); expires.Before(floor) {
		expires = floor
	}
	var h maphash.Hash
	h.SetSeed(g.failSeed)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(nonce))) // unambiguous pair encoding
	h.Write(n[:])
	h.WriteString(nonce)
	h.WriteString(response)
	key := h.Sum64()
	sh := &g.shards[key&g.mask]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := &sh.fail
	t.sweep(now.Unix())
	if _, ok := t.m[key]; ok {
		return false
	}
	// An evicted mark only makes a retry count twice: no watermark.
	t.add(key, replayEntry{exp: expires.Unix()}, false)
	return true
}

// Len returns the number of nonces whose nc is being tracked, after
// dropping the expired ones.
func (g *ReplayGuard) Len() int {
	now := g.now().Unix()
	n := 0
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		sh.nc.sweep(now)
		sh.fail.sweep(now)
		n += len(sh.nc.m)
		sh.mu.Unlock()
	}
	return n
}

// replayEntry is one record: when it may go (unix seconds) and, for nc
// tracking, the highest nc used.
type replayEntry struct {
	exp int64
	nc  uint32
}

// replayTable is a bounded map with expiry buckets of one second: a
// min-heap of the bucket seconds in use and, per second, the keys that
// expire in it. Buckets may hold stale references (a key deleted or moved
// to a later second); they are skipped when the bucket is drained.
type replayTable struct {
	m       map[uint64]replayEntry
	buckets map[int64][]uint64
	secs    []int64 // min-heap of the keys of buckets
	max     int
	// evicted is the latest expiry second evicted before it was due.
	evicted int64
}

func (t *replayTable) init(max int) {
	t.max = max
	t.m = make(map[uint64]replayEntry)
	t.buckets = make(map[int64][]uint64)
}

// put stores e under key; oldExp is the previous expiry (to know whether
// the key must be filed under a new bucket).
func (t *replayTable) put(key uint64, e replayEntry, oldExp int64) {
	t.m[key] = e
	if e.exp != oldExp {
		t.file(key, e.exp)
	}
}

// add inserts a new key, evicting the entry closest to expiry first when
// the table is full.
func (t *replayTable) add(key uint64, e replayEntry, watermark bool) {
	for len(t.m) >= t.max && len(t.secs) > 0 {
		t.evictOne(watermark)
	}
	t.m[key] = e
	t.file(key, e.exp)
}

func (t *replayTable) file(key uint64, sec int64) {
	b, ok := t.buckets[sec]
	if !ok {
		t.pushSec(sec)
	}
	t.buckets[sec] = append(b, key)
}

// evictOne removes one live entry from the earliest bucket.
func (t *replayTable) evictOne(watermark bool) {
	for len(t.secs) > 0 {
		sec := t.secs[0]
		b := t.buckets[sec]
		for len(b) > 0 {
			key := b[len(b)-1]
			b = b[:len(b)-1]
			if e, ok := t.m[key]; ok && e.exp == sec {
				delete(t.m, key)
				if watermark && sec > t.evicted {
					t.evicted = sec
				}
				if len(b) == 0 {
					t.dropFirstBucket(sec)
				} else {
					t.buckets[sec] = b
				}
				return
			}
		}
		t.dropFirstBucket(sec)
	}
}

// sweep deletes every entry whose expiry second is before now.
func (t *replayTable) sweep(now int64) {
	swept := false
	for len(t.secs) > 0 && t.secs[0] < now {
		swept = true
		sec := t.secs[0]
		for _, key := range t.buckets[sec] {
			if e, ok := t.m[key]; ok && e.exp == sec {
				delete(t.m, key)
			}
		}
		t.dropFirstBucket(sec)
	}
	if swept && len(t.m) == 0 {
		// Let the maps shrink after a burst: Go maps never release
		// their tables otherwise.
		// Any bucket left holds only stale references.
		t.m = make(map[uint64]replayEntry)
		t.buckets = make(map[int64][]uint64)
		t.secs = nil
	}
}

func (t *replayTable) dropFirstBucket(sec int64) {
	delete(t.buckets, sec)
	t.popSec()
}

func (t *replayTable) pushSec(s int64) {
	t.secs = append(t.secs, s)
	i := len(t.secs) - 1
	for i > 0 {
		p := (i - 1) / 2
		if t.secs[p] <= t.secs[i] {
			break
		}
		t.secs[p], t.secs[i] = t.secs[i], t.secs[p]
		i = p
	}
}

func (t *replayTable) popSec() {
	n := len(t.secs) - 1
	t.secs[0] = t.secs[n]
	t.secs = t.secs[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && t.secs[l] < t.secs[m] {
			m = l
		}
		if r < n && t.secs[r] < t.secs[m] {
			m = r
		}
		if m == i {
			return
		}
		t.secs[i], t.secs[m] = t.secs[m], t.secs[i]
		i = m
	}
}
