package jwks

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// unavailableSource is a key source that cannot answer.
type unavailableSource struct{}

func (unavailableSource) Key(context.Context, string) (crypto.PublicKey, string, error) {
	return nil, "", fmt.Errorf("%w: issuer down", ErrKeysUnavailable)
}

// fixedSource returns one key with a chosen algorithm, for any kid.
type fixedSource struct {
	key crypto.PublicKey
	alg string
}

func (s fixedSource) Key(context.Context, string) (crypto.PublicKey, string, error) {
	return s.key, s.alg, nil
}

func TestVerifierRefusesAttacks(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	k := newTestKeyring(t, NewMemoryKeyStore(), testSealer(t), clock, keyGen(t, 4))
	v := newTestVerifier(t, k, clock)
	priv, kid := signingKey(t, k)
	now := clock.Now()

	pubDER, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs256 := func(secret []byte) func([]byte) []byte {
		return func(input []byte) []byte {
			m := hmac.New(sha256.New, secret)
			m.Write(input)
			return m.Sum(nil)
		}
	}
	hdr := func(edits ...string) map[string]any {
		h := map[string]any{"alg": "RS256", "kid": kid, "typ": "at+jwt"}
		for i := 0; i+1 < len(edits); i += 2 {
			if edits[i+1] == "<absent>" {
				delete(h, edits[i])
			} else {
				h[edits[i]] = edits[i+1]
			}
		}
		return h
	}
	claims := func(edit func(c map[string]any)) map[string]any {
		c := accessClaims(now)
		if edit != nil {
			edit(c)
		}
		return c
	}
	valid := compact(t, hdr(), claims(nil), rs256(t, priv))
	dot1 := strings.IndexByte(valid, '.')
	dot2 := dot1 + 1 + strings.IndexByte(valid[dot1+1:], '.')
	tamperedPayload := b64.EncodeToString([]byte(strings.Replace(
		string(mustDecode(t, valid[dot1+1:dot2])), `"roles":["user"]`, `"roles":["admin"]`, 1)))
	otherKey := poolKey(t, 3)

	cases := []struct {
		name  string
		token string
		v     *Verifier
		want  Reason
	}{
		{"alg none", compact(t, hdr("alg", "none"), claims(nil), nil), v, ReasonAlgorithm},
		{"alg None in another case", compact(t, hdr("alg", "None"), claims(nil), nil), v, ReasonAlgorithm},
		{"HS256 keyed with the public key's PKIX DER", compact(t, hdr("alg", "HS256"), claims(nil), hs256(pubDER)), v, ReasonAlgorithm},
		{"HS256 keyed with the public key's PEM", compact(t, hdr("alg", "HS256"), claims(nil), hs256(pubPEM)), v, ReasonAlgorithm},
		{"PS256 header", compact(t, hdr("alg", "PS256"), claims(nil), rs256(t, priv)), v, ReasonAlgorithm},
		{"a key source saying the key is for another algorithm", valid,
			newTestVerifier(t, fixedSource{key: &priv.PublicKey, alg: "PS256"}, clock), ReasonAlgorithm},
		{"a key source handing out a non-RSA key", valid,
			newTestVerifier(t, fixedSource{key: pubDER, alg: "RS256"}, clock), ReasonAlgorithm},
		{"unknown kid", compact(t, hdr("kid", Thumbprint(&otherKey.PublicKey)), claims(nil), rs256(t, otherKey)), v, ReasonUnknownKey},
		{"no kid", compact(t, hdr("kid", "<absent>"), claims(nil), rs256(t, priv)), v, ReasonNoKID},
		{"kid with path characters", compact(t, hdr("kid", "../../etc/passwd"), claims(nil), rs256(t, priv)), v, ReasonBadKID},
		{"kid over 128 characters", compact(t, hdr("kid", strings.Repeat("a", 129)), claims(nil), rs256(t, priv)), v, ReasonBadKID},
		{"wrong iss", compact(t, hdr(), claims(func(c map[string]any) { c["iss"] = "https://evil.example" }), rs256(t, priv)), v, ReasonIssuer},
		{"iss differing only by a trailing slash", compact(t, hdr(), claims(func(c map[string]any) { c["iss"] = testIssuer + "/" }), rs256(t, priv)), v, ReasonIssuer},
		{"no iss", compact(t, hdr(), claims(func(c map[string]any) { delete(c, "iss") }), rs256(t, priv)), v, ReasonIssuer},
		{"wrong aud", compact(t, hdr(), claims(func(c map[string]any) { c["aud"] = "rvoip-api" }), rs256(t, priv)), v, ReasonAudience},
		{"no aud", compact(t, hdr(), claims(func(c map[string]any) { delete(c, "aud") }), rs256(t, priv)), v, ReasonAudience},
		{"expired", compact(t, hdr(), claims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }), rs256(t, priv)), v, ReasonExpired},
		{"expired just beyond leeway", compact(t, hdr(), claims(func(c map[string]any) { c["exp"] = now.Add(-31 * time.Second).Unix() }), rs256(t, priv)), v, ReasonExpired},
		{"nbf in the future", compact(t, hdr(), claims(func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() }), rs256(t, priv)), v, ReasonNotYetValid},
		{"iat in the future", compact(t, hdr(), claims(func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() }), rs256(t, priv)), v, ReasonIssuedInFuture},
		{"no exp", compact(t, hdr(), claims(func(c map[string]any) { delete(c, "exp") }), rs256(t, priv)), v, ReasonNoExpiry},
		{"exp as a string", compact(t, hdr(), claims(func(c map[string]any) { c["exp"] = "2000000000" }), rs256(t, priv)), v, ReasonMalformed},
		{"a refresh token", "rt_Zm9vYmFyYmF6cXV4cXV1eHF1dXpxdXV4", v, ReasonNotAccessToken},
		{"an opaque token without dots", "sipa_0123456789_abcdefabcdef", v, ReasonNotAccessToken},
		{"a token over 8 KiB", compact(t, hdr(), claims(func(c map[string]any) { c["pad"] = strings.Repeat("x", 8192) }), rs256(t, priv)), v, ReasonTooLarge},
		{"a tampered payload", valid[:dot1+1] + tamperedPayload + valid[dot2:], v, ReasonSignature},
		{"a signature of another key", compact(t, hdr(), claims(nil), rs256(t, otherKey)), v, ReasonSignature},
		{"a signature one byte short", valid[:dot2+1] + b64.EncodeToString(mustDecode(t, valid[dot2+1:])[1:]), v, ReasonSignature},
		{"a signature that is not base64url", valid[:len(valid)-4] + "!!!!", v, ReasonMalformed},
		{"wrong typ", compact(t, hdr("typ", "JWT"), claims(nil), rs256(t, priv)), v, ReasonType},
		{"no typ", compact(t, hdr("typ", "<absent>"), claims(nil), rs256(t, priv)), v, ReasonType},
		{"two parts", valid[:dot2], v, ReasonMalformed},
		{"four parts", valid + ".x", v, ReasonMalformed},
		{"a header that is not JSON", b64.EncodeToString([]byte("{alg")) + valid[dot1:], v, ReasonMalformed},
		{"a header that is a JSON array", b64.EncodeToString([]byte(`["RS256"]`)) + valid[dot1:], v, ReasonMalformed},
		{"padding in the header", b64.EncodeToString(mustDecode(t, valid[:dot1])) + "=" + valid[dot1:], v, ReasonMalformed},
		{"a crit header", compact(t, hdr("crit", "exp"), claims(nil), rs256(t, priv)), v, ReasonMalformed},
		{"the key source down", valid, newTestVerifier(t, unavailableSource{}, clock), ReasonUnavailable},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			c, err := tc.v.Verify(ctx, tc.token)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a *VerifyError: %v", err, err)
			}
			if ve.Reason != tc.want {
				t.Fatalf("reason %s (%v), want %s", ve.Reason, err, tc.want)
			}
			if !strings.Contains(err.Error(), string(tc.want)) {
				t.Fatalf("message %q does not name the reason", err)
			}
		})
	}

	t.Run("distinct reasons for distinct checks", func(t *testing.T) {
		seen := map[Reason]bool{}
		for _, tc := range cases {
			seen[tc.want] = true
		}
		if len(seen) != 16 {
			t.Fatalf("the table covers %d reasons: %v", len(seen), slices.Sorted(maps.Keys(seen)))
		}
	})

	t.Run("accepts the valid token", func(t *testing.T) {
		c, err := v.Verify(ctx, valid)
		if err != nil {
			t.Fatal(err)
		}
		if c.Issuer != testIssuer || c.IssuerName != "self" || c.Subject != "user-1" || c.Username != "alice" ||
			c.ID != "tok-1" || !slices.Equal(c.Audience, []string{"rvoip-api", testAudience}) ||
			!slices.Equal(c.Roles, []string{"user"}) || !c.ExpiresAt.Equal(now.Add(15*time.Minute)) ||
			!c.IssuedAt.Equal(now) || !c.NotBefore.Equal(now) || c.Raw["username"] != "alice" {
			t.Fatalf("claims = %+v", c)
		}
		if !c.HasScope("sip.register") || !c.HasScope("openid") || c.HasScope("sip") || c.HasScope("") {
			t.Fatalf("HasScope wrong for %q", c.Scope)
		}
	})
	t.Run("honours the leeway", func(t *testing.T) {
		tok := compact(t, hdr(), claims(func(c map[string]any) {
			c["exp"] = now.Add(-20 * time.Second).Unix()
			c["nbf"] = now.Add(20 * time.Second).Unix()
			c["iat"] = now.Add(20 * time.Second).Unix()
		}), rs256(t, priv))
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("exp 20 s ago with 30 s leeway: %v", err)
		}
	})
	t.Run("accepts typ application/at+jwt and a single-string aud", func(t *testing.T) {
		tok := compact(t, hdr("typ", "application/AT+JWT"), claims(func(c map[string]any) { c["aud"] = testAudience }), rs256(t, priv))
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("accepts a token at the size limit", func(t *testing.T) {
		tok := compact(t, hdr(), claims(func(c map[string]any) { c["pad"] = "" }), rs256(t, priv))
		pad := (DefaultMaxTokenSize - len(tok)) * 3 / 4
		for {
			tok = compact(t, hdr(), claims(func(c map[string]any) { c["pad"] = strings.Repeat("x", pad) }), rs256(t, priv))
			if len(tok) >= DefaultMaxTokenSize-3 {
				break
			}
			pad++
		}
		if len(tok) > DefaultMaxTokenSize {
			t.Skip("overshot the limit")
		}
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("token of %d bytes: %v", len(tok), err)
		}
	})
}

func mustDecode(t testing.TB, s string) []byte {
	t.Helper()
	b, err := b64.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifierChoosesKeysByIssuer(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	a := poolKey(t, 0)
	b := poolKey(t, 1)
	srcA := fixedSource{key: &a.PublicKey, alg: "RS256"}
	srcB := fixedSource{key: &b.PublicKey, alg: "RS256"}
	v, err := NewVerifier(VerifierConfig{Now: clock.Now, Issuers: []IssuerConfig{
		{Name: "a", Issuer: "https://a.example", Audience: "sip", Keys: srcA},
		{Name: "b", Issuer: "https://b.example", Audience: "sip", Keys: srcB, TokenTypes: []string{"at+jwt", "JWT"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(iss string) map[string]any {
		return map[string]any{"iss": iss, "aud": "sip", "exp": clock.Now().Add(time.Minute).Unix()}
	}
	tok := compact(t, map[string]any{"alg": "RS256", "kid": "b1", "typ": "JWT"}, claims("https://b.example"), rs256(t, b))
	c, err := v.Verify(ctx, tok)
	if err != nil || c.IssuerName != "b" {
		t.Fatalf("issuer b: %v %+v", err, c)
	}
	// Issuer a's key cannot sign for issuer b, nor b's typ rules apply to a.
	forged := compact(t, map[string]any{"alg": "RS256", "kid": "a1", "typ": "at+jwt"}, claims("https://b.example"), rs256(t, a))
	if _, err := v.Verify(ctx, forged); ReasonOf(err) != ReasonSignature {
		t.Fatalf("a's key signing for b: %v", err)
	}
	jwtTyp := compact(t, map[string]any{"alg": "RS256", "kid": "a1", "typ": "JWT"}, claims("https://a.example"), rs256(t, a))
	if _, err := v.Verify(ctx, jwtTyp); ReasonOf(err) != ReasonType {
		t.Fatalf("typ JWT for a: %v", err)
	}
}

func TestNewVerifierConfigErrors(t *testing.T) {
	src := fixedSource{}
	good := IssuerConfig{Issuer: "https://a.example", Audience: "sip", Keys: src}
	for name, cfg := range map[string]VerifierConfig{
		"no issuers":       {},
		"leeway over 60 s": {Issuers: []IssuerConfig{good}, Leeway: 61 * time.Second},
		"negative leeway":  {Issuers: []IssuerConfig{good}, Leeway: -time.Second},
		"no audience":      {Issuers: []IssuerConfig{{Issuer: "https://a.example", Keys: src}}},
		"no key source":    {Issuers: []IssuerConfig{{Issuer: "https://a.example", Audience: "sip"}}},
		"no issuer":        {Issuers: []IssuerConfig{{Audience: "sip", Keys: src}}},
		"duplicate issuer": {Issuers: []IssuerConfig{good, good}},
	} {
		if _, err := NewVerifier(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewVerifier(VerifierConfig{Issuers: []IssuerConfig{good}, Leeway: 60 * time.Second}); err != nil {
		t.Errorf("leeway of exactly 60 s: %v", err)
	}
}

func TestNumericDateAcceptsFractionsAndRefusesNonsense(t *testing.T) {
	got, err := numericDate(1700000000.5)
	if err != nil || !got.Equal(time.Unix(1700000000, 500000000)) {
		t.Fatalf("fraction: %v %v", got, err)
	}
	for _, bad := range []any{-1.0, 1e300, math.NaN(), math.Inf(1), 253402300800.0, "1700000000", json.Number("1")} {
		if _, err := numericDate(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func FuzzVerify(f *testing.F) {
	clock := newClock()
	priv := poolKey(f, 0)
	kid := Thumbprint(&priv.PublicKey)
	src := fixedSource{key: &priv.PublicKey, alg: "RS256"}
	v, err := NewVerifier(VerifierConfig{Now: clock.Now, Issuers: []IssuerConfig{{Issuer: testIssuer, Audience: testAudience, Keys: src}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(compact(f, map[string]any{"alg": "RS256", "kid": kid, "typ": "at+jwt"}, accessClaims(clock.Now()), rs256(f, priv)))
	f.Add(compact(f, map[string]any{"alg": "none", "kid": kid}, accessClaims(clock.Now()), nil))
	f.Add("rt_abc")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJhbGciOiJSUzI1NiJ9.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(context.Background(), token)
		if err == nil {
			if c == nil || c.Issuer != testIssuer {
				t.Fatalf("accepted with claims %+v", c)
			}
			return
		}
		if ReasonOf(err) == "" {
			t.Fatalf("error without a reason: %v", err)
		}
	})
}

// Compile-time checks that both key sources satisfy KeySource.
var (
	_ KeySource = (*Keyring)(nil)
	_ KeySource = (*RemoteKeySource)(nil)
)
