package sip

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/rvoip/users-core/identity"
)

func digestTestHA1(tb testing.TB, alg identity.DigestAlgorithm, user, realm, password string) string {
	tb.Helper()
	ha1, err := identity.HA1(alg, user, realm, password)
	if err != nil {
		tb.Fatal(err)
	}
	return ha1
}

func mustParseAuthz(tb testing.TB, v string) *Credentials {
	tb.Helper()
	c, err := ParseAuthorization(v)
	if err != nil {
		tb.Fatalf("ParseAuthorization(%q): %v", v, err)
	}
	return c
}

// The RFC 7616 section 3.9.1 example. The expected responses were
// recomputed independently with coreutils, e.g. for SHA-256:
//
//	ha1=$(printf %s 'Mufasa:http-auth@example.org:Circle of Life' | sha256sum | cut -d' ' -f1)
//	ha2=$(printf %s 'GET:/dir/index.html' | sha256sum | cut -d' ' -f1)
//	printf %s "$ha1:7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v:00000001:f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ:auth:$ha2" | sha256sum
//
// and they equal the values printed in the RFC.
const (
	rfcNonce  = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
	rfcCnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
	rfcMD5    = "8ca523f5e9506fed4657c9700eebdbec"
	rfcSHA256 = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
)

func TestDigestRFC7616Example(t *testing.T) {
	for _, tt := range []struct {
		alg  identity.DigestAlgorithm
		want string
	}{{identity.MD5, rfcMD5}, {identity.SHA256, rfcSHA256}} {
		t.Run(string(tt.alg), func(t *testing.T) {
			ha1 := digestTestHA1(t, tt.alg, "Mufasa", "http-auth@example.org", "Circle of Life")
			if got := DigestResponse(tt.alg, ha1, rfcNonce, "00000001", rfcCnonce, "auth", "GET", "/dir/index.html"); got != tt.want {
				t.Fatalf("DigestResponse = %s, want %s", got, tt.want)
			}
			// The header as printed in the RFC, folded over lines.
			v := "Digest username=\"Mufasa\",\r\n       realm=\"http-auth@example.org\",\r\n       uri=\"/dir/index.html\",\r\n" +
				"       algorithm=" + string(tt.alg) + ",\r\n       nonce=\"" + rfcNonce + "\",\r\n       nc=00000001,\r\n" +
				"       cnonce=\"" + rfcCnonce + "\",\r\n       qop=auth,\r\n       response=\"" + tt.want + "\",\r\n" +
				"       opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
			c := mustParseAuthz(t, v)
			if !VerifyDigest(c, ha1, "GET") {
				t.Error("the RFC example does not verify")
			}
			if VerifyDigest(c, ha1, "POST") {
				t.Error("verified for another method")
			}
			if VerifyDigest(c, digestTestHA1(t, tt.alg, "Mufasa", "http-auth@example.org", "circle of life"), "GET") {
				t.Error("verified with a wrong password")
			}
		})
	}
}

func TestDigestIcholyClient(t *testing.T) {
	clock := newNonceTestClock()
	keeper := NewNonceKeeper(testNonceSecret(t, 1), 0, clock.Now)
	const realm, user, password = "example.com", "alice", "correct horse"
	for _, alg := range digestTestAlgs {
		t.Run(string(alg), func(t *testing.T) {
			// The client reads our challenge with its own parser, as
			// sipgo's client does.
			chal, err := digest.ParseChallenge(DigestChallenge(realm, keeper.New(realm, alg), alg, false))
			if err != nil {
				t.Fatalf("icholy cannot parse our challenge: %v", err)
			}
			if chal.Realm != realm || !strings.EqualFold(chal.Algorithm, string(alg)) || !chal.SupportsQOP("auth") {
				t.Fatalf("icholy read %+v", chal)
			}
			for nc := 1; nc <= 3; nc++ {
				cred, err := digest.Digest(chal, digest.Options{
					Method: "REGISTER", URI: "sip:example.com", Username: user, Password: password, Count: nc,
				})
				if err != nil {
					t.Fatal(err)
				}
				c := mustParseAuthz(t, cred.String())
				got, ok := c.SupportedAlgorithm()
				if !ok || got != alg || c.NC != uint32(nc) {
					t.Fatalf("parsed %+v", c)
				}
				if st := keeper.Check(c.Nonce, c.Realm, got); st != NonceValid {
					t.Fatalf("nonce %v", st)
				}
				if !VerifyDigest(c, digestTestHA1(t, alg, user, realm, password), "REGISTER") {
					t.Fatal("a correct icholy answer does not verify")
				}
				if VerifyDigest(c, digestTestHA1(t, alg, user, realm, "wrong"), "REGISTER") {
					t.Fatal("verified with a wrong password")
				}
				for _, other := range digestTestAlgs {
					if other != alg && VerifyDigest(c, digestTestHA1(t, other, user, realm, password), "REGISTER") {
						t.Fatalf("verified against the %s HA1", other)
					}
				}
				if !DigestURIMatches(c.URI, digestTestURI(t, "sip:example.com;transport=tcp")) {
					t.Fatal("uri does not match the Request-URI it came from")
				}
			}
		})
	}
	t.Run("an MD5 challenge without algorithm", func(t *testing.T) {
		chal := &digest.Challenge{Realm: realm, Nonce: keeper.New(realm, identity.MD5), QOP: []string{"auth"}}
		cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:example.com", Username: user, Password: password})
		if err != nil {
			t.Fatal(err)
		}
		c := mustParseAuthz(t, cred.String())
		if c.AlgorithmPresent || c.Algorithm != "MD5" {
			t.Fatalf("algorithm %q present %v", c.Algorithm, c.AlgorithmPresent)
		}
		if !VerifyDigest(c, digestTestHA1(t, identity.MD5, user, realm, password), "REGISTER") {
			t.Fatal("does not verify")
		}
	})
	t.Run("an answer without qop (RFC 2069 mode) is refused", func(t *testing.T) {
		chal := &digest.Challenge{Realm: realm, Nonce: keeper.New(realm, identity.SHA256), Algorithm: "SHA-256"}
		cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:example.com", Username: user, Password: password})
		if err != nil {
			t.Fatal(err)
		}
		if VerifyDigest(mustParseAuthz(t, cred.String()), digestTestHA1(t, identity.SHA256, user, realm, password), "REGISTER") {
			t.Fatal("verified without qop")
		}
	})
	t.Run("an answer with userhash is refused", func(t *testing.T) {
		chal := &digest.Challenge{Realm: realm, Nonce: keeper.New(realm, identity.SHA256), Algorithm: "SHA-256", QOP: []string{"auth"}, Userhash: true}
		cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:example.com", Username: user, Password: password})
		if err != nil {
			t.Fatal(err)
		}
		c := mustParseAuthz(t, cred.String())
		if !c.Userhash || VerifyDigest(c, digestTestHA1(t, identity.SHA256, user, realm, password), "REGISTER") {
			t.Fatal("userhash not refused")
		}
	})
}

func TestDigestHandWrittenClientLines(t *testing.T) {
	tests := []struct {
		name, value, user, realm, password string
		alg                                identity.DigestAlgorithm
	}{
		// Responses computed independently with Python's hashlib.
		{"SIPp (no spaces, qop/nc unquoted, last)",
			`Digest username="user0001",realm="bench.local",uri="sip:bench.local",nonce="b3nchn0nce0000000001",response="9241b35e4b91838a80c8aa20e5f7bb41",algorithm=MD5,cnonce="6b8b4567",qop=auth,nc=00000001`,
			"user0001", "bench.local", "pass0001", identity.MD5},
		{"SIPp with SHA-512-256",
			`Digest username="user0001",realm="bench.local",uri="sip:bench.local",nonce="b3nchn0nce0000000001",response="def346294eb61aec066f111a79a7a2e432fa137bffcecaa7ac70c720b511bd81",algorithm=SHA-512-256,cnonce="6b8b4567",qop=auth,nc=00000001`,
			"user0001", "bench.local", "pass0001", identity.SHA512256},
		{"sipsak (no algorithm, qop/nc/cnonce after response)",
			`Digest username="sipsak", realm="example.org", nonce="4f1c2a9e77b0d3c5", uri="sip:example.org", response="b5e94c7d0059fdf4d71080ad4543d21b", qop=auth, nc=00000001, cnonce="2f9a1c3b"`,
			"sipsak", "example.org", "t0ps3cret", identity.MD5},
		{"upper-case hex in the response",
			`Digest username="sipsak", realm="example.org", nonce="4f1c2a9e77b0d3c5", uri="sip:example.org", response="B5E94C7D0059FDF4D71080AD4543D21B", qop=auth, nc=00000001, cnonce="2f9a1c3b"`,
			"sipsak", "example.org", "t0ps3cret", identity.MD5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParseAuthz(t, tt.value)
			if !VerifyDigest(c, digestTestHA1(t, tt.alg, tt.user, tt.realm, tt.password), "REGISTER") {
				t.Error("does not verify")
			}
			if VerifyDigest(c, digestTestHA1(t, tt.alg, tt.user, tt.realm, tt.password+"x"), "REGISTER") {
				t.Error("verifies with a wrong password")
			}
		})
	}
}

func TestVerifyDigestRefuses(t *testing.T) {
	const realm = "example.com"
	ha1 := digestTestHA1(t, identity.SHA256, "alice", realm, "pw")
	good := func() *Credentials {
		c := &Credentials{
			Scheme: SchemeDigest, Username: "alice", Realm: realm, Nonce: "n", URI: "sip:example.com",
			Algorithm: "SHA-256", AlgorithmPresent: true, Cnonce: "cn", QOP: "auth", NC: 1, NCPresent: true, NCHex: "00000001",
		}
		c.Response = DigestResponse(identity.SHA256, ha1, c.Nonce, c.NCHex, c.Cnonce, c.QOP, "REGISTER", c.URI)
		return c
	}
	if !VerifyDigest(good(), ha1, "REGISTER") {
		t.Fatal("the reference credentials do not verify")
	}
	for _, tt := range []struct {
		name   string
		change func(c *Credentials)
	}{
		{"no qop", func(c *Credentials) { c.QOP = "" }},
		{"qop=auth-int", func(c *Credentials) { c.QOP = "auth-int" }},
		{"a -sess algorithm", func(c *Credentials) { c.Algorithm = "SHA-256-sess" }},
		{"an unknown algorithm", func(c *Credentials) { c.Algorithm = "SHA-1" }},
		{"userhash", func(c *Credentials) { c.Userhash = true }},
		{"no nc", func(c *Credentials) { c.NCPresent = false }},
		{"no cnonce", func(c *Credentials) { c.Cnonce = "" }},
		{"another nc", func(c *Credentials) { c.NC, c.NCHex = 2, "00000002" }},
		{"another nonce", func(c *Credentials) { c.Nonce = "m" }},
		{"another uri", func(c *Credentials) { c.URI = "sip:example.org" }},
		{"another cnonce", func(c *Credentials) { c.Cnonce = "cm" }},
		{"a truncated response", func(c *Credentials) { c.Response = c.Response[:63] }},
		{"a longer response", func(c *Credentials) { c.Response += "0" }},
		{"a response with a non-hex character", func(c *Credentials) { c.Response = "g" + c.Response[1:] }},
		{"the Bearer scheme", func(c *Credentials) { c.Scheme = SchemeBearer }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.change(c)
			if VerifyDigest(c, ha1, "REGISTER") {
				t.Error("verified")
			}
		})
	}
	if VerifyDigest(nil, ha1, "REGISTER") {
		t.Error("nil verified")
	}
	if VerifyDigest(good(), ha1[:32], "REGISTER") {
		t.Error("an HA1 of the wrong length verified")
	}
	t.Run("nc formatted from NC when NCHex is unset", func(t *testing.T) {
		c := good()
		c.NCHex = ""
		if !VerifyDigest(c, ha1, "REGISTER") {
			t.Error("does not verify")
		}
	})
}

func TestVerifyDigestDoesNotAllocate(t *testing.T) {
	ha1 := digestTestHA1(t, identity.SHA512256, "alice", "r", "pw")
	c := &Credentials{Scheme: SchemeDigest, Nonce: "n", URI: "sip:r", Algorithm: "SHA-512-256", Cnonce: "c", QOP: "auth", NC: 1, NCPresent: true, NCHex: "00000001"}
	c.Response = DigestResponse(identity.SHA512256, ha1, "n", "00000001", "c", "auth", "REGISTER", "sip:r")
	if a := testing.AllocsPerRun(100, func() {
		if !VerifyDigest(c, ha1, "REGISTER") {
			t.Fatal("does not verify")
		}
	}); a != 0 {
		t.Errorf("VerifyDigest allocates %v times", a)
	}
}

func TestDigestResponseUnknownAlgorithm(t *testing.T) {
	if got := DigestResponse("SHA-1", "x", "n", "00000001", "c", "auth", "REGISTER", "sip:r"); got != "" {
		t.Errorf("got %q", got)
	}
}

func digestTestURI(tb testing.TB, s string) sip.Uri {
	tb.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		tb.Fatalf("ParseUri(%q): %v", s, err)
	}
	return u
}

func TestDigestURIMatches(t *testing.T) {
	tests := []struct {
		name, digestURI, requestURI string
		want                        bool
	}{
		{"the same URI", "sip:example.com", "sip:example.com", true},
		{"URI parameters of the Request-URI are ignored (sipgo strips them)", "sip:example.com", "sip:example.com;transport=tcp;lr", true},
		{"URI parameters of the digest uri are ignored", "sip:example.com;transport=udp", "sip:example.com", true},
		{"URI headers are ignored", "sip:example.com?subject=x", "sip:example.com", true},
		{"an absent port equals 5060 for sip", "sip:example.com:5060", "sip:example.com", true},
		{"an absent port equals 5061 for sips", "sips:example.com", "sips:example.com:5061", true},
		{"5061 is not the default for sip", "sip:example.com:5061", "sip:example.com", false},
		{"another port", "sip:example.com:5080", "sip:example.com:5060", false},
		{"the host is case-insensitive", "sip:EXAMPLE.com", "sip:example.COM", true},
		{"the scheme is case-insensitive", "SIP:example.com", "sip:example.com", true},
		{"sip is not sips", "sip:example.com", "sips:example.com", false},
		{"the same user", "sip:alice@example.com", "sip:alice@example.com", true},
		{"the user is case-sensitive", "sip:Alice@example.com", "sip:alice@example.com", false},
		{"user escapes are decoded", "sip:al%69ce@example.com", "sip:alice@example.com", true},
		{"escapes on both sides are decoded", "sip:%2B1555@example.com", "sip:+1555@example.com", true},
		{"a user against none", "sip:alice@example.com", "sip:example.com", false},
		{"a password is ignored", "sip:alice:pw@example.com", "sip:alice@example.com", true},
		{"IPv4 addresses", "sip:192.0.2.1:5060", "sip:192.0.2.1", true},
		{"IPv6 in brackets", "sip:[2001:db8::1]", "sip:[2001:DB8:0:0::1]:5060", true},
		{"IPv6 with a port", "sip:[2001:db8::1]:5080", "sip:[2001:db8::1]:5080", true},
		{"different IPv6 addresses", "sip:[2001:db8::1]", "sip:[2001:db8::2]", false},
		{"a trailing dot in the host", "sip:example.com.", "sip:example.com", true},
		{"a different host", "sip:example.org", "sip:example.com", false},
		{"a subdomain", "sip:evil.example.com", "sip:example.com", false},
		{"an HTTP path", "/dir/index.html", "sip:example.com", false},
		{"a tel URI", "tel:+15551234", "sip:example.com", false},
		{"a wildcard", "*", "sip:example.com", false},
		{"an empty uri", "", "sip:example.com", false},
		{"garbage", "sip:exa mple.com", "sip:exa mple.com", false},
		{"an unterminated IPv6 literal", "sip:[2001:db8::1", "sip:example.com", false},
		{"an IPv6 literal that is not an address", "sip:[example.com]", "sip:example.com", false},
		{"a bad escape", "sip:al%6@example.com", "sip:al%6@example.com", false},
		{"a negative port", "sip:example.com:-1", "sip:example.com", false},
		{"a port out of range", "sip:example.com:70000", "sip:example.com:70000", false},
		{"a non-numeric port", "sip:example.com:http", "sip:example.com", false},
		{"an empty host", "sip:", "sip:example.com", false},
		{"an empty host with a user", "sip:alice@", "sip:alice@", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req sip.Uri
			if err := sip.ParseUri(tt.requestURI, &req); err != nil && tt.want {
				t.Fatalf("request URI: %v", err)
			}
			if got := DigestURIMatches(tt.digestURI, req); got != tt.want {
				t.Errorf("DigestURIMatches(%q, %q) = %v, want %v", tt.digestURI, tt.requestURI, got, tt.want)
			}
		})
	}
	t.Run("a Request-URI without scheme counts as sip", func(t *testing.T) {
		if !DigestURIMatches("sip:example.com", sip.Uri{Host: "example.com"}) {
			t.Error("no match")
		}
	})
	t.Run("an over-long digest uri does not match", func(t *testing.T) {
		if DigestURIMatches("sip:"+strings.Repeat("a", 1100)+".com", digestTestURI(t, "sip:example.com")) {
			t.Error("matched")
		}
	})
}

func FuzzDigestURIMatches(f *testing.F) {
	for _, s := range []string{"sip:example.com", "sips:[::1]:5061;x=y?h=v", "sip:a%41@b", "sip:[", "sip:a@b:99999", "tel:1"} {
		f.Add(s, "sip:alice@example.com:5060;transport=tcp")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		var u sip.Uri
		if sip.ParseUri(b, &u) != nil {
			return
		}
		if DigestURIMatches(a, u) != DigestURIMatches(a, u) {
			t.Fatal("not deterministic")
		}
	})
}

func TestSplitDigestUsername(t *testing.T) {
	domains := []string{"example.com", "Voip.Example.org"}
	for _, tt := range []struct {
		in, user string
		ok       bool
	}{
		{"alice", "alice", true},
		{"alice@example.com", "alice", true},
		{"alice@EXAMPLE.COM", "alice", true},
		{"alice@voip.example.org", "alice", true},
		{"alice@example.net", "", false},
		{"alice@evil.example.com", "", false},
		{"alice@example.com:5060", "", false},
		{"alice@", "", false},
		{"@example.com", "", false},
		{"a@b@example.com", "", false},
		{"", "", false},
		{"+15551234", "+15551234", true},
	} {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			user, ok := SplitDigestUsername(tt.in, domains)
			if user != tt.user || ok != tt.ok {
				t.Errorf("= %q, %v; want %q, %v", user, ok, tt.user, tt.ok)
			}
		})
	}
}

func TestDigestChallenge(t *testing.T) {
	const nonce = "AWXQHyACqmf0nEx9bUoHgsrFYl5VzGxtk1gK1b5d"
	for _, tt := range []struct {
		name, realm string
		alg         identity.DigestAlgorithm
		stale       bool
		want        string
	}{
		{"SHA-256", "example.com", identity.SHA256, false,
			`Digest realm="example.com", nonce="` + nonce + `", algorithm=SHA-256, qop="auth"`},
		{"MD5 stale", "example.com", identity.MD5, true,
			`Digest realm="example.com", nonce="` + nonce + `", algorithm=MD5, qop="auth", stale=true`},
		{"SHA-512-256", "example.com", identity.SHA512256, false,
			`Digest realm="example.com", nonce="` + nonce + `", algorithm=SHA-512-256, qop="auth"`},
		{"a realm that would break out of the quotes is sanitized", "ex\"am\\ple.com\r\nX-Injected: 1", identity.MD5, false,
			`Digest realm="example.comX-Injected: 1", nonce="` + nonce + `", algorithm=MD5, qop="auth"`},
		{"an unknown algorithm is reduced to a token", "example.com", "SHA 1\r\n", false,
			`Digest realm="example.com", nonce="` + nonce + `", algorithm=SHA1, qop="auth"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := DigestChallenge(tt.realm, nonce, tt.alg, tt.stale); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	t.Run("three challenges fit a UDP 401 with room to spare", func(t *testing.T) {
		k := NewNonceKeeper(testNonceSecret(t, 1), 0, nil)
		realm := strings.Repeat("r", 63) + ".example.com"
		total := 0
		for _, alg := range digestTestAlgs {
			total += len("WWW-Authenticate: \r\n") + len(DigestChallenge(realm, k.New(realm, alg), alg, true))
		}
		if total > 650 { // leaves ~650 of 1300 bytes for the status line, Via, From, To, Call-ID, CSeq
			t.Errorf("three challenges take %d bytes", total)
		}
		t.Logf("three challenge headers with a 75-byte realm: %d bytes", total)
	})
}

func TestValidateRealm(t *testing.T) {
	for _, ok := range []string{"example.com", "voip.example.org", "J\u00e4s\u00f8n realm", "[::1]"} {
		if err := ValidateRealm(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", `a"b`, `a\b`, "a\rb", "a\nb", "a\x00b", "a\tb", "\xff", strings.Repeat("a", 256)} {
		if ValidateRealm(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// BenchmarkDigestVerify measures the CPU part of one Digest REGISTER:
// parse the header, check the nonce, compute the response and compare.
func BenchmarkDigestVerify(b *testing.B) {
	for _, alg := range digestTestAlgs {
		b.Run(string(alg), func(b *testing.B) {
			clock := newNonceTestClock()
			k := NewNonceKeeper(testNonceSecret(b, 1), 0, clock.Now)
			const realm = "example.com"
			ha1 := digestTestHA1(b, alg, "alice", realm, "pw")
			nonce := k.New(realm, alg)
			resp := DigestResponse(alg, ha1, nonce, "00000001", "0a4f113b", "auth", "REGISTER", "sip:example.com")
			hdr := `Digest username="alice", realm="example.com", nonce="` + nonce + `", uri="sip:example.com", response="` +
				resp + `", algorithm=` + string(alg) + `, cnonce="0a4f113b", qop=auth, nc=00000001`
			b.ReportAllocs()
			for b.Loop() {
				c, err := ParseAuthorization(hdr)
				if err != nil {
					b.Fatal(err)
				}
				a, ok := c.SupportedAlgorithm()
				if !ok || k.Check(c.Nonce, realm, a) != NonceValid || !VerifyDigest(c, ha1, "REGISTER") {
					b.Fatal("does not verify")
				}
			}
		})
	}
}

func BenchmarkParseAuthorization(b *testing.B) {
	v := `Digest username="user0001",realm="bench.local",uri="sip:bench.local",nonce="b3nchn0nce0000000001",response="9241b35e4b91838a80c8aa20e5f7bb41",algorithm=MD5,cnonce="6b8b4567",qop=auth,nc=00000001`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAuthorization(v); err != nil {
			b.Fatal(err)
		}
	}
}
