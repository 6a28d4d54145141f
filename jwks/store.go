package jwks

import (
	"context"
	"errors"
	"time"
)

// KeyState is where a signing key is in its life.
type KeyState string

// Key states. A key is created "next" (published in JWKS, not yet signing),
// becomes "active" (signing; exactly one at a time) and then "retired"
// (published so tokens it signed still verify, until RemoveAt).
const (
	StateNext    KeyState = "next"
	StateActive  KeyState = "active"
	StateRetired KeyState = "retired"
)

// StoredKey is one signing key as persisted. The private key is sealed: a
// KeyStore never sees it in the clear.
type StoredKey struct {
	KID       string // RFC 7638 thumbprint of the public key
	Algorithm string // "RS256"
	State     KeyState
	// PublicDER is the PKIX DER encoding of the public key.
	PublicDER []byte
	// PrivateSealed is the PKCS#8 DER of the private key sealed by a Sealer
	// with a labelled kid as associated data.
	PrivateSealed []byte
	// Times have millisecond precision at least; at most one key is active.
	CreatedAt time.Time
	// ActivateAt is when a next key becomes active (>= CreatedAt + lead
	// time); for active and retired keys, when they became active.
	ActivateAt time.Time
	// RetiredAt is when the key stopped signing (zero unless retired).
	RetiredAt time.Time
	// RemoveAt is when a retired key leaves JWKS and the store.
	RemoveAt time.Time
}

// KeySet is the whole set of signing keys with its version, the unit of
// compare-and-swap between nodes.
type KeySet struct {
	Version int64 // 0 for an empty store; each successful save increments it
	Keys    []StoredKey
}

// ErrKeySetChanged is returned by KeyStore.SaveKeySet when the stored
// version is not the expected one: another node changed the keys first.
var ErrKeySetChanged = errors.New("jwks: key set changed concurrently")

// KeyStore persists signing keys, shared by every node on one database.
type KeyStore interface {
	// KeySet returns the current key set (Version 0 and no keys when none
	// was ever saved).
	KeySet(ctx context.Context) (KeySet, error)
	// SaveKeySet replaces the key set with keys if the stored version is
	// still prev, and returns the new version (prev+1). It returns
	// ErrKeySetChanged, and changes nothing, if another save came first.
	SaveKeySet(ctx context.Context, prev int64, keys []StoredKey) (int64, error)
}

// Sealer encrypts private key material at rest. identity.Sealer (AES-256-GCM
// under the data key) satisfies it.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}
