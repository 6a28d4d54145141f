package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the Argon2id cost parameters (RFC 9106 section 3.1).
type Argon2Params struct {
	Memory  uint32 // memory size m in KiB
	Time    uint32 // number of passes t
	Threads uint8  // degree of parallelism p
	SaltLen uint32 // salt length in bytes
	KeyLen  uint32 // tag (hash output) length in bytes
}

// Bounds on Argon2id parameters. They apply to the configuration
// (Argon2Params.Validate) and to every stored PHC string (ParsePHC), so that
// a tampered database row cannot make a login allocate or compute without
// limit.
const (
	maxArgon2Memory  = 4 << 20 // KiB, that is 4 GiB
	maxArgon2Time    = 64
	minArgon2SaltLen = 8 // RFC 9106 section 3.1: at least 8 bytes
	maxArgon2SaltLen = 64
	minArgon2KeyLen  = 16 // below 128 bits the tag is guessable offline
	maxArgon2KeyLen  = 64
	// maxPHCLen bounds a PHC string before any parsing: the longest valid
	// one (7-digit m, 2-digit t, 3-digit p, 64-byte salt and key) has 209
	// bytes.
	maxPHCLen = 256
)

// DefaultArgon2Params returns the second recommended option of RFC 9106
// section 4: Argon2id with 64 MiB of memory, 3 passes, 4 lanes, a 16-byte
// salt and a 32-byte tag. It is the memory-constrained option; the first
// (2 GiB, t=1) is too much for a server verifying logins in parallel.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{Memory: 64 * 1024, Time: 3, Threads: 4, SaltLen: 16, KeyLen: 32}
}

// Validate checks that p is usable: 1 <= Threads, 1 <= Time <= 64,
// 8*Threads KiB <= Memory <= 4 GiB, 8 <= SaltLen <= 64 and
// 16 <= KeyLen <= 64 bytes.
func (p Argon2Params) Validate() error {
	if msg := checkArgon2(p.Memory, p.Time, uint32(p.Threads), p.SaltLen, p.KeyLen); msg != "" {
		return Invalid("identity.Argon2Params.Validate", "argon2", "%s", msg)
	}
	return nil
}

// checkArgon2 returns what is wrong with the parameters, or "".
func checkArgon2(memory, time, threads, saltLen, keyLen uint32) string {
	switch {
	case threads < 1 || threads > 255:
		return "argon2 threads (p) must be between 1 and 255"
	case time < 1 || time > maxArgon2Time:
		return fmt.Sprintf("argon2 time (t) must be between 1 and %d", maxArgon2Time)
	case uint64(memory) < 8*uint64(threads):
		return "argon2 memory (m) must be at least 8 KiB per thread"
	case memory > maxArgon2Memory:
		return fmt.Sprintf("argon2 memory (m) must be at most %d KiB (4 GiB)", maxArgon2Memory)
	case saltLen < minArgon2SaltLen || saltLen > maxArgon2SaltLen:
		return fmt.Sprintf("argon2 salt length must be between %d and %d bytes", minArgon2SaltLen, maxArgon2SaltLen)
	case keyLen < minArgon2KeyLen || keyLen > maxArgon2KeyLen:
		return fmt.Sprintf("argon2 key length must be between %d and %d bytes", minArgon2KeyLen, maxArgon2KeyLen)
	}
	return ""
}

// phcB64 is the PHC string format's base64: the standard alphabet without
// padding. Strict so that only the canonical spelling of a value decodes.
var phcB64 = base64.RawStdEncoding.Strict()

// EncodePHC formats an Argon2id (version 19) hash as the reference argon2
// CLI prints it with -e: $argon2id$v=19$m=M,t=T,p=P$SALT$HASH, salt and
// hash in standard base64 without padding. The lengths come from salt and
// key; p.SaltLen and p.KeyLen are not consulted.
func EncodePHC(p Argon2Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads,
		phcB64.EncodeToString(salt), phcB64.EncodeToString(key))
}

// ParsePHC parses a PHC string written by EncodePHC (or the reference
// argon2 CLI) and returns its parameters (SaltLen and KeyLen set from the
// decoded lengths), salt and key. It is strict: only argon2id version 19,
// m, t and p present in that order as canonical decimals, canonical
// unpadded base64, no trailing data, and every value inside the bounds of
// Argon2Params.Validate, checked before anything is allocated for hashing.
// Errors match ErrInvalid (field "password_hash") and never echo s.
func ParsePHC(s string) (params Argon2Params, salt, key []byte, err error) {
	const op = "identity.ParsePHC"
	bad := func(msg string) (Argon2Params, []byte, []byte, error) {
		return Argon2Params{}, nil, nil, Invalid(op, "password_hash", "malformed argon2id PHC string: %s", msg)
	}
	if len(s) > maxPHCLen {
		return bad("too long")
	}
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" {
		return bad("want $argon2id$v=19$m=M,t=T,p=P$SALT$HASH")
	}
	if f[1] != "argon2id" {
		return bad("algorithm is not argon2id")
	}
	if f[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return bad("version is not v=19")
	}
	kv := strings.Split(f[3], ",")
	if len(kv) != 3 {
		return bad("want exactly the parameters m, t and p")
	}
	var mtp [3]uint32
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(kv[i], name)
		if !ok {
			return bad("want exactly the parameters m, t and p, in that order")
		}
		n, ok := parseDecimal(v)
		if !ok {
			return bad("parameter " + name[:1] + " is not a canonical decimal number")
		}
		mtp[i] = n
	}
	// Check the lengths from the encoded size before decoding anything.
	saltLen, keyLen := uint32(phcB64.DecodedLen(len(f[4]))), uint32(phcB64.DecodedLen(len(f[5])))
	if msg := checkArgon2(mtp[0], mtp[1], mtp[2], saltLen, keyLen); msg != "" {
		return bad(msg)
	}
	if salt, err = decodePHCBase64(f[4]); err != nil {
		return bad("salt is not canonical unpadded base64")
	}
	if key, err = decodePHCBase64(f[5]); err != nil {
		return bad("hash is not canonical unpadded base64")
	}
	params = Argon2Params{
		Memory: mtp[0], Time: mtp[1], Threads: uint8(mtp[2]),
		SaltLen: uint32(len(salt)), KeyLen: uint32(len(key)),
	}
	return params, salt, key, nil
}

// parseDecimal accepts 1 to 10 ASCII digits without a sign or a leading
// zero (so that each value has one spelling) that fit in a uint32.
func parseDecimal(s string) (uint32, bool) {
	if len(s) == 0 || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

// decodePHCBase64 decodes s and insists that it is the canonical encoding:
// the decoder alone would skip CR and LF.
func decodePHCBase64(s string) ([]byte, error) {
	b, err := phcB64.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if phcB64.EncodeToString(b) != s {
		return nil, errors.New("non-canonical base64")
	}
	return b, nil
}

// Hasher hashes and verifies passwords with Argon2id. Each run holds
// Memory KiB, so the number of runs at once is bounded by a semaphore: at
// most MaxConcurrent runs with the configured parameters, which keeps memory
// near MaxConcurrent*Memory KiB however many logins arrive. Callers beyond
// that wait in line (until their context ends). A Hasher is safe for
// concurrent use.
type Hasher struct {
	params Argon2Params
	// sem holds one token per running slot; a run with more memory than
	// configured takes several (see weight).
	sem chan struct{}
	// gather lets one caller at a time collect several slots, so two
	// callers each holding part of what they need cannot deadlock.
	gather chan struct{}
	// dummy is a PHC string with the configured parameters, a random salt
	// and a random tag that no password produces, for DummyVerify.
	dummy string

	inFlight  atomic.Int64
	peak      atomic.Int64
	queued    atomic.Int64
	queueWait atomic.Int64 // nanoseconds
	runs      atomic.Int64
}

// HasherStats is a snapshot of a Hasher's load, for metrics.
type HasherStats struct {
	InFlight  int64         // Argon2id runs in progress now
	Peak      int64         // most runs ever in progress at once
	Queued    int64         // callers waiting for a slot now
	QueueWait time.Duration // total time callers have waited for a slot, including those that gave up
	Runs      int64         // Argon2id runs started, dummy verifies included
}

// NewHasher returns a Hasher that hashes with p (validated) and runs at
// most maxConcurrent Argon2id computations at once; maxConcurrent <= 0
// means runtime.NumCPU().
func NewHasher(p Argon2Params, maxConcurrent int) (*Hasher, error) {
	const op = "identity.NewHasher"
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.NumCPU()
	}
	salt := make([]byte, p.SaltLen)
	key := make([]byte, p.KeyLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, Internal(op, err)
	}
	if _, err := rand.Read(key); err != nil {
		return nil, Internal(op, err)
	}
	return &Hasher{
		params: p,
		sem:    make(chan struct{}, maxConcurrent),
		gather: make(chan struct{}, 1),
		dummy:  EncodePHC(p, salt, key),
	}, nil
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Argon2Params { return h.params }

// MaxConcurrent returns the most Argon2id runs with the configured
// parameters that may be in progress at once.
func (h *Hasher) MaxConcurrent() int { return cap(h.sem) }

// Stats returns the current load figures.
func (h *Hasher) Stats() HasherStats {
	return HasherStats{
		InFlight:  h.inFlight.Load(),
		Peak:      h.peak.Load(),
		Queued:    h.queued.Load(),
		QueueWait: time.Duration(h.queueWait.Load()),
		Runs:      h.runs.Load(),
	}
}

// Hash returns the PHC string of password under the configured parameters
// and a fresh random salt. It waits for a slot; if ctx ends first the error
// has code CodeUnavailable and wraps ctx.Err().
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	const op = "identity.Hasher.Hash"
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", Internal(op, err)
	}
	var key []byte
	err := h.run(ctx, h.params.Memory, func() {
		key = argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
	})
	if err != nil {
		return "", cancelled(op, err)
	}
	return EncodePHC(h.params, salt, key), nil
}

// Verify reports whether password matches phc, computed with the
// parameters stored in phc. needsRehash is true when it matches but phc's
// parameters (m, t, p, salt or key length) differ from the configured ones:
// the caller should then store a fresh Hash. A wrong password is
// (false, false, nil); err is only for a malformed phc (CodeInternal: the
// stored value is corrupt) or ctx ending while waiting for a slot
// (CodeUnavailable, wrapping ctx.Err()).
func (h *Hasher) Verify(ctx context.Context, phc, password string) (ok, needsRehash bool, err error) {
	const op = "identity.Hasher.Verify"
	p, salt, key, err := ParsePHC(phc)
	if err != nil {
		return false, false, Internal(op, err)
	}
	var got []byte
	err = h.run(ctx, p.Memory, func() {
		got = argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	})
	if err != nil {
		return false, false, cancelled(op, err)
	}
	// Constant-time comparison: this path is reachable unauthenticated.
	ok = subtle.ConstantTimeCompare(got, key) == 1
	return ok, ok && p != h.params, nil
}

// DummyVerify costs what a Verify of a hash with the configured parameters
// costs (the same parsing, slot, Argon2id run and comparison) and always
// fails. Call it for an unknown or disabled user so that response timing
// does not reveal whether the account exists. Its only error is ctx ending
// while waiting for a slot.
func (h *Hasher) DummyVerify(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, h.dummy, password)
	return err
}

// weight returns how many slots a run with memory KiB takes: one per
// configured Memory or part of it, at most all of them. A hash stored under
// larger parameters thus still keeps total memory near
// MaxConcurrent*Memory; one larger than that runs alone.
func (h *Hasher) weight(memory uint32) int {
	w := (uint64(memory) + uint64(h.params.Memory) - 1) / uint64(h.params.Memory)
	if w < 1 {
		return 1
	}
	return int(min(w, uint64(cap(h.sem))))
}

// run calls fn, an Argon2id run with memory KiB, holding the slots that
// memory takes (weight), counting it in the statistics, and reclaims its
// memory before giving the slots back. It returns ctx.Err() if ctx ends
// before the slots are free.
func (h *Hasher) run(ctx context.Context, memory uint32, fn func()) error {
	n := h.weight(memory)
	if err := h.acquire(ctx, n); err != nil {
		return err
	}
	defer h.release(n)
	cur := h.inFlight.Add(1)
	for {
		p := h.peak.Load()
		if cur <= p || h.peak.CompareAndSwap(p, cur) {
			break
		}
	}
	defer h.inFlight.Add(-1)
	h.runs.Add(1)
	fn()
	reclaim(memory)
	return nil
}

// Reclaiming Argon2id memory. Every run allocates its Memory KiB (64 MiB by
// default) afresh inside golang.org/x/crypto/argon2, which cannot reuse a
// buffer, and drops it when done. Left to the garbage collector's pacer
// (GOGC=100: collect when the heap doubles), the dropped blocks pile up
// until the next cycle, and a login burst holds about twice
// MaxConcurrent*Memory plus the previous blocks: 403 MiB at peak for a bound
// of 2 x 64 MiB, measured with BenchmarkLoginHTTP. So a large run collects
// at once, while it still holds its slot: the next run in that slot then
// reuses the freed pages, and the process stays near
// MaxConcurrent*Memory plus its other memory.
//
// A collection costs in proportion to the heap that must be scanned; the
// Argon2id block itself holds no pointers and costs nothing. Under a light
// heap (the HTTP side of a login burst) it is about a millisecond against
// a run of about 100 ms. When the scannable heap is large (a registrar busy
// with many SIP transactions), a forced collection would cost more than it
// saves, the pacer collects often anyway, and the block is a small share
// of the heap: then nothing is forced.
const (
	reclaimMinKiB  = 16 << 10 // runs with less memory leave it to the pacer
	reclaimMaxScan = 64 << 20 // no forced collection above this scannable heap
)

func reclaim(memory uint32) {
	if memory < reclaimMinKiB {
		return
	}
	s := [1]metrics.Sample{{Name: "/gc/scan/heap:bytes"}}
	metrics.Read(s[:])
	if s[0].Value.Kind() == metrics.KindUint64 && s[0].Value.Uint64() > reclaimMaxScan {
		return
	}
	runtime.GC()
}

func (h *Hasher) acquire(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n == 1 {
		select {
		case h.sem <- struct{}{}:
			return nil // a free slot: no queueing to record
		default:
		}
	}
	h.queued.Add(1)
	start := time.Now()
	defer func() {
		h.queueWait.Add(int64(time.Since(start)))
		h.queued.Add(-1)
	}()
	if n == 1 {
		select {
		case h.sem <- struct{}{}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case h.gather <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-h.gather }()
	for i := 0; i < n; i++ {
		select {
		case h.sem <- struct{}{}:
		case <-ctx.Done():
			h.release(i)
			return ctx.Err()
		}
	}
	return nil
}

func (h *Hasher) release(n int) {
	for range n {
		<-h.sem
	}
}

// cancelled wraps the context error of a caller that gave up waiting for a
// hashing slot: the server is busy, so the code is CodeUnavailable.
func cancelled(op string, err error) error {
	return &Error{Op: op, Code: CodeUnavailable, Message: "password check did not run: request ended while the server was busy", Err: err}
}
