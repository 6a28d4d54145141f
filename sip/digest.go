package sip

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"

	"github.com/rvoip/users-core/identity"
)

// DigestChallenge returns the value of one WWW-Authenticate header:
//
//	Digest realm="example.com", nonce="...", algorithm=SHA-256, qop="auth"
//
// followed by `, stale=true` when stale. It carries no opaque (the nonce
// is self-authenticating) and offers only qop="auth", written without
// spaces inside the quotes because some client parsers (icholy/digest, so
// sipgo's client) do not trim them.
//
// realm must pass ValidateRealm; callers pass configured domains, which
// they validate once at startup. As a last line of defence, characters
// that could break out of the quoted-string or the header line (", \, CR,
// LF and other controls) are dropped here rather than written: a client
// then fails to authenticate, but nothing is injected. alg should be one
// of identity.DigestAlgorithms.
func DigestChallenge(realm, nonce string, alg identity.DigestAlgorithm, stale bool) string {
	realm, nonce = digestQuotedSafe(realm), digestQuotedSafe(nonce)
	algTok := string(alg)
	if _, err := identity.DigestHash(alg); err != nil {
		algTok = digestTokenOnly(algTok)
	}
	var b strings.Builder
	b.Grow(64 + len(realm) + len(nonce))
	b.WriteString(`Digest realm="`)
	b.WriteString(realm)
	b.WriteString(`", nonce="`)
	b.WriteString(nonce)
	b.WriteString(`"`)
	if algTok != "" {
		b.WriteString(`, algorithm=`)
		b.WriteString(algTok)
	}
	b.WriteString(`, qop="auth"`)
	if stale {
		b.WriteString(`, stale=true`)
	}
	return b.String()
}

// errDigestRealm is the error of ValidateRealm.
var errDigestRealm = errors.New(`sip: a realm must be non-empty UTF-8 of at most 255 bytes without '"', '\', CR, LF or other control characters`)

// ValidateRealm reports whether realm can be written into a Digest
// challenge as is (see DigestChallenge). Check configured domains with it
// at startup.
func ValidateRealm(realm string) error {
	if realm == "" || len(realm) > 255 || !utf8.ValidString(realm) || digestQuotedSafe(realm) != realm {
		return errDigestRealm
	}
	return nil
}

// digestQuotedSafe drops the bytes that may not appear unescaped in a
// quoted-string on one header line.
func digestQuotedSafe(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c < 0x20 || c == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c == '"' || c == '\\' || c < 0x20 || c == 0x7f) {
			b = append(b, c)
		}
	}
	return string(b)
}

// digestTokenOnly keeps the RFC 3261 token characters of s.
func digestTokenOnly(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if authzIsToken(s[i]) {
			b = append(b, s[i])
		}
	}
	return string(b)
}

// digestHexLen returns the length in hex of a hash of alg, or 0.
func digestHexLen(alg identity.DigestAlgorithm) int {
	switch alg {
	case identity.MD5:
		return 2 * md5.Size
	case identity.SHA256, identity.SHA512256:
		return 2 * sha256.Size
	}
	return 0
}

// digestSumHex writes the lowercase hex hash of data under alg to dst (at
// least 64 bytes) and returns its length, 0 for an unknown algorithm. The
// fixed-size sums keep the verification path free of allocations.
func digestSumHex(alg identity.DigestAlgorithm, dst, data []byte) int {
	switch alg {
	case identity.MD5:
		s := md5.Sum(data)
		return hex.Encode(dst, s[:])
	case identity.SHA256:
		s := sha256.Sum256(data)
		return hex.Encode(dst, s[:])
	case identity.SHA512256:
		// FIPS 180-4 SHA-512/256, not SHA-512 truncated (RFC 7616 3.2).
		s := sha512.Sum512_256(data)
		return hex.Encode(dst, s[:])
	}
	return 0
}

// digestResponse writes the response of RFC 7616 section 3.4.1 for
// qop=auth into dst and returns its length (0 for an unknown algorithm).
func digestResponse(dst []byte, alg identity.DigestAlgorithm, ha1, nonce, nc, cnonce, qop, method, uri string) int {
	var buf [512]byte
	var ha2 [64]byte
	b := append(buf[:0], method...)
	b = append(b, ':')
	b = append(b, uri...)
	n := digestSumHex(alg, ha2[:], b)
	if n == 0 {
		return 0
	}
	b = append(b[:0], ha1...)
	for _, s := range [...]string{nonce, nc, cnonce, qop} {
		b = append(b, ':')
		b = append(b, s...)
	}
	b = append(b, ':')
	b = append(b, ha2[:n]...)
	return digestSumHex(alg, dst, b)
}

// DigestResponse returns the lowercase hex request-digest of RFC 7616
// section 3.4.1 with qop=auth: H(HA1:nonce:nc:cnonce:qop:H(method:uri)).
// ha1 is the stored lowercase hex HA1 for the user, realm and alg; nc is
// the 8 hex digits as the client sent them. It returns "" for an algorithm
// other than MD5, SHA-256 and SHA-512-256.
func DigestResponse(alg identity.DigestAlgorithm, ha1, nonce, nc, cnonce, qop, method, uri string) string {
	var out [64]byte
	n := digestResponse(out[:], alg, ha1, nonce, nc, cnonce, qop, method, uri)
	return string(out[:n])
}

// VerifyDigest reports whether c carries the right response for ha1 (the
// stored HA1 for c.Username, the realm and c's algorithm) and method.
//
// It refuses, without hashing, what users-core never offers: an
// algorithm other than MD5, SHA-256 and SHA-512-256 (so -sess variants),
// userhash, and any qop but "auth" (a missing qop is the RFC 2069
// compatibility mode, which has no cnonce or nc, so no replay protection;
// auth-int is never offered). nc and cnonce are required.
//
// It checks the response only. The caller must also check, before
// trusting it: the realm is ours, the nonce is authentic and fresh for
// this realm and algorithm (NonceKeeper.Check), nc is new
// (NonceCounter.Use, after this returns true, and across nodes
// NonceCountStore.UseNonceCount), and the digest uri matches
// the Request-URI (DigestURIMatches).
func VerifyDigest(c *Credentials, ha1, method string) bool {
	if c == nil || c.Scheme != SchemeDigest || c.Userhash {
		return false
	}
	alg, ok := c.SupportedAlgorithm()
	if !ok {
		return false
	}
	size := digestHexLen(alg)
	if !strings.EqualFold(c.QOP, "auth") || !c.NCPresent || c.Cnonce == "" ||
		len(c.Response) != size || len(ha1) != size {
		return false
	}
	var want, got [64]byte
	digestResponse(want[:], alg, ha1, c.Nonce, c.ncText(), c.Cnonce, c.QOP, method, c.URI)
	// Clients may send upper-case hex; fold it so the comparison is on
	// one spelling.
	for i := 0; i < size; i++ {
		ch := c.Response[i]
		if 'A' <= ch && ch <= 'F' {
			ch += 'a' - 'A'
		}
		got[i] = ch
	}
	// Constant time: this path is reachable unauthenticated, and an early
	// exit would tell an attacker how many leading characters are right.
	return subtle.ConstantTimeCompare(want[:size], got[:size]) == 1
}

// DigestURIMatches reports whether the digest-uri of Digest credentials
// names the same resource as the Request-URI: same scheme (sip or sips),
// same user after percent-decoding (case-sensitive, RFC 3261 19.1.4), same
// host (case-insensitive; IP addresses compared as addresses, IPv6 in
// brackets) and same port, an absent port being 5060 for sip and 5061 for
// sips. URI parameters, headers and a password are ignored: sipgo's
// client, among others, sends the Request-URI without them
// (sip:host;transport=tcp is answered with uri="sip:host").
//
// Checking it keeps an Authorization captured for one request from
// authenticating a request to another resource. Anything that does not
// parse, or is not a sip/sips URI, does not match.
func DigestURIMatches(digestURI string, requestURI sip.Uri) bool {
	if digestURI == "" || len(digestURI) > MaxAuthParamLen {
		return false
	}
	var d sip.Uri
	if err := sip.ParseUri(digestURI, &d); err != nil {
		return false
	}
	a, ok := digestCanonURI(&d)
	if !ok {
		return false
	}
	b, ok := digestCanonURI(&requestURI)
	return ok && a == b
}

// digestURIKey is the part of a SIP URI that DigestURIMatches compares.
type digestURIKey struct {
	scheme, user, host string
	port               int
}

func digestCanonURI(u *sip.Uri) (digestURIKey, bool) {
	var k digestURIKey
	switch strings.ToLower(u.Scheme) {
	case "", "sip":
		k.scheme, k.port = "sip", 5060
	case "sips":
		k.scheme, k.port = "sips", 5061
	default:
		return k, false
	}
	if u.Wildcard || u.Raw() != "" {
		return k, false
	}
	user, ok := unescapePercent(u.User)
	if !ok {
		return k, false
	}
	k.user = user
	if k.host, ok = digestCanonHost(u.Host); !ok {
		return k, false
	}
	switch {
	case u.Port < 0 || u.Port > 65535:
		return k, false
	case u.Port > 0:
		k.port = u.Port
	}
	return k, true
}

// digestCanonHost is canonicalHost for a digest-uri host, which may also
// end in a root dot.
func digestCanonHost(h string) (string, bool) {
	if len(h) > 255 {
		return "", false
	}
	return canonicalHost(strings.TrimSuffix(h, "."))
}

// SplitDigestUsername returns the user of a Digest username, which
// clients send either as "user" or as "user@domain". The domain form is
// accepted only when domain is one of ours (case-insensitive); a username
// naming another domain, an empty user or more than one '@' is refused.
//
// Note: the client hashed the username exactly as sent into HA1, so a
// "user@domain" username verifies only against an HA1 derived for that
// string.
func SplitDigestUsername(username string, domains []string) (string, bool) {
	at := strings.LastIndexByte(username, '@')
	if at < 0 {
		return username, username != ""
	}
	user, domain := username[:at], username[at+1:]
	if user == "" || strings.IndexByte(user, '@') >= 0 {
		return "", false
	}
	for _, d := range domains {
		if strings.EqualFold(d, domain) {
			return user, true
		}
	}
	return "", false
}
