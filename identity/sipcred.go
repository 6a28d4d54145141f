package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
)

// DataKeyLen is the length in bytes of the data key that seals HA1 values
// (AES-256).
const DataKeyLen = 32

// DigestHash returns the hash function H of a Digest algorithm: MD5,
// SHA-256, or SHA-512/256 for SHA-512-256. RFC 7616 section 3.2 defines
// SHA-512-256 as the FIPS 180-4 SHA-512/256 function, which has its own
// initial values: it is not SHA-512 cut to 256 bits. An unknown algorithm
// is an error matching ErrInvalid.
func DigestHash(alg DigestAlgorithm) (func() hash.Hash, error) {
	switch alg {
	case MD5:
		return md5.New, nil
	case SHA256:
		return sha256.New, nil
	case SHA512256:
		return sha512.New512_256, nil
	}
	return nil, Invalid("identity.DigestHash", "algorithm", "unknown digest algorithm %q (known: SHA-512-256, SHA-256, MD5)", alg)
}

// HA1 returns lowercase hex H(username ":" realm ":" password), the
// password-equivalent secret of HTTP/SIP Digest (RFC 7616 section 3.4.2,
// non-session algorithms). The strings are hashed as given, byte for byte:
// a client must send the username with the same case to match.
func HA1(alg DigestAlgorithm, username, realm, password string) (string, error) {
	newHash, err := DigestHash(alg)
	if err != nil {
		return "", err
	}
	h := newHash()
	h.Write([]byte(username + ":" + realm + ":" + password))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ha1HexLen returns the length of an HA1 in hex for alg, or 0.
func ha1HexLen(alg DigestAlgorithm) int {
	switch alg {
	case MD5:
		return 2 * md5.Size
	case SHA256, SHA512256:
		return 2 * sha256.Size
	}
	return 0
}

// Sealer encrypts small secrets at rest with AES-256-GCM under the data
// key. A sealed value is a random 12-byte nonce, the ciphertext and the
// 16-byte tag; the additional data (AAD) binds it to where it is stored, so
// a value copied to another row does not open. Random nonces are safe for
// up to 2^32 seals under one key, far more than HA1 rows. A Sealer is safe
// for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer for key, which must be exactly DataKeyLen
// (32) bytes, such as one from GenerateDataKey. The key is not retained
// beyond its AES key schedule.
func NewSealer(key []byte) (*Sealer, error) {
	const op = "identity.NewSealer"
	if len(key) != DataKeyLen {
		return nil, Invalid(op, "data_key", "data key must be exactly %d bytes, got %d", DataKeyLen, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, Internal(op, err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, Internal(op, err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext bound to aad and returns nonce || ciphertext ||
// tag, a fresh random nonce each call.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	return s.aead.Seal(nil, nil, plaintext, aad), nil
}

// errOpen is the cause of every Open failure. GCM cannot tell a wrong key,
// a wrong AAD and tampering apart, and the error must say nothing about the
// plaintext.
var errOpen = errors.New("sealed value failed authentication: wrong data key, bound to another row, or corrupted")

// Open decrypts a value from Seal with the same aad. Any failure is an
// error with code CodeInternal (stored data did not authenticate); it never
// contains plaintext.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	const op = "identity.Sealer.Open"
	if len(sealed) < s.aead.Overhead() {
		return nil, Internal(op, errOpen)
	}
	pt, err := s.aead.Open(nil, nil, sealed, aad)
	if err != nil {
		return nil, Internal(op, errOpen)
	}
	return pt, nil
}

// GenerateDataKey returns DataKeyLen random bytes from crypto/rand, for
// NewSealer.
func GenerateDataKey() ([]byte, error) {
	k := make([]byte, DataKeyLen)
	if _, err := rand.Read(k); err != nil {
		return nil, Internal("identity.GenerateDataKey", err)
	}
	return k, nil
}

// sipCredentialAADLabel separates HA1 AADs from any other use of the data
// key and versions the encoding.
const sipCredentialAADLabel = "users-core sip-ha1 v1"

// SIPCredentialAAD returns the additional data that binds a sealed HA1 to
// its row: the label "users-core sip-ha1 v1", then userID, realm and alg,
// each preceded by its length as a 4-byte big-endian integer. Length
// prefixes keep the encoding unambiguous whatever bytes the fields hold.
func SIPCredentialAAD(userID, realm string, alg DigestAlgorithm, qualified bool) []byte {
	fields := []string{sipCredentialAADLabel, userID, realm, string(alg)}
	if qualified {
		fields = append(fields, "qualified")
	}
	n := 0
	for _, f := range fields {
		n += 4 + len(f)
	}
	b := make([]byte, 0, n)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// DeriveSIPCredentials computes the HA1 of username and password for every
// realm and every algorithm in DigestAlgorithms and seals each one with s,
// bound by SIPCredentialAAD to (userID, realm, algorithm). What is sealed
// is the HA1 as its lowercase hex string (the form Digest computations
// consume), not the raw digest. The result is ordered by realm as given,
// then by DigestAlgorithms. Realms must be non-empty and distinct.
func DeriveSIPCredentials(s *Sealer, userID, username, password string, realms []string) ([]SIPCredential, error) {
	const op = "identity.DeriveSIPCredentials"
	switch {
	case s == nil:
		return nil, Internal(op, errors.New("nil Sealer"))
	case userID == "":
		return nil, Invalid(op, "id", "user id is required")
	case username == "":
		return nil, Invalid(op, "username", "username is required")
	}
	seen := make(map[string]bool, len(realms))
	for _, r := range realms {
		if r == "" {
			return nil, Invalid(op, "realm", "realm must not be empty")
		}
		if seen[r] {
			return nil, Invalid(op, "realm", "realm %q is listed twice", r)
		}
		seen[r] = true
	}
	out := make([]SIPCredential, 0, 2*len(realms)*len(DigestAlgorithms))
	for _, qualified := range []bool{false, true} {
		for _, realm := range realms {
			for _, alg := range DigestAlgorithms {
				name := username
				if qualified {
					name = username + "@" + realm
				}
				ha1, err := HA1(alg, name, realm, password)
				if err != nil {
					return nil, err
				}
				sealed, err := s.Seal([]byte(ha1), SIPCredentialAAD(userID, realm, alg, qualified))
				if err != nil {
					return nil, err
				}
				out = append(out, SIPCredential{Realm: realm, Algorithm: alg, Qualified: qualified, Sealed: sealed})
			}
		}
	}
	return out, nil
}

// OpenHA1 returns the lowercase hex HA1 sealed in c for the user with
// userID. It fails (CodeInternal) if c does not authenticate for exactly
// that user, c.Realm and c.Algorithm, or does not hold a well-formed HA1.
func (s *Sealer) OpenHA1(userID string, c SIPCredential) (string, error) {
	const op = "identity.Sealer.OpenHA1"
	want := ha1HexLen(c.Algorithm)
	if want == 0 {
		return "", Internal(op, errors.New("unknown digest algorithm in stored SIP credential"))
	}
	pt, err := s.Open(c.Sealed, SIPCredentialAAD(userID, c.Realm, c.Algorithm, c.Qualified))
	if err != nil {
		return "", err
	}
	if len(pt) != want || !isLowerHex(pt) {
		return "", Internal(op, errors.New("sealed SIP credential is not a lowercase hex HA1"))
	}
	return string(pt), nil
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
