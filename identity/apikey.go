package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"hash/crc32"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// API keys are long-lived credentials for programs, sent in X-API-Key. The
// format follows GitHub's tokens:
//
//	ucak_<id>_<secret><crc>
//	ucak_ 12 chars id _ 30 chars secret 6 chars checksum (54 in all)
//
// The prefix lets secret scanners and people recognise a leaked key. The id
// (12 base62 characters) is public: it names the key in lists, URLs and
// events and is the database lookup key. The secret is 30 base62 characters
// from crypto/rand (about 178 bits). The checksum is the CRC32 (IEEE) of
// everything before it, in 6 base62 characters, so ParseAPIKey refuses a
// mistyped or made-up key without asking the database.
const (
	// APIKeyPrefix starts every API key.
	APIKeyPrefix = "ucak_"

	apiKeyIDLen     = 12
	apiKeySecretLen = 30
	apiKeyCRCLen    = 6
	apiKeyLen       = len(APIKeyPrefix) + apiKeyIDLen + 1 + apiKeySecretLen + apiKeyCRCLen
)

// Limits on API keys.
const (
	// MaxAPIKeyNameLen is the longest key name, in characters.
	MaxAPIKeyNameLen = 64
	// MaxActiveAPIKeys is how many active (neither revoked nor expired) keys
	// one user may hold.
	MaxActiveAPIKeys = 50
	// DefaultAPIKeyFlushInterval is how often Run writes last-used times.
	DefaultAPIKeyFlushInterval = 10 * time.Second
)

// base62 is the alphabet of ids, secrets and checksums.
const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// APIKey is an API key as stored and listed: never the key itself, whose
// hash the store keeps apart (see APIKeyStore).
type APIKey struct {
	ID     string // public id, part of the key; also the lookup key
	UserID string // owner
	Name   string // unique among the owner's unrevoked keys
	// Scopes are the scopes granted at creation (normalized, sorted). The
	// key acts with EffectiveScopes(Scopes, owner's current roles).
	Scopes     []string
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never expires
	LastUsedAt time.Time // zero: never used; written in the background, so up to a flush interval late
	RevokedAt  time.Time // zero: not revoked
}

// API key states, as Status reports them.
const (
	APIKeyActive  = "active"
	APIKeyExpired = "expired"
	APIKeyRevoked = "revoked"
)

// Status returns APIKeyRevoked, APIKeyExpired or APIKeyActive for k at now.
func (k *APIKey) Status(now time.Time) string {
	switch {
	case !k.RevokedAt.IsZero():
		return APIKeyRevoked
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return APIKeyExpired
	}
	return APIKeyActive
}

// APIKeyStore persists API keys. Implementations must pass store/storetest.
// All methods are safe for concurrent use.
//
// Errors: a missing key (or owner, in CreateAPIKey) matches ErrNotFound; a
// taken id, or a name already used by another unrevoked key of the same
// owner, matches ErrConflict. Any other error is an infrastructure failure.
type APIKeyStore interface {
	// CreateAPIKey inserts k with the hash of the key.
	CreateAPIKey(ctx context.Context, k *APIKey, hash []byte) error
	// APIKeyByID returns the key with id and its hash, whatever its state
	// (revoked and expired keys too: the caller decides).
	APIKeyByID(ctx context.Context, id string) (*APIKey, []byte, error)
	// ListAPIKeys returns every key of the user, revoked and expired ones
	// included, newest CreatedAt first; none (not an error) for an unknown
	// user.
	ListAPIKeys(ctx context.Context, userID string) ([]*APIKey, error)
	// RevokeAPIKey sets RevokedAt to at. Revoking a revoked key changes
	// nothing (the first RevokedAt stays) and is not an error.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
	// TouchAPIKeys sets LastUsedAt of each key in lastUsed to its time,
	// unless the stored time is later; ids of keys that no longer exist are
	// skipped. One transaction for the whole map.
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error
}

// errAPIKey is the one answer to every bad key, whatever was wrong with
// it, so a caller learns nothing about which keys or owners exist.
func errAPIKey(op string) error {
	return &Error{Op: op, Code: CodeUnauthorized, Message: "invalid API key"}
}

// ParseAPIKey checks the form of s (prefix, lengths, alphabet, checksum)
// without any store access and returns the key's id. Anything that is not
// a well-formed key fails with CodeUnauthorized.
func ParseAPIKey(s string) (id string, err error) {
	const op = "identity.ParseAPIKey"
	if len(s) != apiKeyLen || !strings.HasPrefix(s, APIKeyPrefix) {
		return "", errAPIKey(op)
	}
	rest := s[len(APIKeyPrefix):]
	id, sep, body := rest[:apiKeyIDLen], rest[apiKeyIDLen], rest[apiKeyIDLen+1:]
	if sep != '_' || !isBase62(id) || !isBase62(body) {
		return "", errAPIKey(op)
	}
	cut := len(s) - apiKeyCRCLen
	if s[cut:] != checksum(s[:cut]) {
		return "", errAPIKey(op)
	}
	return id, nil
}

func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(base62, s[i]) < 0 {
			return false
		}
	}
	return true
}

// checksum returns the CRC32 (IEEE) of s in apiKeyCRCLen base62
// characters, most significant first, zero-padded (62^6 > 2^32).
func checksum(s string) string {
	v := crc32.ChecksumIEEE([]byte(s))
	var b [apiKeyCRCLen]byte
	for i := apiKeyCRCLen - 1; i >= 0; i-- {
		b[i] = base62[v%62]
		v /= 62
	}
	return string(b[:])
}

// randomBase62 returns n characters drawn uniformly from base62 with
// crypto/rand.
func randomBase62(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			// 248 = 4*62: rejecting larger bytes keeps the draw uniform.
			if b < 248 && len(out) < n {
				out = append(out, base62[int(b)%62])
			}
		}
	}
	return string(out), nil
}

// newAPIKey returns a fresh key and its id.
func newAPIKey() (key, id string, err error) {
	if id, err = randomBase62(apiKeyIDLen); err != nil {
		return "", "", err
	}
	secret, err := randomBase62(apiKeySecretLen)
	if err != nil {
		return "", "", err
	}
	body := APIKeyPrefix + id + "_" + secret
	return body + checksum(body), id, nil
}

// hashAPIKey returns the stored form of key: SHA-256 of the whole key. A
// fast hash is the right tool here, unlike for passwords: the secret has
// about 178 random bits, so no dictionary or brute-force search over it is
// feasible, and a slow hash (Argon2) would only make every API request
// pay tens of milliseconds for nothing. A database leak yields hashes that
// cannot be turned back into keys.
func hashAPIKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// validateKeyName checks an API key name: 1 to MaxAPIKeyNameLen printable
// characters.
func validateKeyName(op, name string) error {
	if name == "" {
		return Invalid(op, "name", "API key name is required")
	}
	if !utf8.ValidString(name) {
		return Invalid(op, "name", "API key name is not valid UTF-8")
	}
	if utf8.RuneCountInString(name) > MaxAPIKeyNameLen {
		return Invalid(op, "name", "API key name is longer than %d characters", MaxAPIKeyNameLen)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return Invalid(op, "name", "API key name contains a character that is not printable")
		}
	}
	return nil
}

// APIKeys creates, lists, revokes and authenticates API keys. The HTTP API
// and the CLI both go through it. Create it with NewAPIKeys; run Run in the
// background of a server so last-used times reach the store.
type APIKeys struct {
	store  APIKeyStore
	users  UserStore
	events EventSink
	now    func() time.Time

	mu       sync.Mutex
	lastUsed map[string]time.Time // key id -> last use not yet written
}

// NewAPIKeys returns the API key service over store, reading owners from
// users. events receives ActionAPIKeyCreated and ActionAPIKeyRevoked (nil:
// dropped); now is the clock (nil: time.Now).
func NewAPIKeys(store APIKeyStore, users UserStore, events EventSink, now func() time.Time) *APIKeys {
	if events == nil {
		events = nopSink{}
	}
	if now == nil {
		now = time.Now
	}
	return &APIKeys{store: store, users: users, events: events, now: now, lastUsed: map[string]time.Time{}}
}

func (a *APIKeys) timestamp() time.Time { return a.now().UTC().Truncate(time.Millisecond) }

// Create makes a key for the user ownerID called name (1 to
// MaxAPIKeyNameLen printable characters, surrounding space trimmed),
// granting scopes, expiring after ttl (0: never). It returns the key, which
// is never stored and cannot be shown again, and its record.
//
// Errors: CodeInvalid naming the field (name, scopes, expires); ErrNotFound
// for an unknown owner; CodeForbidden for a disabled owner, or a scope
// beyond the owner's roles (RoleScopes) or beyond the limit set with
// WithScopeLimit; ErrConflict for a name another unrevoked key of the
// owner has, or when the owner already holds MaxActiveAPIKeys active keys.
func (a *APIKeys) Create(ctx context.Context, ownerID, name string, scopes []string, ttl time.Duration) (string, *APIKey, error) {
	const op = "identity.CreateAPIKey"
	name = strings.TrimSpace(name)
	if err := validateKeyName(op, name); err != nil {
		return "", nil, err
	}
	scopes, err := ValidateScopes(scopes)
	if err != nil {
		return "", nil, err
	}
	if len(scopes) == 0 {
		return "", nil, Invalid(op, "scopes", "at least one scope is required (known: %s)", strings.Join(KnownScopes(), ", "))
	}
	if ttl < 0 {
		return "", nil, Invalid(op, "expires", "the expiry must be in the future")
	}
	owner, err := a.users.UserByID(ctx, ownerID)
	if err != nil {
		return "", nil, err
	}
	if !owner.Active {
		return "", nil, E(op, CodeForbidden, "user %s is disabled", owner.Username)
	}
	granted := RoleScopes(owner.Roles)
	limit, limited := scopeLimit(ctx)
	for _, s := range scopes {
		if !HasScope(granted, s) {
			return "", nil, &Error{Op: op, Code: CodeForbidden, Field: "scopes",
				Message: "scope " + strconv.Quote(s) + " is beyond the roles of user " + owner.Username}
		}
		if limited && !HasScope(limit, s) {
			return "", nil, &Error{Op: op, Code: CodeForbidden, Field: "scopes",
				Message: "scope " + strconv.Quote(s) + " is beyond the caller's own scopes"}
		}
	}
	now := a.timestamp()
	existing, err := a.store.ListAPIKeys(ctx, owner.ID)
	if err != nil {
		return "", nil, err
	}
	active := 0
	for _, k := range existing {
		if k.RevokedAt.IsZero() && k.Name == name {
			return "", nil, nameTaken(op, name, owner)
		}
		if k.Status(now) == APIKeyActive {
			active++
		}
	}
	// Two concurrent creations may both pass this count: the cap is a
	// guard against runaway scripts, not an exact quota.
	if active >= MaxActiveAPIKeys {
		return "", nil, E(op, CodeConflict, "user %s already has %d active API keys; revoke one first", owner.Username, MaxActiveAPIKeys)
	}
	key, id, err := newAPIKey()
	if err != nil {
		return "", nil, Internal(op, err)
	}
	k := &APIKey{ID: id, UserID: owner.ID, Name: name, Scopes: scopes, CreatedAt: now}
	if ttl > 0 {
		k.ExpiresAt = now.Add(ttl).Truncate(time.Millisecond)
	}
	if err := a.store.CreateAPIKey(ctx, k, hashAPIKey(key)); err != nil {
		if errors.Is(err, ErrConflict) {
			// The name check above passed, so a concurrent creation took
			// the name (a 71-bit id colliding is not worth a retry).
			return "", nil, nameTaken(op, name, owner)
		}
		return "", nil, err
	}
	emit(ctx, a.events, now, ActionAPIKeyCreated, owner.ID, OutcomeSuccess, keyDetail(k))
	return key, k, nil
}

func nameTaken(op, name string, owner *User) error {
	return &Error{Op: op, Code: CodeConflict, Field: "name",
		Message: "user " + owner.Username + " already has an API key named " + strconv.Quote(name)}
}

// keyDetail is the event detail of k: its id and name, never the key.
func keyDetail(k *APIKey) string { return "key " + k.ID + " name " + strconv.Quote(k.Name) }

// List returns every key of the user ownerID (revoked and expired ones
// too), newest first. An unknown owner matches ErrNotFound.
func (a *APIKeys) List(ctx context.Context, ownerID string) ([]*APIKey, error) {
	if _, err := a.users.UserByID(ctx, ownerID); err != nil {
		return nil, err
	}
	return a.store.ListAPIKeys(ctx, ownerID)
}

// Get returns the key with id (public, not secret), or an error matching
// ErrNotFound.
func (a *APIKeys) Get(ctx context.Context, id string) (*APIKey, error) {
	k, _, err := a.store.APIKeyByID(ctx, id)
	return k, err
}

// Revoke revokes the key with id at once: the next request with it is
// refused. Revoking a revoked key succeeds and changes nothing. An unknown
// id matches ErrNotFound.
func (a *APIKeys) Revoke(ctx context.Context, id string) error {
	k, _, err := a.store.APIKeyByID(ctx, id)
	if err != nil {
		return err
	}
	if !k.RevokedAt.IsZero() {
		return nil
	}
	now := a.timestamp()
	if err := a.store.RevokeAPIKey(ctx, id, now); err != nil {
		return err
	}
	emit(ctx, a.events, now, ActionAPIKeyRevoked, k.UserID, OutcomeSuccess, keyDetail(k))
	return nil
}

// Authenticate checks key and returns its record, its owner and the scopes
// it acts with now: EffectiveScopes of the key's scopes and the owner's
// current roles (possibly none, when the owner lost the roles behind every
// scope; the caller then refuses each operation with 403).
//
// A malformed key or a bad checksum is refused before any store access. A
// key that is unknown, has the wrong secret, is revoked or expired, or
// whose owner is gone or disabled, fails with CodeUnauthorized and one
// generic message. Other errors are infrastructure failures.
//
// The use is recorded in memory and written by Run: the request path never
// writes to the store.
func (a *APIKeys) Authenticate(ctx context.Context, key string) (*APIKey, *User, []string, error) {
	const op = "identity.AuthenticateAPIKey"
	id, err := ParseAPIKey(key)
	if err != nil {
		return nil, nil, nil, errAPIKey(op)
	}
	k, hash, err := a.store.APIKeyByID(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil, errAPIKey(op)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	// Constant-time: this path is reachable unauthenticated, and the id is
	// public, so only the secret part may be unknown to the caller.
	if subtle.ConstantTimeCompare(hashAPIKey(key), hash) != 1 {
		return nil, nil, nil, errAPIKey(op)
	}
	now := a.timestamp()
	if k.Status(now) != APIKeyActive {
		return nil, nil, nil, errAPIKey(op)
	}
	owner, err := a.users.UserByID(ctx, k.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil, errAPIKey(op)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if !owner.Active {
		return nil, nil, nil, errAPIKey(op)
	}
	a.mu.Lock()
	a.lastUsed[k.ID] = now
	a.mu.Unlock()
	k.LastUsedAt = now
	return k, owner, EffectiveScopes(k.Scopes, owner.Roles), nil
}

// Flush writes the last-used times recorded since the previous flush in one
// store call. On failure they are kept for the next flush.
func (a *APIKeys) Flush(ctx context.Context) error {
	a.mu.Lock()
	pending := a.lastUsed
	a.lastUsed = map[string]time.Time{}
	a.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	err := a.store.TouchAPIKeys(ctx, pending)
	if err != nil {
		a.mu.Lock()
		for id, t := range pending {
			if cur, ok := a.lastUsed[id]; !ok || t.After(cur) {
				a.lastUsed[id] = t
			}
		}
		a.mu.Unlock()
	}
	return err
}

// Run flushes last-used times every interval (DefaultAPIKeyFlushInterval
// when every <= 0) until ctx ends, then once more (within 5 seconds) and
// returns that last flush's error. A failed periodic flush keeps its times
// for the next one.
func (a *APIKeys) Run(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		every = DefaultAPIKeyFlushInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = a.Flush(ctx)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return a.Flush(fctx)
		}
	}
}
