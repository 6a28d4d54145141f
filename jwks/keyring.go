package jwks

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Keyring defaults.
const (
	// DefaultRotationPeriod is how long a key signs before its successor.
	DefaultRotationPeriod = 30 * 24 * time.Hour
	// DefaultLeadTime is how long a next key is published before it signs:
	// at least the refresh interval of common JWKS caches (1 h).
	DefaultLeadTime = time.Hour
	// DefaultRetireAfter is the default access-token lifetime (15 min) plus
	// the largest verifier leeway (60 s): no token a retired key signed can
	// still be valid when the key leaves the JWKS.
	DefaultRetireAfter = 15*time.Minute + 60*time.Second
	// DefaultRunInterval is how often Run reloads the key set and ticks.
	DefaultRunInterval = time.Minute
	// rsaKeyBits is the size of generated signing keys.
	rsaKeyBits = 2048
	// maxCASAttempts bounds how often one operation re-plans after losing a
	// compare-and-swap to another node.
	maxCASAttempts = 8
	// missReloadInterval is the least time between two reloads of the key
	// set for a kid it does not hold (Key).
	missReloadInterval = time.Second
)

var (
	// ErrNoSigningKey is returned by SignJWT when the key set has no key
	// that may sign now (only before the first successful load).
	ErrNoSigningKey = errors.New("jwks: no signing key is active")
	// ErrRotationScheduled is returned by Rotate (not immediate) while a
	// published next key is still waiting to become active.
	ErrRotationScheduled = errors.New("jwks: a key rotation is already scheduled")
)

// KeyringConfig configures NewKeyring. Store and Sealer are required.
type KeyringConfig struct {
	// Store persists the key set; every node of a deployment shares it.
	Store KeyStore
	// Sealer encrypts private keys at rest (AAD: see privateKeyAAD).
	Sealer Sealer
	// Now is the clock (default time.Now).
	Now func() time.Time
	// RotationPeriod is how long a key signs before the next one takes
	// over (default DefaultRotationPeriod).
	RotationPeriod time.Duration
	// LeadTime is how long a next key is published before it signs, so
	// verifiers caching our JWKS pick it up first (default
	// DefaultLeadTime). It must be shorter than RotationPeriod.
	LeadTime time.Duration
	// RetireAfter is how long a retired key stays published: the longest
	// token lifetime plus leeway (default DefaultRetireAfter).
	RetireAfter time.Duration
	// Logger receives rotation events and Run's errors (default: none).
	Logger zerolog.Logger

	// generateKey replaces RSA key generation in tests.
	generateKey func() (*rsa.PrivateKey, error)
}

// KeyInfo describes one signing key, without key material.
type KeyInfo struct {
	KID        string
	Algorithm  string
	State      KeyState // as stored; SignJWT may already use a next key whose ActivateAt has passed
	CreatedAt  time.Time
	ActivateAt time.Time
	RetiredAt  time.Time
	RemoveAt   time.Time
}

// Keyring holds the deployment's RS256 signing keys: it signs access
// tokens, publishes the public keys (Document, Handler) and verifies our own
// tokens in-process (it is a KeySource). The key set lives in a KeyStore
// shared by all nodes; each node keeps a decrypted copy in memory and
// changes the store only by compare-and-swap, so rotation needs no leader.
// A Keyring is safe for concurrent use; SignJWT, Keys and Document never
// touch the store, and Key only for a kid it does not hold.
type Keyring struct {
	store       KeyStore
	sealer      Sealer
	now         func() time.Time
	period      time.Duration
	lead        time.Duration
	retireAfter time.Duration
	log         zerolog.Logger
	generate    func() (*rsa.PrivateKey, error)

	// mu serialises Reload, Tick and Rotate, the writers of view and privs.
	mu sync.Mutex
	// privs caches decrypted private keys by kid (non-retired keys only).
	privs map[string]*rsa.PrivateKey
	// view is the last loaded or saved key set, read without locking.
	view atomic.Pointer[keyView]

	// missMu serialises the reloads Key makes for unknown kids; lastMiss
	// is when the last one started (zero before the first).
	missMu   sync.Mutex
	lastMiss time.Time
}

// keyView is an immutable snapshot of the key set with everything derived
// from it.
type keyView struct {
	version int64
	keys    []*viewKey // by ActivateAt, then CreatedAt, then kid
	byKID   map[string]*viewKey
	doc     Document
	body    []byte // JSON encoding of doc
	etag    string // strong ETag of body
}

type viewKey struct {
	stored StoredKey
	pub    *rsa.PublicKey
	// priv is nil for retired keys: they never sign again, so their private
	// part is never decrypted.
	priv *rsa.PrivateKey
	// headers caches the encoded JOSE header per typ.
	headers sync.Map
}

// NewKeyring loads the key set from cfg.Store and brings it up to date
// (Tick): on an empty store it creates an RSA-2048 key that is active at
// once. When another node saves first, it reloads and uses that node's
// keys.
func NewKeyring(ctx context.Context, cfg KeyringConfig) (*Keyring, error) {
	if cfg.Store == nil || cfg.Sealer == nil {
		return nil, errors.New("jwks.NewKeyring: Store and Sealer are required")
	}
	k := &Keyring{
		store:       cfg.Store,
		sealer:      cfg.Sealer,
		now:         orNow(cfg.Now),
		period:      cmp.Or(cfg.RotationPeriod, DefaultRotationPeriod),
		lead:        cmp.Or(cfg.LeadTime, DefaultLeadTime),
		retireAfter: cmp.Or(cfg.RetireAfter, DefaultRetireAfter),
		log:         cfg.Logger,
		generate:    cfg.generateKey,
		privs:       map[string]*rsa.PrivateKey{},
	}
	if k.generate == nil {
		k.generate = func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, rsaKeyBits) }
	}
	if k.period < 0 || k.lead < 0 || k.retireAfter < 0 {
		return nil, errors.New("jwks.NewKeyring: durations must not be negative")
	}
	if k.lead >= k.period {
		return nil, fmt.Errorf("jwks.NewKeyring: LeadTime %v must be shorter than RotationPeriod %v", k.lead, k.period)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(ctx); err != nil {
		return nil, err
	}
	if err := k.tickLocked(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// SignJWT returns a compact JWS (RS256) with header
// {"alg":"RS256","kid":...,"typ":typ} (typ omitted when empty) and
// json.Marshal(claims) as payload. The signing key is chosen by time: among
// keys that are not retired, the one with the latest ActivateAt not after
// now (or stored as active), so all nodes switch keys at the same instant
// even before the store records the promotion.
func (k *Keyring) SignJWT(typ string, claims any) (string, error) {
	sk := k.view.Load().signer(k.now())
	if sk == nil {
		return "", ErrNoSigningKey
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("jwks: encoding claims: %w", err)
	}
	hdr := sk.header(typ)
	sigLen := b64.EncodedLen(sk.priv.Size())
	buf := make([]byte, 0, len(hdr)+1+b64.EncodedLen(len(payload))+1+sigLen)
	buf = append(buf, hdr...)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, payload)
	sum := sha256.Sum256(buf)
	sig, err := rsa.SignPKCS1v15(nil, sk.priv, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("jwks: signing: %w", err)
	}
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, sig)
	return string(buf), nil
}

// header returns the base64url JOSE header for typ, encoded once per typ.
func (vk *viewKey) header(typ string) string {
	if h, ok := vk.headers.Load(typ); ok {
		return h.(string)
	}
	j, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ,omitempty"`
	}{AlgRS256, vk.stored.KID, typ})
	h := b64.EncodeToString(j)
	vk.headers.Store(typ, h)
	return h
}

// signer returns the key that signs at now, or nil.
func (v *keyView) signer(now time.Time) *viewKey {
	if v == nil {
		return nil
	}
	if i := signerIndex(v.keys, func(vk *viewKey) *StoredKey { return &vk.stored }, now); i >= 0 {
		return v.keys[i]
	}
	return nil
}

// canSign reports whether a key may sign at now: not retired, and either
// due by the clock or already recorded as active (a node whose clock runs a
// little behind the one that promoted it must not stop signing).
func canSign(k *StoredKey, now time.Time) bool {
	return k.State != StateRetired && (k.State == StateActive || !k.ActivateAt.After(now))
}

// signerIndex returns the index of the signing key at now in keys sorted by
// keyOrder, or -1.
func signerIndex[T any](keys []T, get func(T) *StoredKey, now time.Time) int {
	for i := len(keys) - 1; i >= 0; i-- {
		if canSign(get(keys[i]), now) {
			return i
		}
	}
	return -1
}

// keyOrder sorts by ActivateAt, then CreatedAt, then kid: the same order on
// every node.
func keyOrder(a, b *StoredKey) int {
	if c := a.ActivateAt.Compare(b.ActivateAt); c != 0 {
		return c
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.KID, b.KID)
}

// Key returns the public key and algorithm for kid if it is in the key set
// (next, active or retired), and an error matching ErrUnknownKey otherwise.
// It makes the Keyring a KeySource for verifying our own tokens in-process.
//
// A kid not in this node's copy of the key set may be a key another node
// or the CLI has just added: after an emergency rotation (keys rotate
// --now) the node that reloads first signs with the new key at once, and
// its tokens would fail at every other node until that node's next Run
// reload. So a miss reloads the key set from the store and looks again,
// at most once per missReloadInterval (1 s): made-up kids cost one store
// read a second, not one per token. Callers that miss while a reload is
// under way wait for it. A failed reload is logged and the kid reported
// unknown.
func (k *Keyring) Key(ctx context.Context, kid string) (crypto.PublicKey, string, error) {
	if vk := k.lookup(kid); vk != nil {
		return vk.pub, AlgRS256, nil
	}
	if vk := k.reloadForMiss(ctx, kid); vk != nil {
		return vk.pub, AlgRS256, nil
	}
	return nil, "", ErrUnknownKey
}

// lookup returns kid's key in the current view, nil when it has none.
func (k *Keyring) lookup(kid string) *viewKey {
	if v := k.view.Load(); v != nil {
		return v.byKID[kid]
	}
	return nil
}

// reloadForMiss reloads the key set for Key when the last such reload is
// at least missReloadInterval old, and returns kid's key afterwards (nil
// when it is still unknown).
func (k *Keyring) reloadForMiss(ctx context.Context, kid string) *viewKey {
	k.missMu.Lock()
	defer k.missMu.Unlock()
	if vk := k.lookup(kid); vk != nil {
		return vk // a reload finished while this caller waited
	}
	now := k.now()
	if !k.lastMiss.IsZero() && now.Sub(k.lastMiss) < missReloadInterval {
		return nil
	}
	k.lastMiss = now
	if err := k.Reload(ctx); err != nil {
		k.log.Warn().Err(err).Msg("jwks: reloading the key set for an unknown kid")
		return nil
	}
	return k.lookup(kid)
}

// Keys describes every key in the current view, by ActivateAt.
func (k *Keyring) Keys() []KeyInfo {
	v := k.view.Load()
	if v == nil {
		return nil
	}
	out := make([]KeyInfo, len(v.keys))
	for i, vk := range v.keys {
		s := &vk.stored
		out[i] = KeyInfo{
			KID: s.KID, Algorithm: s.Algorithm, State: s.State, CreatedAt: s.CreatedAt,
			ActivateAt: s.ActivateAt, RetiredAt: s.RetiredAt, RemoveAt: s.RemoveAt,
		}
	}
	return out
}

// Document returns the JWKS to publish: every key in the current view
// (next, active and retired), by ActivateAt. The result is the caller's.
func (k *Keyring) Document() Document {
	v := k.view.Load()
	if v == nil {
		return Document{Keys: []JWK{}}
	}
	return Document{Keys: slices.Clone(v.doc.Keys)}
}

// encodedDocument returns the JSON of Document and its ETag, computed once
// per key set (see Handler).
func (k *Keyring) encodedDocument() ([]byte, string) {
	v := k.view.Load()
	if v == nil {
		v = emptyView()
	}
	return v.body, v.etag
}

// Reload reads the key set from the store and switches to it if its
// version changed. Keys another node added are decrypted here.
func (k *Keyring) Reload(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloadLocked(ctx)
}

func (k *Keyring) reloadLocked(ctx context.Context) error {
	set, err := k.store.KeySet(ctx)
	if err != nil {
		return fmt.Errorf("jwks: loading key set: %w", err)
	}
	if v := k.view.Load(); v != nil && v.version == set.Version {
		return nil
	}
	return k.install(set.Version, set.Keys, nil)
}

// install builds and publishes the view for keys at version. fresh holds
// private keys generated by this node (no need to decrypt them again).
func (k *Keyring) install(version int64, keys []StoredKey, fresh map[string]*rsa.PrivateKey) error {
	privs := make(map[string]*rsa.PrivateKey, len(keys))
	v := &keyView{version: version, byKID: make(map[string]*viewKey, len(keys))}
	for _, s := range keys {
		if _, dup := v.byKID[s.KID]; dup {
			return fmt.Errorf("jwks: key set lists kid %s twice", s.KID)
		}
		if s.Algorithm != AlgRS256 {
			return fmt.Errorf("jwks: key %s: unsupported algorithm %q", s.KID, s.Algorithm)
		}
		pubAny, err := x509.ParsePKIXPublicKey(s.PublicDER)
		if err != nil {
			return fmt.Errorf("jwks: key %s: public key: %w", s.KID, err)
		}
		pub, ok := pubAny.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("jwks: key %s: public key is %T, not RSA", s.KID, pubAny)
		}
		// The kid is the thumbprint: a mismatch means the stored row was
		// altered or corrupted, and we must not publish or sign with it.
		if Thumbprint(pub) != s.KID {
			return fmt.Errorf("jwks: key %s: kid is not the thumbprint of its public key", s.KID)
		}
		vk := &viewKey{stored: s, pub: pub}
		if s.State != StateRetired {
			priv := fresh[s.KID]
			if priv == nil {
				priv = k.privs[s.KID]
			}
			if priv == nil {
				if priv, err = k.openPrivate(s, pub); err != nil {
					return err
				}
			}
			vk.priv = priv
			privs[s.KID] = priv
		}
		v.byKID[s.KID] = vk
		v.keys = append(v.keys, vk)
	}
	slices.SortFunc(v.keys, func(a, b *viewKey) int { return keyOrder(&a.stored, &b.stored) })
	v.doc.Keys = make([]JWK, len(v.keys))
	for i, vk := range v.keys {
		v.doc.Keys[i] = PublicJWK(vk.pub, vk.stored.KID)
	}
	v.encode()
	k.privs = privs
	k.view.Store(v)
	return nil
}

// encode computes body and etag once per view.
func (v *keyView) encode() {
	v.body, v.etag = encodeDocument(v.doc)
}

func emptyView() *keyView {
	v := &keyView{doc: Document{Keys: []JWK{}}}
	v.encode()
	return v
}

// openPrivate decrypts a stored private key and checks it belongs to pub.
func (k *Keyring) openPrivate(s StoredKey, pub *rsa.PublicKey) (*rsa.PrivateKey, error) {
	der, err := k.sealer.Open(s.PrivateSealed, privateKeyAAD(s.KID))
	if err != nil {
		return nil, fmt.Errorf("jwks: key %s: opening private key: %w", s.KID, err)
	}
	privAny, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("jwks: key %s: private key: %w", s.KID, err)
	}
	priv, ok := privAny.(*rsa.PrivateKey)
	if !ok || !priv.PublicKey.Equal(pub) {
		return nil, fmt.Errorf("jwks: key %s: private key does not match its public key", s.KID)
	}
	return priv, nil
}

// newKey generates a key pair and its stored form.
func (k *Keyring) newKey(now, activateAt time.Time, state KeyState) (StoredKey, *rsa.PrivateKey, error) {
	priv, err := k.generate()
	if err != nil {
		return StoredKey{}, nil, fmt.Errorf("jwks: generating key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return StoredKey{}, nil, fmt.Errorf("jwks: encoding public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return StoredKey{}, nil, fmt.Errorf("jwks: encoding private key: %w", err)
	}
	kid := Thumbprint(&priv.PublicKey)
	sealed, err := k.sealer.Seal(der, privateKeyAAD(kid))
	clear(der)
	if err != nil {
		return StoredKey{}, nil, fmt.Errorf("jwks: sealing private key: %w", err)
	}
	return StoredKey{
		KID: kid, Algorithm: AlgRS256, State: state, PublicDER: pubDER, PrivateSealed: sealed,
		CreatedAt: now, ActivateAt: activateAt,
	}, priv, nil
}

// plan is one edit of the key set. It gets a sorted copy of the current
// keys and returns the new keys, or nil when nothing changes. It may run
// several times (after each lost compare-and-swap), so it records events
// and generated keys only in its own result.
type plan func(keys []StoredKey, now time.Time) (*planResult, error)

type planResult struct {
	keys   []StoredKey
	fresh  map[string]*rsa.PrivateKey
	events []func(l zerolog.Logger)
}

func (r *planResult) add(s StoredKey, priv *rsa.PrivateKey) {
	r.keys = append(r.keys, s)
	if r.fresh == nil {
		r.fresh = map[string]*rsa.PrivateKey{}
	}
	r.fresh[s.KID] = priv
}

// mutate applies p to the current view and saves the result with
// compare-and-swap. When another node saved first it reloads and re-plans,
// so the edit is made once, by exactly one node. Callers hold k.mu.
func (k *Keyring) mutate(ctx context.Context, p plan) error {
	for attempt := 1; ; attempt++ {
		v := k.view.Load()
		keys := make([]StoredKey, len(v.keys))
		for i, vk := range v.keys {
			keys[i] = vk.stored
		}
		// Stored times are UTC with millisecond precision, which every
		// backend keeps exactly: the node that saves and the nodes that load
		// then see the same instants.
		res, err := p(keys, k.now().UTC().Truncate(time.Millisecond))
		if err != nil || res == nil {
			return err
		}
		version, err := k.store.SaveKeySet(ctx, v.version, res.keys)
		if errors.Is(err, ErrKeySetChanged) && attempt < maxCASAttempts {
			k.log.Debug().Int64("version", v.version).Msg("jwks: key set changed by another node; reloading")
			if err := k.reloadLocked(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("jwks: saving key set: %w", err)
		}
		if err := k.install(version, res.keys, res.fresh); err != nil {
			return err
		}
		for _, e := range res.events {
			e(k.log)
		}
		return nil
	}
}

// Tick is the scheduled maintenance of the key set; it is idempotent and
// safe to run on every node at once:
//   - a next key whose ActivateAt has come becomes active, and the key it
//     replaces is retired (RetiredAt = that ActivateAt, RemoveAt =
//     RetiredAt + RetireAfter);
//   - retired keys whose RemoveAt has come are deleted;
//   - with no signing key at all (empty store), a key active now is created;
//   - with no next key and RotationPeriod - LeadTime elapsed since the
//     active key's ActivateAt, a next key is published with ActivateAt =
//     max(now + LeadTime, active.ActivateAt + RotationPeriod).
//
// Tick works on the current view and touches the store only when something
// changes; losing the compare-and-swap to another node reloads and
// re-evaluates, so exactly one node performs each change.
func (k *Keyring) Tick(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.tickLocked(ctx)
}

func (k *Keyring) tickLocked(ctx context.Context) error {
	return k.mutate(ctx, func(keys []StoredKey, now time.Time) (*planResult, error) {
		res := &planResult{}
		keys, changed := k.normalize(keys, now, res)
		res.keys = keys
		s := signerIndex(res.keys, copyOf, now)
		if s < 0 {
			sk, priv, err := k.newKey(now, now, StateActive)
			if err != nil {
				return nil, err
			}
			res.add(sk, priv)
			res.event("jwks: created signing key", sk)
			s, changed = len(res.keys)-1, true
		}
		active := res.keys[s]
		if nextIndex(res.keys, now) < 0 && !now.Before(active.ActivateAt.Add(k.period-k.lead)) {
			at := now.Add(k.lead)
			if due := active.ActivateAt.Add(k.period); due.After(at) {
				at = due
			}
			sk, priv, err := k.newKey(now, at, StateNext)
			if err != nil {
				return nil, err
			}
			res.add(sk, priv)
			res.event("jwks: published next signing key", sk)
			changed = true
		}
		if !changed {
			return nil, nil
		}
		return res, nil
	})
}

// copyOf adapts a StoredKey slice to signerIndex.
func copyOf(k StoredKey) *StoredKey { return &k }

func (r *planResult) event(msg string, s StoredKey) {
	r.events = append(r.events, func(l zerolog.Logger) {
		l.Info().Str("kid", s.KID).Str("state", string(s.State)).Time("activate_at", s.ActivateAt).
			Time("remove_at", s.RemoveAt).Msg(msg)
	})
}

// normalize sorts keys, promotes due next keys (retiring the ones they
// replace) and drops retired keys past RemoveAt. It reports whether
// anything changed.
func (k *Keyring) normalize(keys []StoredKey, now time.Time, res *planResult) ([]StoredKey, bool) {
	slices.SortFunc(keys, func(a, b StoredKey) int { return keyOrder(&a, &b) })
	changed := false
	var live []int
	for i := range keys {
		if canSign(&keys[i], now) {
			live = append(live, i)
		}
	}
	for j, i := range live {
		if j == len(live)-1 {
			if keys[i].State != StateActive {
				keys[i].State = StateActive
				res.event("jwks: signing key became active", keys[i])
				changed = true
			}
			continue
		}
		// Replaced by the next live key: it stopped signing when that one
		// became due.
		at := keys[live[j+1]].ActivateAt
		keys[i].State, keys[i].RetiredAt, keys[i].RemoveAt = StateRetired, at, at.Add(k.retireAfter)
		res.event("jwks: signing key retired", keys[i])
		changed = true
	}
	out := keys[:0]
	for _, s := range keys {
		if s.State == StateRetired {
			removeAt := s.RemoveAt
			if removeAt.IsZero() {
				removeAt = s.RetiredAt.Add(k.retireAfter)
			}
			if !removeAt.After(now) {
				res.event("jwks: retired key removed", s)
				changed = true
				continue
			}
		}
		out = append(out, s)
	}
	return out, changed
}

// nextIndex returns the index of a published key still waiting to sign, or
// -1.
func nextIndex(keys []StoredKey, now time.Time) int {
	for i := range keys {
		if keys[i].State == StateNext && keys[i].ActivateAt.After(now) {
			return i
		}
	}
	return -1
}

// Rotate starts a rotation by hand (users-core keys rotate) and returns the
// new key. Normally (immediate false) it publishes a next key that becomes
// active after LeadTime, the window in which verifiers caching our JWKS
// pick it up; it refuses, with an error wrapping ErrRotationScheduled that
// names the time, while another next key is waiting. With immediate true
// (emergency) the new key is active at once and the current one is retired
// now; a waiting next key is dropped (it never signed anything). Verifiers
// that cached our JWKS then see an unknown kid and refetch it (rate-limited,
// typically once per 5 minutes); other nodes verify the new key's tokens at
// once (Key reloads for an unknown kid) and sign with it from their next
// Reload (Run: within a minute). The retired key stays published for
// RetireAfter.
func (k *Keyring) Rotate(ctx context.Context, immediate bool) (KeyInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(ctx); err != nil {
		return KeyInfo{}, err
	}
	var info KeyInfo
	err := k.mutate(ctx, func(keys []StoredKey, now time.Time) (*planResult, error) {
		res := &planResult{}
		keys, _ = k.normalize(keys, now, res)
		if ni := nextIndex(keys, now); ni >= 0 && !immediate {
			return nil, fmt.Errorf("%w for %s (kid %s)", ErrRotationScheduled,
				keys[ni].ActivateAt.UTC().Format(time.RFC3339), keys[ni].KID)
		}
		activateAt, state := now.Add(k.lead), StateNext
		if immediate {
			activateAt, state = now, StateActive
			kept := keys[:0]
			for _, s := range keys {
				switch {
				case s.State == StateNext && s.ActivateAt.After(now):
					res.event("jwks: scheduled next key dropped by emergency rotation", s)
					continue
				case s.State != StateRetired:
					s.State, s.RetiredAt, s.RemoveAt = StateRetired, now, now.Add(k.retireAfter)
					res.event("jwks: signing key retired by emergency rotation", s)
				}
				kept = append(kept, s)
			}
			keys = kept
		}
		sk, priv, err := k.newKey(now, activateAt, state)
		if err != nil {
			return nil, err
		}
		res.keys = keys
		res.add(sk, priv)
		res.event("jwks: key rotation started", sk)
		info = KeyInfo{KID: sk.KID, Algorithm: sk.Algorithm, State: sk.State, CreatedAt: sk.CreatedAt, ActivateAt: sk.ActivateAt}
		return res, nil
	})
	if err != nil {
		return KeyInfo{}, err
	}
	return info, nil
}

// Run reloads the key set and ticks every interval (DefaultRunInterval
// when every <= 0), starting at once, until ctx is done. Errors are logged
// and retried at the next interval; signing goes on with the keys in
// memory.
func (k *Keyring) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultRunInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := k.Reload(ctx); err != nil && ctx.Err() == nil {
			k.log.Error().Err(err).Msg("jwks: reloading key set")
		} else if err := k.Tick(ctx); err != nil && ctx.Err() == nil {
			k.log.Error().Err(err).Msg("jwks: key maintenance")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// privateKeyAAD binds a sealed private key to its kid under a label of its
// own, so no value sealed under the same data key for another purpose (HA1
// values, refresh successors) can be passed off as a signing key.
func privateKeyAAD(kid string) []byte { return []byte("users-core/jwks/signing-key\x00" + kid) }
