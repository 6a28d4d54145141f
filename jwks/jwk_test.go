package jwks

import (
	"crypto/rsa"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
)

// The RSA key of RFC 7638 section 3.1 and the thumbprint the RFC gives for
// it.
const (
	rfc7638N = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	rfc7638E = "AQAB"
	rfc7638T = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
)

func rfc7638Key(t *testing.T) *rsa.PublicKey {
	t.Helper()
	n, err := b64.DecodeString(rfc7638N)
	if err != nil {
		t.Fatal(err)
	}
	e, err := b64.DecodeString(rfc7638E)
	if err != nil {
		t.Fatal(err)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
}

func TestThumbprintMatchesRFC7638Example(t *testing.T) {
	if got := Thumbprint(rfc7638Key(t)); got != rfc7638T {
		t.Fatalf("Thumbprint = %s, want %s", got, rfc7638T)
	}
}

func TestPublicJWKEncodesTheKeyAsTheRFCDoes(t *testing.T) {
	j := PublicJWK(rfc7638Key(t), "2011-04-29")
	want := JWK{Kty: "RSA", Use: "sig", Alg: "RS256", Kid: "2011-04-29", N: rfc7638N, E: rfc7638E}
	if j != want {
		t.Fatalf("PublicJWK = %+v\nwant %+v", j, want)
	}
	b, _ := json.Marshal(j)
	for _, member := range []string{`"kty":"RSA"`, `"use":"sig"`, `"alg":"RS256"`, `"kid":"2011-04-29"`, `"e":"AQAB"`} {
		if !strings.Contains(string(b), member) {
			t.Errorf("JSON %s lacks %s", b, member)
		}
	}
	if strings.Contains(string(b), "=") {
		t.Errorf("JSON %s has base64 padding", b)
	}
	back, err := j.RSAPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(rfc7638Key(t)) {
		t.Fatal("round trip changed the key")
	}
}

func TestRSAPublicKeyRefusesUnusableKeys(t *testing.T) {
	good := PublicJWK(&poolKey(t, 0).PublicKey, "k")
	small := PublicJWK(&rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537}, "k")
	even := good
	even.N = b64.EncodeToString(new(big.Int).Lsh(big.NewInt(1), 2047).Bytes())
	cases := []struct {
		name string
		edit func(j *JWK)
	}{
		{"an EC key", func(j *JWK) { j.Kty = "EC" }},
		{"an encryption key", func(j *JWK) { j.Use = "enc" }},
		{"a key for another algorithm", func(j *JWK) { j.Alg = "PS256" }},
		{"a 1024-bit modulus", func(j *JWK) { j.N = small.N }},
		{"an even modulus", func(j *JWK) { j.N = even.N }},
		{"a missing modulus", func(j *JWK) { j.N = "" }},
		{"a modulus that is not base64url", func(j *JWK) { j.N = "***" }},
		{"exponent 1", func(j *JWK) { j.E = "AQ" }},
		{"an even exponent", func(j *JWK) { j.E = "AQAA" }},
		{"an exponent over 2^31", func(j *JWK) { j.E = b64.EncodeToString(big.NewInt(1<<33 + 1).Bytes()) }},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			j := good
			tc.edit(&j)
			if _, err := j.RSAPublicKey(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	t.Run("accepts a key without use and alg, and padded members", func(t *testing.T) {
		j := good
		j.Use, j.Alg, j.N = "", "", j.N+"=="
		if _, err := j.RSAPublicKey(); err != nil {
			t.Fatal(err)
		}
	})
}
