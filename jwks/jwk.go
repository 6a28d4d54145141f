package jwks

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// AlgRS256 is the only signature algorithm this package signs and verifies
// (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 section 3.3).
const AlgRS256 = "RS256"

// Bounds on RSA public keys accepted from anywhere (our store or a remote
// JWKS).
const (
	// MinRSABits: smaller moduli are factorable in practice or soon will be.
	MinRSABits = 2048
	// MaxRSABits bounds the CPU a single verification can cost, so a hostile
	// JWKS cannot make every token check slow.
	MaxRSABits = 8192
)

// JWK is an RSA public key as a JSON Web Key (RFC 7517). Only the members
// this package reads or writes are kept; others are ignored on decoding.
type JWK struct {
	Kty string `json:"kty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Kid string `json:"kid,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// Document is a JWK Set (RFC 7517 section 5): {"keys":[...]}.
type Document struct {
	Keys []JWK `json:"keys"`
}

// b64 is unpadded base64url, the encoding of every JOSE binary member.
var b64 = base64.RawURLEncoding

// PublicJWK encodes pub as a signing JWK with the given kid: kty "RSA", use
// "sig", alg "RS256", n and e as unpadded base64url of their big-endian
// bytes without leading zeros (RFC 7518 section 6.3.1).
func PublicJWK(pub *rsa.PublicKey, kid string) JWK {
	return JWK{
		Kty: "RSA",
		Use: "sig",
		Alg: AlgRS256,
		Kid: kid,
		N:   b64.EncodeToString(pub.N.Bytes()),
		E:   b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// Thumbprint returns the RFC 7638 JWK thumbprint of pub: base64url (no
// padding) of SHA-256 over {"e":"...","kty":"RSA","n":"..."}, members in
// lexicographic order and no whitespace. It is the kid of our signing keys,
// so anyone holding the public key can recompute it.
func Thumbprint(pub *rsa.PublicKey) string {
	j := PublicJWK(pub, "")
	// The base64url alphabet needs no JSON escaping, so plain concatenation
	// is the canonical JSON form.
	canon := `{"e":"` + j.E + `","kty":"RSA","n":"` + j.N + `"}`
	sum := sha256.Sum256([]byte(canon))
	return b64.EncodeToString(sum[:])
}

// errBadJWK is the cause of every JWK that cannot be used as an RS256
// verification key.
var errBadJWK = errors.New("jwks: unusable JWK")

// RSAPublicKey decodes j as an RS256 verification key. It refuses anything
// but kty "RSA" with use "sig" (or absent) and alg "RS256" (or absent), a
// modulus outside [MinRSABits, MaxRSABits], an even modulus, and an exponent
// that is even, below 3 or above 2^31-1. Every refusal wraps the same
// sentinel; the message says which rule failed.
func (j JWK) RSAPublicKey() (*rsa.PublicKey, error) {
	if j.Kty != "RSA" {
		return nil, fmt.Errorf("%w: kty %q is not RSA", errBadJWK, j.Kty)
	}
	if j.Use != "" && j.Use != "sig" {
		return nil, fmt.Errorf("%w: use %q is not sig", errBadJWK, j.Use)
	}
	if j.Alg != "" && j.Alg != AlgRS256 {
		return nil, fmt.Errorf("%w: alg %q is not RS256", errBadJWK, j.Alg)
	}
	nb, err := decodeB64Int(j.N)
	if err != nil {
		return nil, fmt.Errorf("%w: n: %v", errBadJWK, err)
	}
	eb, err := decodeB64Int(j.E)
	if err != nil {
		return nil, fmt.Errorf("%w: e: %v", errBadJWK, err)
	}
	n := new(big.Int).SetBytes(nb)
	if bits := n.BitLen(); bits < MinRSABits || bits > MaxRSABits {
		return nil, fmt.Errorf("%w: modulus of %d bits, want %d to %d", errBadJWK, bits, MinRSABits, MaxRSABits)
	}
	if n.Bit(0) == 0 {
		return nil, fmt.Errorf("%w: even modulus", errBadJWK)
	}
	e := new(big.Int).SetBytes(eb)
	// An exponent above 2^31-1 does not fit crypto/rsa, and an even or tiny
	// one is a broken or hostile key.
	if e.BitLen() > 31 || e.Int64() < 3 || e.Bit(0) == 0 {
		return nil, fmt.Errorf("%w: exponent %s not odd in [3, 2^31-1]", errBadJWK, e)
	}
	return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
}

// decodeB64Int decodes a base64url unsigned integer member, tolerating
// trailing padding that some issuers add.
func decodeB64Int(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if s == "" {
		return nil, errors.New("missing")
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64url")
	}
	return b, nil
}
