package identity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// Expected values computed with independent tools:
//
//	printf '%s' 'Mufasa:http-auth@example.org:Circle of Life' | md5sum
//	printf '%s' 'Mufasa:http-auth@example.org:Circle of Life' | sha256sum
//	printf '%s' 'Mufasa:http-auth@example.org:Circle of Life' | openssl dgst -sha512-256
//	printf '%s' 'Mufasa:testrealm@host.com:Circle Of Life' | md5sum
func TestHA1KnownVectors(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		alg                       DigestAlgorithm
		username, realm, password string
		want                      string
	}{
		{"RFC 7616 3.9.1 example with MD5", MD5, "Mufasa", "http-auth@example.org", "Circle of Life", "3d78807defe7de2157e2b0b6573a855f"},
		{"RFC 7616 3.9.1 example with SHA-256", SHA256, "Mufasa", "http-auth@example.org", "Circle of Life", "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"},
		{"RFC 7616 3.9.1 example with SHA-512-256", SHA512256, "Mufasa", "http-auth@example.org", "Circle of Life", "fb174f5c3c7802721517cae13b98e2b8dae2e0118cb705d94ee29946319204ce"},
		{"RFC 2617 3.5 example with MD5", MD5, "Mufasa", "testrealm@host.com", "Circle Of Life", "939e7578ed9e3c518a452acee763bce9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := HA1(tc.alg, tc.username, tc.realm, tc.password)
			if err != nil || got != tc.want {
				t.Errorf("HA1 = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestHA1RefusesUnknownAlgorithm(t *testing.T) {
	for _, alg := range []DigestAlgorithm{"", "md5", "SHA-512", "MD5-sess", "SHA-256-sess"} {
		if _, err := HA1(alg, "u", "r", "p"); !errors.Is(err, ErrInvalid) {
			t.Errorf("HA1(%q): err = %v, want ErrInvalid", alg, err)
		}
		if f, err := DigestHash(alg); f != nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("DigestHash(%q) = non-nil or %v, want nil, ErrInvalid", alg, err)
		}
	}
}

// SHA-512-256 is the FIPS 180-4 SHA-512/256 function (its own initial
// values), not SHA-512 cut short. FIPS 180-4 example "abc", checked with
// `printf abc | openssl dgst -sha512-256`.
func TestDigestHashSHA512256IsTheFIPSFunction(t *testing.T) {
	newHash, err := DigestHash(SHA512256)
	if err != nil {
		t.Fatal(err)
	}
	h := newHash()
	h.Write([]byte("abc"))
	const want = "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("SHA-512-256(abc) = %s, want %s", got, want)
	}
}

func newTestSealer(t testing.TB) *Sealer {
	t.Helper()
	key, err := GenerateDataKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGenerateDataKey(t *testing.T) {
	a, err := GenerateDataKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateDataKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || len(b) != 32 || bytes.Equal(a, b) {
		t.Errorf("keys %x and %x: want two different 32-byte keys", a, b)
	}
}

func TestNewSealerNeedsA32ByteKey(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := NewSealer(make([]byte, n)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%d-byte key: err = %v, want ErrInvalid", n, err)
		}
	}
}

func TestSealer(t *testing.T) {
	s := newTestSealer(t)
	ha1, _ := HA1(SHA256, "alice", "example.com", "secret passphrase")
	aad := SIPCredentialAAD("user-1", "example.com", SHA256, false)
	sealed, err := s.Seal([]byte(ha1), aad)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != 12+len(ha1)+16 {
		t.Errorf("sealed length %d, want nonce 12 + %d + tag 16", len(sealed), len(ha1))
	}
	noLeak := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("Open accepted")
		}
		if ErrorCode(err) != CodeInternal {
			t.Errorf("code %s, want %s", ErrorCode(err), CodeInternal)
		}
		if strings.Contains(err.Error(), ha1) {
			t.Errorf("error %q contains the plaintext", err)
		}
	}

	t.Run("round trip", func(t *testing.T) {
		got, err := s.Open(sealed, aad)
		if err != nil || string(got) != ha1 {
			t.Errorf("Open = %q, %v; want %q", got, err, ha1)
		}
	})
	t.Run("sealed bytes do not contain the plaintext", func(t *testing.T) {
		if bytes.Contains(sealed, []byte(ha1)) || bytes.Contains(sealed, []byte(ha1[:16])) {
			t.Error("plaintext visible in the sealed value")
		}
	})
	t.Run("two seals of the same plaintext differ", func(t *testing.T) {
		again, _ := s.Seal([]byte(ha1), aad)
		if bytes.Equal(again, sealed) || bytes.Equal(again[:12], sealed[:12]) {
			t.Error("same nonce or ciphertext twice")
		}
	})
	t.Run("a flipped bit anywhere is refused", func(t *testing.T) {
		for i := range sealed { // nonce, ciphertext and tag
			bad := bytes.Clone(sealed)
			bad[i] ^= 0x01
			if _, err := s.Open(bad, aad); err == nil {
				t.Fatalf("bit flip at byte %d accepted", i)
			}
		}
		_, err := s.Open(append(bytes.Clone(sealed), 0), aad)
		noLeak(t, err)
	})
	t.Run("truncated values are refused", func(t *testing.T) {
		for _, n := range []int{0, 11, 27, 28, len(sealed) - 1} {
			_, err := s.Open(sealed[:n], aad)
			noLeak(t, err)
		}
	})
	t.Run("another user id, realm or algorithm is refused", func(t *testing.T) {
		for _, other := range [][]byte{
			SIPCredentialAAD("user-2", "example.com", SHA256, false),
			SIPCredentialAAD("user-1", "example.org", SHA256, false),
			SIPCredentialAAD("user-1", "example.com", MD5, false),
			nil,
		} {
			_, err := s.Open(sealed, other)
			noLeak(t, err)
		}
	})
	t.Run("another key is refused", func(t *testing.T) {
		_, err := newTestSealer(t).Open(sealed, aad)
		noLeak(t, err)
	})
}

func TestSIPCredentialAADIsUnambiguous(t *testing.T) {
	a := SIPCredentialAAD("ab", "c", MD5, false)
	b := SIPCredentialAAD("a", "bc", MD5, false)
	c := SIPCredentialAAD("a", "b", "cMD5", false)
	if bytes.Equal(a, b) || bytes.Equal(a, c) || bytes.Equal(b, c) {
		t.Error("different fields give the same AAD")
	}
	if !bytes.Equal(a, SIPCredentialAAD("ab", "c", MD5, false)) {
		t.Error("AAD is not deterministic")
	}
}

func TestDeriveSIPCredentials(t *testing.T) {
	s := newTestSealer(t)
	realms := []string{"sip.example.com", "localhost"}
	creds, err := DeriveSIPCredentials(s, "user-1", "alice", "secret passphrase", realms)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 2*len(realms)*len(DigestAlgorithms) {
		t.Fatalf("%d credentials, want %d", len(creds), 2*len(realms)*len(DigestAlgorithms))
	}
	i := 0
	for _, qualified := range []bool{false, true} {
		for _, realm := range realms {
			for _, alg := range DigestAlgorithms {
				c := creds[i]
				i++
				if c.Realm != realm || c.Algorithm != alg || c.Qualified != qualified {
					t.Errorf("credential %d is (%s, %s, %v), want (%s, %s, %v)", i-1, c.Realm, c.Algorithm, c.Qualified, realm, alg, qualified)
					continue
				}
				name := "alice"
				if qualified {
					name = "alice@" + realm
				}
				want, _ := HA1(alg, name, realm, "secret passphrase")
				got, err := s.OpenHA1("user-1", c)
				if err != nil || got != want {
					t.Errorf("OpenHA1(%s, %s, %v) = %q, %v; want %q", realm, alg, qualified, got, err, want)
				}
				if bytes.Contains(c.Sealed, []byte(want)) {
					t.Errorf("sealed HA1 for (%s, %s) contains the plaintext", realm, alg)
				}
			}
		}
	}
	t.Run("a plain value passed off as qualified does not open", func(t *testing.T) {
		moved := creds[0]
		moved.Qualified = true
		if _, err := s.OpenHA1("user-1", moved); err == nil {
			t.Error("opened as the qualified variant")
		}
	})

	t.Run("another user id does not open", func(t *testing.T) {
		if _, err := s.OpenHA1("user-2", creds[0]); err == nil {
			t.Error("opened with another user id")
		}
	})
	t.Run("a value moved to another realm or algorithm does not open", func(t *testing.T) {
		moved := creds[0]
		moved.Realm = "localhost"
		if _, err := s.OpenHA1("user-1", moved); err == nil {
			t.Error("opened under another realm")
		}
		moved = creds[0]
		moved.Algorithm = creds[1].Algorithm
		if _, err := s.OpenHA1("user-1", moved); err == nil {
			t.Error("opened under another algorithm")
		}
	})
	t.Run("an unknown algorithm does not open", func(t *testing.T) {
		bad := creds[0]
		bad.Algorithm = "SHA-1"
		if _, err := s.OpenHA1("user-1", bad); ErrorCode(err) != CodeInternal {
			t.Errorf("err = %v, want CodeInternal", err)
		}
	})
	t.Run("a sealed value that is not a hex HA1 does not open", func(t *testing.T) {
		sealed, _ := s.Seal([]byte("not-an-ha1"), SIPCredentialAAD("user-1", "localhost", MD5, false))
		if _, err := s.OpenHA1("user-1", SIPCredential{Realm: "localhost", Algorithm: MD5, Sealed: sealed}); err == nil {
			t.Error("opened a malformed HA1")
		}
	})
	t.Run("no realms give no credentials", func(t *testing.T) {
		got, err := DeriveSIPCredentials(s, "user-1", "alice", "pw", nil)
		if err != nil || len(got) != 0 {
			t.Errorf("= %v, %v; want empty, nil", got, err)
		}
	})
	for _, tc := range []struct {
		name         string
		s            *Sealer
		id, username string
		realms       []string
		wantCode     Code
	}{
		{"a nil sealer is an internal error", nil, "user-1", "alice", realms, CodeInternal},
		{"an empty user id is refused", s, "", "alice", realms, CodeInvalid},
		{"an empty username is refused", s, "user-1", "", realms, CodeInvalid},
		{"an empty realm is refused", s, "user-1", "alice", []string{"a", ""}, CodeInvalid},
		{"a repeated realm is refused", s, "user-1", "alice", []string{"a", "b", "a"}, CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DeriveSIPCredentials(tc.s, tc.id, tc.username, "pw", tc.realms)
			if got != nil || ErrorCode(err) != tc.wantCode {
				t.Errorf("= %v, %v; want nil and code %s", got, err, tc.wantCode)
			}
		})
	}
}
