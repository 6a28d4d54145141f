package sip

import (
	"errors"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/rvoip/users-core/identity"
)

// Authorization schemes, as Credentials.Scheme spells them.
const (
	SchemeDigest = "Digest"
	SchemeBearer = "Bearer"
)

// Size caps of ParseAuthorization. They bound the work and memory one
// header can cost before anything is authenticated.
const (
	MaxDigestAuthorizationLen = 8 << 10  // whole Digest header value
	MaxBearerAuthorizationLen = 16 << 10 // whole Bearer header value (JWTs can be long)
	MaxAuthParamLen           = 1 << 10  // one Digest parameter value, after unescaping
	authzMaxParams            = 32       // parameters in one Digest value
)

// ErrMalformedAuthorization matches every error of ParseAuthorization
// except ErrUnsupportedAuthScheme: the value is not a well-formed Digest or
// Bearer credential. A registrar answers it with 400 (or a fresh
// challenge); it must not count it as a failed password.
var ErrMalformedAuthorization = errors.New("sip: malformed Authorization header")

// ErrAuthorizationTooLarge matches (together with
// ErrMalformedAuthorization) a value or parameter over the size caps.
var ErrAuthorizationTooLarge = errors.New("sip: Authorization header too large")

// ErrUnsupportedAuthScheme is returned for a syntactically plausible
// scheme other than Digest and Bearer (for example Basic). A registrar
// treats it like missing credentials and challenges.
var ErrUnsupportedAuthScheme = errors.New("sip: unsupported Authorization scheme")

// AuthorizationError is the error type of ParseAuthorization. Reason is a
// fixed text chosen by the parser; it never contains any part of the
// header value, because Authorization values carry secrets (a Digest
// response is an offline-crackable password hash, a Bearer token is a
// credential).
type AuthorizationError struct {
	Reason   string
	tooLarge bool
}

// Error returns "sip: malformed Authorization header: " and the reason.
func (e *AuthorizationError) Error() string {
	return ErrMalformedAuthorization.Error() + ": " + e.Reason
}

// Unwrap lets errors.Is match ErrMalformedAuthorization, and
// ErrAuthorizationTooLarge for the size caps.
func (e *AuthorizationError) Unwrap() []error {
	if e.tooLarge {
		return []error{ErrMalformedAuthorization, ErrAuthorizationTooLarge}
	}
	return []error{ErrMalformedAuthorization}
}

// Errors are preallocated: the parse path answers hostile input and
// should not allocate for it.
var (
	errAuthzEmpty         = &AuthorizationError{Reason: "empty value"}
	errAuthzBadUTF8       = &AuthorizationError{Reason: "value is not valid UTF-8"}
	errAuthzTooLong       = &AuthorizationError{Reason: "value exceeds the size cap", tooLarge: true}
	errAuthzParamTooLong  = &AuthorizationError{Reason: "parameter value exceeds 1024 bytes", tooLarge: true}
	errAuthzTooMany       = &AuthorizationError{Reason: "too many parameters"}
	errAuthzNoSpace       = &AuthorizationError{Reason: "scheme not followed by whitespace"}
	errAuthzNoParams      = &AuthorizationError{Reason: "no parameters"}
	errAuthzName          = &AuthorizationError{Reason: "expected a parameter name"}
	errAuthzEqual         = &AuthorizationError{Reason: "expected '=' after a parameter name"}
	errAuthzValue         = &AuthorizationError{Reason: "expected a parameter value"}
	errAuthzComma         = &AuthorizationError{Reason: "expected ',' between parameters"}
	errAuthzQuote         = &AuthorizationError{Reason: "unterminated quoted string"}
	errAuthzCtl           = &AuthorizationError{Reason: "control character in a value"}
	errAuthzDuplicate     = &AuthorizationError{Reason: "duplicate parameter"}
	errAuthzNC            = &AuthorizationError{Reason: "nc must be exactly 8 hex digits"}
	errAuthzUserhash      = &AuthorizationError{Reason: "userhash must be true or false"}
	errAuthzMissing       = &AuthorizationError{Reason: "missing one of username, realm, nonce, uri, response"}
	errAuthzToken68       = &AuthorizationError{Reason: "Bearer credentials must be one token68"}
	errAuthzBearerMissing = &AuthorizationError{Reason: "Bearer without a token"}
)

// Credentials is one parsed Authorization header value (RFC 3261 section
// 22.4, RFC 7616 section 3.4, RFC 8898 section 2.3).
//
// Parsing checks syntax only. Whether the credentials are acceptable (a
// supported algorithm, qop=auth, our realm, an authentic nonce, a fresh
// nc, a matching uri, the right response) is for NonceKeeper, ReplayGuard,
// DigestURIMatches and VerifyDigest.
type Credentials struct {
	// Scheme is SchemeDigest or SchemeBearer, whatever the case sent.
	Scheme string

	// Digest parameters, unquoted and unescaped, as sent.
	Username, Realm, Nonce, URI, Response, Cnonce, Opaque string
	// QOP is the qop value as sent (not case-folded: the client hashed
	// exactly these bytes).
	QOP string
	// Algorithm is the algorithm in its canonical spelling when known
	// (MD5, SHA-256, SHA-512-256, or one of their -sess variants), else as
	// sent. When the parameter is absent it is "MD5" (RFC 7616 section
	// 3.4) and AlgorithmPresent is false. Use SupportedAlgorithm before
	// trusting it.
	Algorithm        string
	AlgorithmPresent bool
	// NC is the nonce count; NCPresent says whether nc was sent. NCHex is
	// the 8 hex digits exactly as sent: the response is computed over them,
	// and a client may use upper case.
	NC        uint32
	NCPresent bool
	NCHex     string
	// Userhash is true for userhash=true (RFC 7616 section 3.4.4): the
	// username is a hash. Not supported; VerifyDigest refuses it.
	Userhash bool
	// Params holds other auth-params (lower-case names, for example
	// "username*"), or nil when there are none.
	Params map[string]string

	// Token is the Bearer token (token68), for SchemeBearer.
	Token string
}

// SupportedAlgorithm returns the Digest algorithm of c and true when it is
// one users-core verifies: MD5, SHA-256 or SHA-512-256, without -sess.
// Session variants and unknown algorithms parse, but are refused here so
// the answer is a fresh challenge rather than a syntax error.
func (c *Credentials) SupportedAlgorithm() (identity.DigestAlgorithm, bool) {
	switch a := identity.DigestAlgorithm(c.Algorithm); a {
	case identity.MD5, identity.SHA256, identity.SHA512256:
		return a, true
	}
	return "", false
}

// String returns c in header form with the Digest response and the
// Bearer token replaced by "<redacted>", so credentials can be logged.
func (c *Credentials) String() string { return c.format(true) }

// format writes c back in header form; every Digest value is quoted
// except nc. With redact, secrets are hidden.
func (c *Credentials) format(redact bool) string {
	var b strings.Builder
	if c.Scheme == SchemeBearer {
		b.WriteString("Bearer ")
		if redact {
			b.WriteString("<redacted>")
		} else {
			b.WriteString(c.Token)
		}
		return b.String()
	}
	b.WriteString("Digest ")
	first := true
	put := func(name, value string, quote bool) {
		if !first {
			b.WriteString(", ")
		}
		first = false
		b.WriteString(name)
		b.WriteByte('=')
		if !quote {
			b.WriteString(value)
			return
		}
		b.WriteString(authzQuote(value))
	}
	put("username", c.Username, true)
	put("realm", c.Realm, true)
	put("nonce", c.Nonce, true)
	put("uri", c.URI, true)
	if redact {
		put("response", "<redacted>", true)
	} else {
		put("response", c.Response, true)
	}
	if c.AlgorithmPresent {
		put("algorithm", c.Algorithm, true)
	}
	if c.Cnonce != "" {
		put("cnonce", c.Cnonce, true)
	}
	if c.Opaque != "" {
		put("opaque", c.Opaque, true)
	}
	if c.QOP != "" {
		put("qop", c.QOP, true)
	}
	if c.NCPresent {
		put("nc", c.ncText(), false)
	}
	if c.Userhash {
		put("userhash", "true", false)
	}
	names := make([]string, 0, len(c.Params))
	for k := range c.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		put(k, c.Params[k], true)
	}
	return b.String()
}

// ncText returns the nc digits the response is computed over: as sent,
// or formatted from NC when c was built by hand.
func (c *Credentials) ncText() string {
	if len(c.NCHex) == 8 {
		return c.NCHex
	}
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[7-i] = digits[c.NC>>(4*uint(i))&0xf]
	}
	return string(b[:])
}

// authzQuote returns s as an RFC 3261 quoted-string.
func authzQuote(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return `"` + s + `"`
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// ParseAuthorization parses one Authorization header value: Digest
// credentials (RFC 7616, RFC 8760) or Bearer credentials (RFC 6750,
// RFC 8898).
//
// It is tolerant where deployed clients differ from the RFCs: any case in
// the scheme and parameter names; spaces, tabs and CRLF-folded whitespace
// around '=' and ','; empty list elements and a trailing comma; unquoted
// values where the RFC wants quotes (any run without ',', whitespace,
// quotes or control characters, such as uri=sip:example.com); quoted
// values where it wants tokens (algorithm="SHA-256", qop="auth").
//
// It is strict where leniency would be dangerous: duplicate parameter
// names are refused (which copy wins would differ between checks); nc must
// be exactly 8 hex digits; control characters, invalid UTF-8, more than 32
// parameters, a Digest value over 8 KiB, a parameter over 1 KiB and a
// Bearer value over 16 KiB are refused; username, realm, nonce, uri and
// response are required.
//
// Errors match ErrMalformedAuthorization (and ErrAuthorizationTooLarge
// for the caps) or ErrUnsupportedAuthScheme; their text never contains
// the value.
func ParseAuthorization(value string) (*Credentials, error) {
	if len(value) > MaxBearerAuthorizationLen {
		return nil, errAuthzTooLong
	}
	i := authzSkipLWS(value, 0)
	start := i
	for i < len(value) && authzIsToken(value[i]) {
		i++
	}
	scheme := value[start:i]
	if scheme == "" {
		if authzSkipLWS(value, i) == len(value) {
			return nil, errAuthzEmpty
		}
		return nil, errAuthzName
	}
	var bearer bool
	switch {
	case strings.EqualFold(scheme, SchemeDigest):
		if len(value) > MaxDigestAuthorizationLen {
			return nil, errAuthzTooLong
		}
	case strings.EqualFold(scheme, SchemeBearer):
		bearer = true
	default:
		return nil, ErrUnsupportedAuthScheme
	}
	// Checked after the scheme so the size error is the one reported for
	// oversize values; one pass over at most 16 KiB.
	if !utf8.ValidString(value) {
		return nil, errAuthzBadUTF8
	}
	j := authzSkipLWS(value, i)
	if j == len(value) {
		if bearer {
			return nil, errAuthzBearerMissing
		}
		return nil, errAuthzNoParams
	}
	if j == i {
		return nil, errAuthzNoSpace
	}
	if bearer {
		return authzParseBearer(value, j)
	}
	return authzParseDigest(value, j)
}

// authzParseBearer reads "token68 [LWS]" from s[i:] (RFC 6750 section 2.1).
func authzParseBearer(s string, i int) (*Credentials, error) {
	start := i
	for i < len(s) && authzIsToken68(s[i]) {
		i++
	}
	for i < len(s) && s[i] == '=' {
		i++
	}
	tok := s[start:i]
	if tok == "" || tok[0] == '=' || authzSkipLWS(s, i) != len(s) {
		return nil, errAuthzToken68
	}
	return &Credentials{Scheme: SchemeBearer, Token: tok}, nil
}

// Bits of seen for the known Digest parameters (duplicate detection).
const (
	authzSeenUsername = 1 << iota
	authzSeenRealm
	authzSeenNonce
	authzSeenURI
	authzSeenResponse
	authzSeenAlgorithm
	authzSeenCnonce
	authzSeenOpaque
	authzSeenQOP
	authzSeenNC
	authzSeenUserhash
)

// authzParseDigest reads the Digest parameter list from s[i:].
func authzParseDigest(s string, i int) (*Credentials, error) {
	c := &Credentials{Scheme: SchemeDigest, Algorithm: string(identity.MD5)}
	var seen uint32
	n := 0
	for {
		// Empty list elements (",,", a leading or trailing comma) are
		// allowed, as in the #rule of RFC 7230 section 7.
		for i < len(s) && s[i] == ',' {
			i = authzSkipLWS(s, i+1)
		}
		if i == len(s) {
			break
		}
		start := i
		for i < len(s) && authzIsToken(s[i]) {
			i++
		}
		if i == start {
			return nil, errAuthzName
		}
		name := s[start:i]
		i = authzSkipLWS(s, i)
		if i == len(s) || s[i] != '=' {
			return nil, errAuthzEqual
		}
		i = authzSkipLWS(s, i+1)
		var val string
		var err error
		val, i, err = authzReadValue(s, i)
		if err != nil {
			return nil, err
		}
		if len(val) > MaxAuthParamLen {
			return nil, errAuthzParamTooLong
		}
		i = authzSkipLWS(s, i)
		if i < len(s) && s[i] != ',' {
			return nil, errAuthzComma
		}
		if n++; n > authzMaxParams {
			return nil, errAuthzTooMany
		}
		if err := c.set(name, val, &seen); err != nil {
			return nil, err
		}
	}
	if seen == 0 && len(c.Params) == 0 {
		return nil, errAuthzNoParams
	}
	const required = authzSeenUsername | authzSeenRealm | authzSeenNonce | authzSeenURI | authzSeenResponse
	if seen&required != required {
		if !(seen&(required&^authzSeenUsername) == required&^authzSeenUsername && c.Params["username*"] != "") {
			return nil, errAuthzMissing
		}
	}
	return c, nil
}

// set stores one parameter, refusing a name seen before.
func (c *Credentials) set(name, val string, seen *uint32) error {
	var bit uint32
	var dst *string
	switch {
	case strings.EqualFold(name, "username"):
		bit, dst = authzSeenUsername, &c.Username
	case strings.EqualFold(name, "realm"):
		bit, dst = authzSeenRealm, &c.Realm
	case strings.EqualFold(name, "nonce"):
		bit, dst = authzSeenNonce, &c.Nonce
	case strings.EqualFold(name, "uri"):
		bit, dst = authzSeenURI, &c.URI
	case strings.EqualFold(name, "response"):
		bit, dst = authzSeenResponse, &c.Response
	case strings.EqualFold(name, "cnonce"):
		bit, dst = authzSeenCnonce, &c.Cnonce
	case strings.EqualFold(name, "opaque"):
		bit, dst = authzSeenOpaque, &c.Opaque
	case strings.EqualFold(name, "qop"):
		bit, dst = authzSeenQOP, &c.QOP
	case strings.EqualFold(name, "algorithm"):
		bit = authzSeenAlgorithm
	case strings.EqualFold(name, "nc"):
		bit = authzSeenNC
	case strings.EqualFold(name, "userhash"):
		bit = authzSeenUserhash
	}
	if bit == 0 {
		key := strings.ToLower(name)
		if _, dup := c.Params[key]; dup {
			return errAuthzDuplicate
		}
		if c.Params == nil {
			c.Params = make(map[string]string, 2)
		}
		c.Params[key] = val
		return nil
	}
	if *seen&bit != 0 {
		return errAuthzDuplicate
	}
	*seen |= bit
	switch bit {
	case authzSeenAlgorithm:
		c.Algorithm = authzCanonicalAlgorithm(val)
		c.AlgorithmPresent = true
	case authzSeenNC:
		nc, ok := authzParseNC(val)
		if !ok {
			return errAuthzNC
		}
		c.NC, c.NCPresent, c.NCHex = nc, true, val
	case authzSeenUserhash:
		switch {
		case strings.EqualFold(val, "true"):
			c.Userhash = true
		case strings.EqualFold(val, "false"):
		default:
			return errAuthzUserhash
		}
	default:
		*dst = val
	}
	return nil
}

// authzAlgorithms are the algorithm spellings of RFC 7616 section 6.1.
var authzAlgorithms = []string{
	"MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess",
}

// authzCanonicalAlgorithm maps a case-insensitive algorithm name to its
// registered spelling; unknown names are returned as sent.
func authzCanonicalAlgorithm(v string) string {
	for _, a := range authzAlgorithms {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	return v
}

// authzParseNC reads exactly 8 hex digits (RFC 7616 section 3.4: nc-value =
// 8LHEX; upper case tolerated).
func authzParseNC(v string) (uint32, bool) {
	if len(v) != 8 {
		return 0, false
	}
	var n uint32
	for i := 0; i < 8; i++ {
		d := authzHexVal(v[i])
		if d < 0 {
			return 0, false
		}
		n = n<<4 | uint32(d)
	}
	return n, true
}

func authzHexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// authzReadValue reads a quoted-string or an unquoted value at s[i:] and
// returns it with the index after it.
func authzReadValue(s string, i int) (string, int, error) {
	if i == len(s) {
		return "", i, errAuthzValue
	}
	if s[i] == '"' {
		return authzReadQuoted(s, i)
	}
	start := i
	for i < len(s) {
		c := s[i]
		if c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			break
		}
		if c == '"' || authzIsCtl(c) {
			return "", i, errAuthzCtl
		}
		i++
	}
	if i == start {
		return "", i, errAuthzValue
	}
	return s[start:i], i, nil
}

// authzReadQuoted reads the quoted-string starting at s[i] == '"' (RFC 3261
// section 25.1). Backslash escapes any character but CR, LF and other
// controls; controls other than tab are refused inside and out of escapes
// so no value can smuggle a line break into a log or a header.
func authzReadQuoted(s string, i int) (string, int, error) {
	i++
	start := i
	var b []byte // nil until the first escape: most values need no copy
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			if b == nil {
				return s[start:i], i + 1, nil
			}
			return string(b), i + 1, nil
		case c == '\\':
			if i+1 == len(s) {
				return "", i, errAuthzQuote
			}
			e := s[i+1]
			if authzIsCtl(e) {
				return "", i, errAuthzCtl
			}
			if b == nil {
				if i-start >= MaxAuthParamLen {
					return "", i, errAuthzParamTooLong
				}
				// Bounded: a hostile header cannot make each of its
				// parameters allocate the rest of the value.
				b = make([]byte, 0, min(len(s)-start, MaxAuthParamLen))
				b = append(b, s[start:i]...)
			}
			if len(b) >= MaxAuthParamLen {
				return "", i, errAuthzParamTooLong
			}
			b = append(b, e)
			i += 2
		case authzIsCtl(c):
			return "", i, errAuthzCtl
		default:
			if b != nil {
				if len(b) >= MaxAuthParamLen {
					return "", i, errAuthzParamTooLong
				}
				b = append(b, c)
			}
			i++
		}
	}
	return "", i, errAuthzQuote
}

// authzSkipLWS skips SP, HTAB and line folds (CRLF or LF followed by SP or
// HTAB) from s[i:] and returns the next index. A line break not followed
// by whitespace is not skipped, so the caller sees it and refuses it.
func authzSkipLWS(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t':
			i++
		case '\r':
			if i+2 < len(s) && s[i+1] == '\n' && (s[i+2] == ' ' || s[i+2] == '\t') {
				i += 3
				continue
			}
			return i
		case '\n':
			if i+1 < len(s) && (s[i+1] == ' ' || s[i+1] == '\t') {
				i += 2
				continue
			}
			return i
		default:
			return i
		}
	}
	return i
}

// authzIsCtl reports ASCII controls except HTAB, and DEL.
func authzIsCtl(c byte) bool { return (c < 0x20 && c != '\t') || c == 0x7f }

// authzTokenChars is the token alphabet of RFC 3261 section 25.1.
var authzTokenChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-.!%*_+`'~" {
		t[c] = true
	}
	return t
}()

func authzIsToken(c byte) bool { return authzTokenChars[c] }

// authzIsToken68 reports the token68 alphabet of RFC 7235 section 2.1
// without the trailing '=' padding.
func authzIsToken68(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}
