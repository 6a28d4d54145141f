package sip

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// authzDigestValue builds a complete Digest value from its parameter list.
func authzDigestValue(params string) string { return "Digest " + params }

// authzFullParams is a complete, RFC-shaped parameter list.
const authzFullParams = `username="alice", realm="example.com", nonce="n0nce", uri="sip:example.com", ` +
	`response="0123456789abcdef0123456789abcdef", algorithm=MD5, cnonce="c0nce", qop=auth, nc=00000001`

func TestParseAuthorizationAcceptsWhatClientsSend(t *testing.T) {
	base := Credentials{
		Scheme: SchemeDigest, Username: "alice", Realm: "example.com", Nonce: "n0nce",
		URI: "sip:example.com", Response: "0123456789abcdef0123456789abcdef",
		Algorithm: "MD5", AlgorithmPresent: true, Cnonce: "c0nce", QOP: "auth",
		NC: 1, NCPresent: true, NCHex: "00000001",
	}
	with := func(f func(c *Credentials)) Credentials {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name  string
		value string
		want  Credentials
	}{
		{"the RFC shape parses", authzDigestValue(authzFullParams), base},
		{"no spaces after commas (Yealink style) parses",
			`Digest username="alice",realm="example.com",nonce="n0nce",uri="sip:example.com",response="0123456789abcdef0123456789abcdef",algorithm=MD5,cnonce="c0nce",qop=auth,nc=00000001`,
			base},
		{"tabs around commas and equals parse",
			"Digest\tusername\t=\t\"alice\",\trealm=\"example.com\" ,\tnonce=\"n0nce\",uri=\"sip:example.com\",response=\"0123456789abcdef0123456789abcdef\",algorithm=MD5,cnonce=\"c0nce\",qop=auth,nc=00000001\t",
			base},
		{"CRLF-folded whitespace around commas and equals parses",
			"Digest username=\"alice\",\r\n realm\r\n\t=\r\n \"example.com\",\n nonce=\"n0nce\", uri=\"sip:example.com\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, cnonce=\"c0nce\", qop=auth, nc=00000001",
			base},
		{"upper-case parameter names are recognised",
			`Digest Username="alice", REALM="example.com", Nonce="n0nce", URI="sip:example.com", Response="0123456789abcdef0123456789abcdef", ALGORITHM=MD5, CNonce="c0nce", QOP=auth, NC=00000001`,
			base},
		{"a lower-case scheme is accepted", "digest " + authzFullParams, base},
		{"an upper-case scheme is accepted", "DIGEST " + authzFullParams, base},
		{"an unquoted uri (RFC 2617 clients) is accepted",
			`Digest username="alice", realm="example.com", nonce="n0nce", uri=sip:example.com, response="0123456789abcdef0123456789abcdef", algorithm=MD5, cnonce="c0nce", qop=auth, nc=00000001`,
			base},
		{"an unquoted uri with parameters is accepted",
			`Digest username=alice, realm=example.com, nonce=n0nce, uri=sip:alice@example.com;transport=tcp, response=0123456789abcdef0123456789abcdef, algorithm=MD5, cnonce=c0nce, qop=auth, nc=00000001`,
			with(func(c *Credentials) { c.URI = "sip:alice@example.com;transport=tcp" })},
		{"a trailing comma is tolerated", authzDigestValue(authzFullParams + ","), base},
		{"empty list elements are tolerated", "Digest ,, " + strings.ReplaceAll(authzFullParams, ", ", " , , ") + " ,", base},
		{"a quoted algorithm is accepted", authzDigestValue(strings.Replace(authzFullParams, "algorithm=MD5", `algorithm="MD5"`, 1)), base},
		{"quoted qop and nc are accepted", authzDigestValue(strings.Replace(strings.Replace(authzFullParams, "qop=auth", `qop="auth"`, 1), "nc=00000001", `nc="00000001"`, 1)), base},
		{"upper-case hex in nc is kept as sent",
			authzDigestValue(strings.Replace(authzFullParams, "nc=00000001", "nc=0000001F", 1)),
			with(func(c *Credentials) { c.NC, c.NCHex = 31, "0000001F" })},
		{"the algorithm is canonicalised case-insensitively",
			authzDigestValue(strings.Replace(authzFullParams, "algorithm=MD5", "algorithm=sha-512-256", 1)),
			with(func(c *Credentials) { c.Algorithm = "SHA-512-256" })},
		{"a missing algorithm means MD5 and is flagged",
			authzDigestValue(strings.Replace(authzFullParams, ", algorithm=MD5", "", 1)),
			with(func(c *Credentials) { c.AlgorithmPresent = false })},
		{"backslash escapes in quoted strings are decoded",
			authzDigestValue(strings.Replace(authzFullParams, `username="alice"`, `username="a\"l\\i\ce"`, 1)),
			with(func(c *Credentials) { c.Username = `a"l\ice` })},
		{"UTF-8 and tabs inside quoted strings are kept",
			authzDigestValue(strings.Replace(authzFullParams, `realm="example.com"`, "realm=\"J\u00e4s\u00f8n\tRealm\"", 1)),
			with(func(c *Credentials) { c.Realm = "J\u00e4s\u00f8n\tRealm" })},
		{"an empty quoted value is a value",
			authzDigestValue(strings.Replace(authzFullParams, `cnonce="c0nce"`, `cnonce=""`, 1)),
			with(func(c *Credentials) { c.Cnonce = "" })},
		{"unknown auth-params (x_y, username*) land in Params",
			authzDigestValue(authzFullParams + `, x_y=z, Username*=UTF-8''J%C3%A4s%C3%B8n, opaque="op"`),
			with(func(c *Credentials) {
				c.Opaque = "op"
				c.Params = map[string]string{"x_y": "z", "username*": "UTF-8''J%C3%A4s%C3%B8n"}
			})},
		{"userhash=false is accepted", authzDigestValue(authzFullParams + ", userhash=FALSE"), base},
		{"userhash=true is reported", authzDigestValue(authzFullParams + `, userhash="true"`),
			with(func(c *Credentials) { c.Userhash = true })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAuthorization(tt.value)
			if err != nil {
				t.Fatalf("ParseAuthorization: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", *got, tt.want)
			}
		})
	}
}

func TestParseAuthorizationReportsUnsupportedAlgorithms(t *testing.T) {
	for _, tt := range []struct {
		sent, canonical string
		supported       bool
	}{
		{"MD5", "MD5", true},
		{"sha-256", "SHA-256", true},
		{"Sha-512-256", "SHA-512-256", true},
		{"md5-SESS", "MD5-sess", false},
		{"SHA-256-sess", "SHA-256-sess", false},
		{"sha-512-256-sess", "SHA-512-256-sess", false},
		{"SHA-512", "SHA-512", false},
		{"AKAv1-MD5", "AKAv1-MD5", false},
		{`""`, "", false},
	} {
		t.Run(tt.sent, func(t *testing.T) {
			c, err := ParseAuthorization(authzDigestValue(strings.Replace(authzFullParams, "algorithm=MD5", "algorithm="+tt.sent, 1)))
			if err != nil {
				t.Fatalf("ParseAuthorization: %v", err)
			}
			if c.Algorithm != tt.canonical || !c.AlgorithmPresent {
				t.Errorf("Algorithm = %q (present %v), want %q", c.Algorithm, c.AlgorithmPresent, tt.canonical)
			}
			if _, ok := c.SupportedAlgorithm(); ok != tt.supported {
				t.Errorf("SupportedAlgorithm ok = %v, want %v", ok, tt.supported)
			}
		})
	}
}

func TestParseAuthorizationRefusesMalformedValues(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name     string
		value    string
		tooLarge bool
		scheme   bool // ErrUnsupportedAuthScheme instead of malformed
	}{
		{"an empty value", "", false, false},
		{"only whitespace", " \t ", false, false},
		{"Digest without parameters", "Digest", false, false},
		{"Digest with only commas", "Digest , ,", false, false},
		{"no whitespace after the scheme", "Digest,username=\"a\"", false, false},
		{"nc with a non-hex digit (0000000g)", authzDigestValue(strings.Replace(authzFullParams, "nc=00000001", "nc=0000000g", 1)), false, false},
		{"nc with 7 digits", authzDigestValue(strings.Replace(authzFullParams, "nc=00000001", "nc=0000001", 1)), false, false},
		{"nc with 9 digits", authzDigestValue(strings.Replace(authzFullParams, "nc=00000001", "nc=000000001", 1)), false, false},
		{"nc with a sign", authzDigestValue(strings.Replace(authzFullParams, "nc=00000001", "nc=+0000001", 1)), false, false},
		{"a duplicate username", authzDigestValue(authzFullParams + `, username="mallory"`), false, false},
		{"a duplicate differing in case", authzDigestValue(authzFullParams + `, USERNAME="alice"`), false, false},
		{"a duplicate nc", authzDigestValue(authzFullParams + `, nc=00000002`), false, false},
		{"a duplicate unknown param", authzDigestValue(authzFullParams + `, foo=1, FOO=2`), false, false},
		{"a missing response", authzDigestValue(strings.Replace(authzFullParams, `response="0123456789abcdef0123456789abcdef", `, "", 1)), false, false},
		{"a missing uri", authzDigestValue(strings.Replace(authzFullParams, `uri="sip:example.com", `, "", 1)), false, false},
		{"an unterminated quoted string", `Digest username="alice, real`, false, false},
		{"a dangling backslash", `Digest username="alice\`, false, false},
		{"a missing comma between params", `Digest username="alice" realm="example.com"`, false, false},
		{"a missing equals sign", `Digest username "alice"`, false, false},
		{"a name without value", `Digest username=, realm="r"`, false, false},
		{"a name at the end without value", `Digest username=`, false, false},
		{"a quote inside an unquoted value", `Digest username=al"ice`, false, false},
		{"a bare CRLF (not a fold)", "Digest username=\"alice\",\r\nrealm=\"r\"", false, false},
		{"a CRLF inside a quoted string", "Digest username=\"al\r\n ice\", " + authzFullParams[len(`username="alice", `):], false, false},
		{"an escaped LF inside a quoted string", "Digest username=\"al\\\nice\", " + authzFullParams[len(`username="alice", `):], false, false},
		{"a NUL in a value", "Digest username=\"al\x00ice\", " + authzFullParams[len(`username="alice", `):], false, false},
		{"invalid UTF-8", "Digest username=\"al\xffice\", " + authzFullParams[len(`username="alice", `):], false, false},
		{"userhash that is not a boolean", authzDigestValue(authzFullParams + ", userhash=yes"), false, false},
		{"more than 32 parameters", authzDigestValue(authzFullParams + authzManyParams(24)), false, false},
		{"a parameter name that is not a token", authzDigestValue(`user(name)="alice"`), false, false},
		{"a Digest value over 8 KiB", authzDigestValue(authzFullParams + `, opaque="` + long(8<<10) + `"`), true, false},
		{"a parameter over 1 KiB", authzDigestValue(authzFullParams + `, opaque="` + long(1025) + `"`), true, false},
		{"a value over 16 KiB", "Bearer " + long(16<<10), true, false},
		{"Bearer without token", "Bearer", false, false},
		{"Bearer with only spaces", "Bearer   ", false, false},
		{"Bearer with two tokens", "Bearer abc def", false, false},
		{"Bearer with a comma", "Bearer abc,def", false, false},
		{"Bearer starting with padding", "Bearer =abc", false, false},
		{"Bearer with padding in the middle", "Bearer ab=c", false, false},
		{"Bearer with a quote", `Bearer "abc"`, false, false},
		{"Bearer in auth-param form", `Bearer token="abc"`, false, false},
		{"Bearer with a non-ASCII character", "Bearer ab\u00e9", false, false},
		{"the Basic scheme", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", false, true},
		{"an unknown scheme", "NTLM abc", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseAuthorization(tt.value)
			if err == nil {
				t.Fatalf("accepted: %#v", c)
			}
			if tt.scheme {
				if !errors.Is(err, ErrUnsupportedAuthScheme) || errors.Is(err, ErrMalformedAuthorization) {
					t.Errorf("err = %v, want ErrUnsupportedAuthScheme only", err)
				}
				return
			}
			if !errors.Is(err, ErrMalformedAuthorization) {
				t.Errorf("err = %v, want ErrMalformedAuthorization", err)
			}
			if got := errors.Is(err, ErrAuthorizationTooLarge); got != tt.tooLarge {
				t.Errorf("errors.Is(err, ErrAuthorizationTooLarge) = %v, want %v", got, tt.tooLarge)
			}
			var ae *AuthorizationError
			if !errors.As(err, &ae) || ae.Reason == "" {
				t.Errorf("err = %#v, want a *AuthorizationError with a reason", err)
			}
		})
	}
}

// authzManyParams returns n extra ", pN=v" parameters.
func authzManyParams(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(", p")
		b.WriteString(strings.Repeat("x", i+1))
		b.WriteString("=v")
	}
	return b.String()
}

func TestParseAuthorizationCaps(t *testing.T) {
	t.Run("a parameter of exactly 1 KiB is accepted", func(t *testing.T) {
		c, err := ParseAuthorization(authzDigestValue(authzFullParams + `, opaque="` + strings.Repeat("o", 1024) + `"`))
		if err != nil || len(c.Opaque) != 1024 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("exactly 32 parameters are accepted", func(t *testing.T) {
		if _, err := ParseAuthorization(authzDigestValue(authzFullParams + authzManyParams(23))); err != nil {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a 12 KiB Bearer token is accepted", func(t *testing.T) {
		tok := strings.Repeat("eyJhbGciOi", 1200) + "=="
		c, err := ParseAuthorization("Bearer " + tok)
		if err != nil || c.Token != tok {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a Digest value of exactly 8 KiB is accepted", func(t *testing.T) {
		v := authzDigestValue(authzFullParams)
		for i := 0; len(v)+1020 < 8<<10; i++ {
			v += fmt.Sprintf(`, x%d="%s"`, i, strings.Repeat("z", 1000))
		}
		v += strings.Repeat(" ", 8<<10-len(v))
		if len(v) != 8<<10 {
			t.Fatalf("built %d bytes", len(v))
		}
		if _, err := ParseAuthorization(v); err != nil {
			t.Fatalf("err = %v", err)
		}
		if _, err := ParseAuthorization(v + " "); !errors.Is(err, ErrAuthorizationTooLarge) {
			t.Fatalf("one byte more: err = %v, want ErrAuthorizationTooLarge", err)
		}
	})
}

func TestParseAuthorizationBearer(t *testing.T) {
	for _, tt := range []struct{ name, value, token string }{
		{"a JWT", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_"},
		{"lower-case scheme and trailing whitespace", "bearer abc~+/._-== \t", "abc~+/._-=="},
		{"several spaces after the scheme", "Bearer    tok", "tok"},
		{"a folded line after the scheme", "Bearer\r\n tok", "tok"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseAuthorization(tt.value)
			if err != nil {
				t.Fatalf("ParseAuthorization: %v", err)
			}
			if c.Scheme != SchemeBearer || c.Token != tt.token {
				t.Errorf("got %#v", c)
			}
		})
	}
}

func TestParseAuthorizationErrorsNeverContainSecrets(t *testing.T) {
	const secret = "5ecre7"
	values := []string{
		`Digest username="a", response="` + secret + `", response="` + secret + `"`,
		`Digest username="a", response="` + secret,
		`Digest username="a", response=` + secret + `"x`,
		`Digest username="a", response="` + secret + `", nc=` + secret,
		`Digest username="a", response="` + secret + `" realm="r"`,
		`Digest response="` + secret + `", opaque="` + strings.Repeat(secret, 300) + `"`,
		"Digest response=\"" + secret + "\x01\"",
		"Bearer " + secret + " " + secret,
		"Bearer " + secret + "\"",
		"Bearer " + strings.Repeat(secret, 3000),
		secret + " " + secret,
		"Digest " + secret,
		`Digest username="alice", realm="r", nonce="n", uri="u"` + `, response="` + secret + `", userhash=` + secret,
	}
	for _, v := range values {
		_, err := ParseAuthorization(v)
		if err == nil {
			t.Errorf("accepted %q", v)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains the secret", err)
		}
	}
}

func TestCredentialsStringRedactsSecrets(t *testing.T) {
	c, err := ParseAuthorization(authzDigestValue(authzFullParams))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.String(); strings.Contains(s, c.Response) || !strings.Contains(s, `username="alice"`) {
		t.Errorf("String() = %q", s)
	}
	b, err := ParseAuthorization("Bearer s3cr3t.t0ken")
	if err != nil {
		t.Fatal(err)
	}
	if s := b.String(); strings.Contains(s, "s3cr3t") {
		t.Errorf("String() = %q", s)
	}
}

func TestCredentialsFormatReparses(t *testing.T) {
	for _, v := range []string{
		authzDigestValue(authzFullParams),
		authzDigestValue(authzFullParams + `, opaque="o\"p\\q", x_y=z, userhash=true`),
		authzDigestValue(strings.Replace(authzFullParams, ", algorithm=MD5", "", 1)),
		"Bearer abc.def==",
	} {
		c, err := ParseAuthorization(v)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseAuthorization(c.format(false))
		if err != nil {
			t.Fatalf("reparse of %q: %v", c.format(false), err)
		}
		if !reflect.DeepEqual(c, again) {
			t.Errorf("reparse differs:\n%#v\n%#v", c, again)
		}
	}
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		authzDigestValue(authzFullParams),
		`Digest username="user0001",realm="bench.local",uri="sip:bench.local",nonce="b3nchn0nce0000000001",response="9241b35e4b91838a80c8aa20e5f7bb41",algorithm=MD5,cnonce="6b8b4567",qop=auth,nc=00000001`,
		"digest Username=\"a\",\tREALM=r,\r\n nonce=n, uri=sip:r, response=x, nc=0000000A, qop=\"auth\",",
		`Digest username="a\"b\\c", realm="r", nonce="n", uri="u", response="x", algorithm="SHA-256-sess", userhash=true, x*=y`,
		`Digest username="a", username="b"`,
		`Digest nc=0000000g`,
		"Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln==",
		"Bearer a b",
		"Basic YWxhZGRpbjpvcGVuc2VzYW1l",
		"Digest , ,",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := ParseAuthorization(v)
		if err != nil {
			if !errors.Is(err, ErrMalformedAuthorization) && !errors.Is(err, ErrUnsupportedAuthScheme) {
				t.Fatalf("untyped error %v", err)
			}
			if c != nil {
				t.Fatal("credentials with an error")
			}
			return
		}
		if c.Scheme != SchemeDigest && c.Scheme != SchemeBearer {
			t.Fatalf("scheme %q", c.Scheme)
		}
		if c.NCPresent && (len(c.NCHex) != 8) {
			t.Fatalf("NCHex %q", c.NCHex)
		}
		enc := c.format(false)
		limit := MaxDigestAuthorizationLen
		if c.Scheme == SchemeBearer {
			limit = MaxBearerAuthorizationLen
		}
		if len(enc) > limit {
			return // quoting can lengthen a value that was at the cap
		}
		again, err := ParseAuthorization(enc)
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", enc, err)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("re-parse differs:\n%#v\n%#v", c, again)
		}
		_ = c.String()
		_ = VerifyDigest(c, "00000000000000000000000000000000", "REGISTER")
	})
}

func TestParseAuthorizationEscapedValueCaps(t *testing.T) {
	exact := `\"` + strings.Repeat("e", 1022) + `\\` // decodes to 1024 bytes
	c, err := ParseAuthorization(authzDigestValue(authzFullParams + `, opaque="` + exact + `"`))
	if err != nil || len(c.Opaque) != 1024 {
		t.Fatalf("1024 escaped bytes: err = %v", err)
	}
	for _, v := range []string{
		`\"` + strings.Repeat("e", 1024),                                       // escape first, then too long
		strings.Repeat("e", 1024) + `\"`,                                       // too long before the first escape
		strings.Repeat("e", 1000) + `\"` + "eeeeee" + strings.Repeat(`\e`, 30), // crosses the cap in escapes
	} {
		if _, err := ParseAuthorization(authzDigestValue(authzFullParams + `, opaque="` + v + `"`)); !errors.Is(err, ErrAuthorizationTooLarge) {
			t.Errorf("len %d: err = %v, want ErrAuthorizationTooLarge", len(v), err)
		}
	}
}
