package jwks

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Verifier defaults and limits.
const (
	// DefaultLeeway is the clock-skew allowance on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway is the largest leeway NewVerifier accepts: more would keep
	// expired tokens alive noticeably.
	MaxLeeway = 60 * time.Second
	// DefaultMaxTokenSize bounds a token in bytes, checked before parsing.
	DefaultMaxTokenSize = 8192
	// DefaultTokenType is the header typ of access tokens (RFC 9068).
	DefaultTokenType = "at+jwt"
	// maxKIDLen bounds the kid before it reaches a key source (a cache key,
	// a log line).
	maxKIDLen = 128
)

var (
	// ErrUnknownKey is what a KeySource returns (possibly wrapped) when it
	// has no key with the requested kid.
	ErrUnknownKey = errors.New("jwks: unknown key id")
	// ErrKeysUnavailable is what a KeySource returns (possibly wrapped) when
	// it cannot tell which keys are valid, e.g. a remote JWKS that was never
	// fetched successfully.
	ErrKeysUnavailable = errors.New("jwks: signing keys unavailable")
)

// KeySource finds an issuer's verification key by kid. The algorithm comes
// with the key, so a token can never choose how it is verified. Key returns
// an error matching ErrUnknownKey when the kid is not known; any other error
// means the source cannot answer now. Implementations must be safe for
// concurrent use. Keyring and RemoteKeySource implement it.
type KeySource interface {
	Key(ctx context.Context, kid string) (key crypto.PublicKey, alg string, err error)
}

// Reason is the stable, loggable kind of a token rejection (a metrics label,
// not a message for clients).
type Reason string

// Rejection reasons, one per check of Verify.
const (
	ReasonTooLarge       Reason = "too_large"        // longer than MaxTokenSize
	ReasonMalformed      Reason = "malformed"        // not a JWS compact serialization with JSON objects
	ReasonNotAccessToken Reason = "not_access_token" // an opaque token (refresh token, API key)
	ReasonAlgorithm      Reason = "algorithm"        // alg not RS256, or not the key's algorithm
	ReasonNoKID          Reason = "no_kid"           // header without kid
	ReasonBadKID         Reason = "bad_kid"          // kid with characters outside [A-Za-z0-9_=+-] or too long
	ReasonType           Reason = "type"             // header typ not allowed
	ReasonIssuer         Reason = "issuer"           // iss not a configured issuer
	ReasonUnknownKey     Reason = "unknown_key"      // the issuer has no key with this kid
	ReasonSignature      Reason = "signature"        // signature does not verify
	ReasonAudience       Reason = "audience"         // aud lacks the issuer's audience
	ReasonNoExpiry       Reason = "no_expiry"        // no exp claim
	ReasonExpired        Reason = "expired"          // exp passed, beyond leeway
	ReasonNotYetValid    Reason = "not_yet_valid"    // nbf in the future, beyond leeway
	ReasonIssuedInFuture Reason = "issued_in_future" // iat in the future, beyond leeway
	ReasonUnavailable    Reason = "unavailable"      // the key source could not answer
)

// VerifyError is the error of every rejected token. Reason says which check
// failed; Err carries detail for logs (never send it to clients: say
// invalid_token).
type VerifyError struct {
	Reason Reason
	Err    error
}

// Error names the reason, then the detail.
func (e *VerifyError) Error() string {
	if e.Err == nil {
		return "jwks: token rejected: " + string(e.Reason)
	}
	return "jwks: token rejected: " + string(e.Reason) + ": " + e.Err.Error()
}

// Unwrap returns the detail, so errors.Is finds ErrUnknownKey and
// ErrKeysUnavailable through a VerifyError.
func (e *VerifyError) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of a *VerifyError in err's chain, or "".
func ReasonOf(err error) Reason {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return ""
}

func reject(r Reason, format string, args ...any) *VerifyError {
	return &VerifyError{Reason: r, Err: fmt.Errorf(format, args...)}
}

// IssuerConfig is one trusted token issuer.
type IssuerConfig struct {
	// Name labels the issuer in Claims.IssuerName and logs (default Issuer).
	Name string
	// Issuer is the exact iss value.
	Issuer string
	// Audience must be a member of the token's aud.
	Audience string
	// Keys finds the issuer's verification keys.
	Keys KeySource
	// TokenTypes lists the allowed header typ values (default
	// ["at+jwt"]). Comparison ignores case and an "application/" prefix
	// (RFC 7515 section 4.1.9). Include "" to accept tokens without typ.
	TokenTypes []string
}

// VerifierConfig configures NewVerifier.
type VerifierConfig struct {
	Issuers []IssuerConfig
	// Leeway absorbs clock skew on exp, nbf and iat (default
	// DefaultLeeway; more than MaxLeeway is an error).
	Leeway time.Duration
	// MaxTokenSize bounds the token in bytes (default DefaultMaxTokenSize).
	MaxTokenSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// CacheSize bounds the cache of verified tokens (default
	// DefaultCacheSize; negative turns it off). See Verify.
	CacheSize int
}

// Verifier checks RS256 access tokens from a fixed set of issuers. It is
// safe for concurrent use.
type Verifier struct {
	issuers map[string]*issuer
	leeway  time.Duration
	maxSize int
	now     func() time.Time
	cache   *verifiedCache // nil when off
}

type issuer struct {
	cfg   IssuerConfig
	types map[string]bool // normalized typ values
}

// NewVerifier checks cfg and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	v := &Verifier{
		issuers: map[string]*issuer{},
		leeway:  cmp.Or(cfg.Leeway, DefaultLeeway),
		maxSize: cmp.Or(cfg.MaxTokenSize, DefaultMaxTokenSize),
		now:     orNow(cfg.Now),
	}
	if cfg.CacheSize >= 0 {
		v.cache = newVerifiedCache(cmp.Or(cfg.CacheSize, DefaultCacheSize))
	}
	if v.leeway < 0 || v.leeway > MaxLeeway {
		return nil, fmt.Errorf("jwks.NewVerifier: leeway %v outside [0, %v]", v.leeway, MaxLeeway)
	}
	if v.maxSize < 0 {
		return nil, errors.New("jwks.NewVerifier: negative MaxTokenSize")
	}
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("jwks.NewVerifier: no issuers")
	}
	for _, ic := range cfg.Issuers {
		switch {
		case ic.Issuer == "":
			return nil, errors.New("jwks.NewVerifier: issuer without Issuer")
		case ic.Audience == "":
			return nil, fmt.Errorf("jwks.NewVerifier: issuer %s: Audience is required", ic.Issuer)
		case ic.Keys == nil:
			return nil, fmt.Errorf("jwks.NewVerifier: issuer %s: Keys is required", ic.Issuer)
		case v.issuers[ic.Issuer] != nil:
			return nil, fmt.Errorf("jwks.NewVerifier: issuer %s configured twice", ic.Issuer)
		}
		ic.Name = cmp.Or(ic.Name, ic.Issuer)
		if ic.TokenTypes == nil {
			ic.TokenTypes = []string{DefaultTokenType}
		}
		iss := &issuer{cfg: ic, types: map[string]bool{}}
		for _, t := range ic.TokenTypes {
			iss.types[normalizeTyp(t)] = true
		}
		v.issuers[ic.Issuer] = iss
	}
	return v, nil
}

// Claims are the verified claims of an access token.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	ExpiresAt time.Time
	NotBefore time.Time // zero when absent
	IssuedAt  time.Time // zero when absent
	ID        string    // jti
	Username  string
	Scope     string // space-separated
	Roles     []string
	// IssuerName is the Name of the IssuerConfig that matched.
	IssuerName string
	// Raw is the whole payload as encoding/json decodes it (numbers are
	// float64).
	Raw map[string]any
}

// HasScope reports whether s is one of the space-separated scopes.
func (c *Claims) HasScope(s string) bool {
	for f := range strings.FieldsSeq(c.Scope) {
		if f == s {
			return true
		}
	}
	return false
}

// b64s decodes JOSE segments strictly: no padding, no stray bits, so one
// token has exactly one encoding.
var b64s = b64.Strict()

// Verify checks token and returns its claims, or a *VerifyError. The order
// is: size; structure and header (alg, kid, typ) without any lookup; the
// issuer named by the unverified payload, only to pick its key source; the
// key, whose algorithm must be RS256 and equal the header's; the signature;
// and only then the claims (exp, nbf, iat, aud).
//
// A token that verified is remembered (up to CacheSize tokens, keyed by its
// SHA-256): presented again, it costs a hash, a map lookup and a key
// lookup instead of an RSA verification. A remembered token passes only
// while its key is still the one its issuer's KeySource returns for its
// kid and its exp, nbf and iat still hold; otherwise it is verified in
// full again. The Claims returned for it share Raw, Audience and Roles
// with earlier results: callers must not modify them.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if len(token) > v.maxSize {
		// Checked before anything else so a huge token costs nothing.
		return nil, reject(ReasonTooLarge, "%d bytes, limit %d", len(token), v.maxSize)
	}
	if v.cache == nil {
		c, _, err := v.verify(ctx, token)
		return c, err
	}
	sum := sha256.Sum256([]byte(token))
	if e := v.cache.get(sum); e != nil {
		if key, _, err := e.iss.cfg.Keys.Key(ctx, e.kid); err == nil && e.key.Equal(key) && v.stillValid(e.claims, v.now()) {
			c := *e.claims
			return &c, nil
		}
		v.cache.drop(sum)
	}
	c, e, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	v.cache.put(sum, e)
	cp := *c
	return &cp, nil
}

// verify is Verify without the cache: every check, in order. It returns
// the claims and what the cache needs to re-check them.
func (v *Verifier) verify(ctx context.Context, token string) (*Claims, *verifiedEntry, error) {
	if token == "" {
		return nil, nil, reject(ReasonMalformed, "empty token")
	}
	if strings.HasPrefix(token, "rt_") || strings.IndexByte(token, '.') < 0 {
		return nil, nil, reject(ReasonNotAccessToken, "an opaque token (such as a refresh token) is not an access token")
	}
	hSeg, rest, _ := strings.Cut(token, ".")
	// An empty signature passes this point so that alg "none" is reported
	// as what it is.
	pSeg, sSeg, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sSeg, '.') >= 0 || hSeg == "" || pSeg == "" {
		return nil, nil, reject(ReasonMalformed, "not three dot-separated parts")
	}
	signingInput := token[:len(hSeg)+1+len(pSeg)]

	hdr, err := decodeObject(hSeg)
	if err != nil {
		return nil, nil, reject(ReasonMalformed, "header: %v", err)
	}
	alg, err := stringMember(hdr, "alg")
	if err != nil {
		return nil, nil, reject(ReasonMalformed, "header: %v", err)
	}
	// Only RS256: "none", HMAC (whose secret an attacker would take from our
	// public key) and every other algorithm are refused before any lookup.
	if alg != AlgRS256 {
		return nil, nil, reject(ReasonAlgorithm, "alg %q is not allowed", clip(alg))
	}
	if _, ok := hdr["crit"]; ok {
		return nil, nil, reject(ReasonMalformed, "header: crit extensions are not supported")
	}
	kid, err := stringMember(hdr, "kid")
	if err != nil {
		return nil, nil, reject(ReasonMalformed, "header: %v", err)
	}
	if kid == "" {
		return nil, nil, reject(ReasonNoKID, "header has no kid")
	}
	// The kid reaches key sources, caches and logs: restrict it first.
	if !validKID(kid) {
		return nil, nil, reject(ReasonBadKID, "kid has characters outside [A-Za-z0-9_=+-] or is longer than %d", maxKIDLen)
	}
	typ, err := stringMember(hdr, "typ")
	if err != nil {
		return nil, nil, reject(ReasonMalformed, "header: %v", err)
	}
	sig, err := b64s.DecodeString(sSeg)
	if err != nil {
		return nil, nil, reject(ReasonMalformed, "signature is not base64url")
	}
	payload, err := decodeObject(pSeg)
	if err != nil {
		return nil, nil, reject(ReasonMalformed, "payload: %v", err)
	}

	// The unverified iss only selects whose keys to try; the signature
	// check below is what makes it true.
	issName, _ := payload["iss"].(string)
	iss := v.issuers[issName]
	if iss == nil {
		return nil, nil, reject(ReasonIssuer, "iss %q is not a trusted issuer", clip(issName))
	}
	// Only the issuer's configured types: an ID token or other JWT of the
	// same issuer must not pass as an access token.
	if !iss.types[normalizeTyp(typ)] {
		return nil, nil, reject(ReasonType, "typ %q is not allowed for issuer %s", clip(typ), iss.cfg.Name)
	}

	key, keyAlg, err := iss.cfg.Keys.Key(ctx, kid)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) {
			return nil, nil, &VerifyError{Reason: ReasonUnknownKey, Err: fmt.Errorf("kid %s of issuer %s: %w", kid, iss.cfg.Name, err)}
		}
		return nil, nil, &VerifyError{Reason: ReasonUnavailable, Err: fmt.Errorf("keys of issuer %s: %w", iss.cfg.Name, err)}
	}
	pub, ok := key.(*rsa.PublicKey)
	if !ok || keyAlg != AlgRS256 || alg != keyAlg {
		return nil, nil, reject(ReasonAlgorithm, "key %s is %T for %q, token says %q", kid, key, keyAlg, alg)
	}
	if pub.N.BitLen() < MinRSABits {
		return nil, nil, reject(ReasonAlgorithm, "key %s has only %d bits", kid, pub.N.BitLen())
	}
	sum := sha256.Sum256([]byte(signingInput))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return nil, nil, reject(ReasonSignature, "signature does not verify with key %s", kid)
	}

	c, err := v.checkClaims(iss, payload)
	if err != nil {
		return nil, nil, err
	}
	return c, &verifiedEntry{claims: c, iss: iss, kid: kid, key: pub}, nil
}

// checkClaims validates the time and audience claims of a payload whose
// signature verified, and builds the Claims.
func (v *Verifier) checkClaims(iss *issuer, p map[string]any) (*Claims, error) {
	c := &Claims{Issuer: iss.cfg.Issuer, IssuerName: iss.cfg.Name, Raw: p}
	now := v.now()
	rawExp, ok := p["exp"]
	if !ok {
		return nil, reject(ReasonNoExpiry, "no exp claim")
	}
	var err error
	if c.ExpiresAt, err = numericDate(rawExp); err != nil {
		return nil, reject(ReasonMalformed, "exp: %v", err)
	}
	if !now.Before(c.ExpiresAt.Add(v.leeway)) {
		return nil, reject(ReasonExpired, "expired at %s", c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if raw, ok := p["nbf"]; ok {
		if c.NotBefore, err = numericDate(raw); err != nil {
			return nil, reject(ReasonMalformed, "nbf: %v", err)
		}
		if c.NotBefore.After(now.Add(v.leeway)) {
			return nil, reject(ReasonNotYetValid, "not valid before %s", c.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	if raw, ok := p["iat"]; ok {
		if c.IssuedAt, err = numericDate(raw); err != nil {
			return nil, reject(ReasonMalformed, "iat: %v", err)
		}
		if c.IssuedAt.After(now.Add(v.leeway)) {
			return nil, reject(ReasonIssuedInFuture, "issued at %s, in the future", c.IssuedAt.UTC().Format(time.RFC3339))
		}
	}
	if c.Audience, ok = stringList(p["aud"]); !ok {
		return nil, reject(ReasonAudience, "aud is missing or not a string or array of strings")
	}
	found := false
	for _, a := range c.Audience {
		if a == iss.cfg.Audience {
			found = true
			break
		}
	}
	if !found {
		return nil, reject(ReasonAudience, "aud does not include %q", iss.cfg.Audience)
	}
	for _, m := range [...]struct {
		name string
		dst  *string
	}{{"sub", &c.Subject}, {"jti", &c.ID}, {"username", &c.Username}} {
		if raw, ok := p[m.name]; ok {
			s, ok := raw.(string)
			if !ok {
				return nil, reject(ReasonMalformed, "%s is not a string", m.name)
			}
			*m.dst = s
		}
	}
	if raw, ok := p["scope"]; ok {
		list, ok := stringList(raw)
		if !ok {
			return nil, reject(ReasonMalformed, "scope is not a string or array of strings")
		}
		c.Scope = strings.Join(list, " ")
	}
	if raw, ok := p["roles"]; ok {
		if c.Roles, ok = stringList(raw); !ok {
			return nil, reject(ReasonMalformed, "roles is not a string or array of strings")
		}
	}
	return c, nil
}

// decodeObject decodes a base64url segment holding one JSON object. Member
// names are matched exactly (a map, not struct fields, which Go would match
// case-insensitively); json.Unmarshal refuses trailing data.
func decodeObject(seg string) (map[string]any, error) {
	raw, err := b64s.DecodeString(seg)
	if err != nil {
		return nil, errors.New("not base64url")
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// stringMember returns m[name] as a string ("" when absent).
func stringMember(m map[string]any, name string) (string, error) {
	raw, ok := m[name]
	if !ok {
		return "", nil
	}
	s, ok := raw.(string)
	if !ok {
		return "", fmt.Errorf("%s is not a string", name)
	}
	return s, nil
}

// stringList accepts a string or an array of strings (aud, scope, roles).
func stringList(raw any) ([]string, bool) {
	switch x := raw.(type) {
	case string:
		return []string{x}, true
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out[i] = s
		}
		return out, true
	}
	return nil, false
}

// orNow returns now, or time.Now when it is nil.
func orNow(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

// maxNumericDate is 9999-12-31T23:59:59Z: beyond it a date is nonsense and
// would overflow time arithmetic.
const maxNumericDate = 253402300799

// numericDate decodes a JWT NumericDate (seconds since the epoch, possibly
// fractional; float64 holds whole seconds exactly up to 2^53).
func numericDate(raw any) (time.Time, error) {
	f, ok := raw.(float64)
	if !ok {
		return time.Time{}, errors.New("not a number")
	}
	if math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, errors.New("out of range")
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)), nil
}

// validKID reports whether kid is 1 to maxKIDLen characters of
// [A-Za-z0-9_=+-] (base64, base64url, hex and UUIDs fit).
func validKID(kid string) bool {
	if len(kid) == 0 || len(kid) > maxKIDLen {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '=', c == '+':
		default:
			return false
		}
	}
	return true
}

// normalizeTyp lowercases a typ and drops an "application/" prefix.
func normalizeTyp(t string) string {
	t = strings.ToLower(t)
	return strings.TrimPrefix(t, "application/")
}

// clip shortens attacker-controlled strings quoted in error messages.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
