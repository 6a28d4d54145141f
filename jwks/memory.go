package jwks

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
)

// MemoryKeyStore is a KeyStore that keeps the key set in this process, with
// the same compare-and-swap rule as a database store. Use it to embed a
// Keyring in a single process (keys are lost on exit, so every restart
// starts a new key) and in tests. The zero value is an empty store ready to
// use; it is safe for concurrent use.
type MemoryKeyStore struct {
	mu      sync.Mutex
	version int64
	keys    []StoredKey
}

// NewMemoryKeyStore returns an empty MemoryKeyStore.
func NewMemoryKeyStore() *MemoryKeyStore { return &MemoryKeyStore{} }

// KeySet returns a deep copy of the current key set.
func (s *MemoryKeyStore) KeySet(ctx context.Context) (KeySet, error) {
	if err := ctx.Err(); err != nil {
		return KeySet{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return KeySet{Version: s.version, Keys: cloneKeys(s.keys)}, nil
}

// SaveKeySet stores a deep copy of keys if the version is still prev, and
// returns ErrKeySetChanged otherwise.
func (s *MemoryKeyStore) SaveKeySet(ctx context.Context, prev int64, keys []StoredKey) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev != s.version {
		return 0, ErrKeySetChanged
	}
	s.keys = cloneKeys(keys)
	s.version++
	return s.version, nil
}

// cloneKeys copies keys and their byte slices, so neither side of a store
// call can change the other's copy.
func cloneKeys(keys []StoredKey) []StoredKey {
	out := make([]StoredKey, len(keys))
	for i, k := range keys {
		k.PublicDER = slices.Clone(k.PublicDER)
		k.PrivateSealed = slices.Clone(k.PrivateSealed)
		out[i] = k
	}
	return out
}

// memorySealer is AES-256-GCM under a key that exists only in this process.
type memorySealer struct{ aead cipher.AEAD }

// NewMemorySealer returns a Sealer (AES-256-GCM, random nonces) under a
// fresh random key that is never written anywhere: what it seals can only
// be opened by this process. It pairs with MemoryKeyStore for embedding; a
// Keyring on a shared database needs the deployment's persistent data key
// instead (identity.Sealer in users-core).
func NewMemorySealer() (Sealer, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, err
	}
	return memorySealer{aead: aead}, nil
}

func (s memorySealer) Seal(plaintext, aad []byte) ([]byte, error) {
	return s.aead.Seal(nil, nil, plaintext, aad), nil
}

func (s memorySealer) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < s.aead.Overhead() {
		return nil, errSealed
	}
	pt, err := s.aead.Open(nil, nil, sealed, aad)
	if err != nil {
		return nil, errSealed
	}
	return pt, nil
}

var errSealed = errors.New("jwks: sealed key failed authentication")
