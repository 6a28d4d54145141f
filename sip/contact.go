package sip

import (
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// This file turns a REGISTER parsed by sipgo into registrar input
// (RegisterRequest), refusing what must be refused before any
// authentication work: broken mandatory headers, Require with unknown
// option tags (RFC 3261 section 8.2.2.3) and malformed Contact, Expires and
// Path values (RFC 3261 sections 10.2 and 10.3 steps 6 and 7). sipgo leaves
// header parameters untrimmed and case-preserved and URI user parts
// percent-encoded; everything here works on normalised values.

// SupportedOptions are the option tags the registrar understands, in the
// order to list them in a Supported or Unsupported header: Path (RFC 3327)
// and Outbound (RFC 5626).
var SupportedOptions = []string{"path", "outbound"}

// Bounds on one REGISTER, so a single request cannot make the registrar or
// the store do unbounded work.
const (
	// MaxContactsPerRequest is the largest number of Contact values (after
	// splitting comma lists) one REGISTER may carry; more is a 400.
	MaxContactsPerRequest = 32
	// MaxPathEntries is the largest number of Path values (RFC 3327) one
	// REGISTER may carry; more is a 400.
	MaxPathEntries = 32
	// maxInstanceLen bounds a +sip.instance value (a urn:uuid is 47 bytes
	// with its angle brackets).
	maxInstanceLen = 256
	// maxAoRUserLen bounds the decoded To user part.
	maxAoRUserLen = 256
	// maxUserAgentLen bounds the stored User-Agent; longer values are cut.
	maxUserAgentLen = 256
	// maxDelta is the largest expires value kept; RFC 3261 allows up to
	// 2**32-1, every larger or equal value is clamped here (and shortened to
	// Policy.MaxExpires anyway) so the value fits an int on every platform.
	maxDelta = math.MaxInt32
)

// RegisterRequest is the registrar's view of one REGISTER: every value it
// needs, normalised. ParseRegister builds it.
type RegisterRequest struct {
	// AoR is the canonical address-of-record from the To URI (RFC 3261
	// section 10.3 step 5): "sip:" + AoRUser + "@" + AoRDomain. URI
	// parameters (user=phone included), URI headers, any password and the
	// port are dropped, and a sips: To maps to the same sip: AoR: the AoR
	// names a user of a domain, and one user must have one set of bindings
	// whichever scheme or port the client put in To.
	AoR string
	// AoRUser is the To user part, percent-decoded (case kept: user parts
	// are case-sensitive, RFC 3261 section 19.1.4).
	AoRUser string
	// AoRDomain is the To host, lower-cased; an IPv6 address keeps its
	// brackets and is written in canonical form (RFC 5952).
	AoRDomain string
	// Contacts are the Contact values in request order; empty for a fetch
	// and for Contact: *.
	Contacts []ContactSpec
	// Wildcard is true for "Contact: *" (RFC 3261 section 10.2.2); it is
	// only ever set together with an expiration of 0.
	Wildcard bool
	// ExpiresHeader is the Expires header value in seconds, or -1 when
	// absent.
	ExpiresHeader int
	CallID        string
	CSeq          uint32
	// Path holds every Path header value (RFC 3327) in order, one element
	// per entry of comma-separated lists, each a trimmed name-addr.
	Path []string
	// Supported and Require are the option tags of those headers,
	// lower-cased, in order (Supported also read from its compact form k).
	Supported []string
	Require   []string
	// UserAgent is the User-Agent header value, cut to 256 bytes.
	UserAgent string
}

// ContactSpec is one Contact value of a REGISTER.
type ContactSpec struct {
	// URI is the contact URI as text, URI parameters and URI headers kept
	// (parameter names and values trimmed), header parameters dropped.
	URI string
	// Key is the canonical form of URI for the comparison of RFC 3261
	// section 19.1.4: scheme, percent-decoded userinfo, lower-cased host
	// (canonical IPv6), the port with the scheme's default made explicit
	// (5061 for sips: and transport=tls, else 5060), then the parameters
	// transport, user, ttl, method and maddr when present, names and
	// values lower-cased, sorted by name. Other URI parameters and URI
	// headers do not take part. Making the default port explicit departs
	// from 19.1.4 (which says an omitted port does not match an explicit
	// 5060) on purpose: both reach the same UA, and one binding is better
	// than two that refresh separately.
	Key string
	// Expires is the expires parameter in seconds, or -1 when absent.
	Expires int
	// Q is the q parameter times 1000 (0..1000), or -1 when absent.
	Q int
	// Instance is the +sip.instance value (RFC 5626) without its double
	// quotes, the angle brackets kept ("<urn:uuid:...>"), or "".
	Instance string
	// RegID is the reg-id parameter (RFC 5626), or 0 when absent. A
	// reg-id without +sip.instance is validated and then ignored (0), as
	// RFC 5626 section 6 asks.
	RegID int
}

// RegisterError is a parseRefusal of a REGISTER: the response status, its
// reason phrase, and any header the response must carry (Unsupported on a
// 420, Min-Expires on a 423). Reason phrases are fixed strings chosen
// here, never request content. It implements error so it can travel
// through BindingStore.UpdateBindings.
type RegisterError struct {
	Status int
	Reason string
	// Header maps header names to values to add to the response; nil when
	// there are none.
	Header map[string]string
}

// Error returns the status and reason, e.g. "400 Out-of-order CSeq".
func (e *RegisterError) Error() string {
	return strconv.Itoa(e.Status) + " " + e.ReasonPhrase()
}

// ReasonPhrase returns the reason phrase for the status line: Reason, or
// the RFC 3261 phrase of Status when Reason is empty.
func (e *RegisterError) ReasonPhrase() string {
	if e.Reason != "" {
		return e.Reason
	}
	return defaultReason(e.Status)
}

// Headers returns Header as name/value pairs sorted by name, so responses
// are built in a stable order.
func (e *RegisterError) Headers() [][2]string {
	if len(e.Header) == 0 {
		return nil
	}
	out := make([][2]string, 0, len(e.Header))
	for k, v := range e.Header {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func defaultReason(status int) string {
	switch status {
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 420:
		return "Bad Extension"
	case 423:
		return "Interval Too Brief"
	case 500:
		return "Server Internal Error"
	}
	return "Error"
}

func badRequest(reason string) *RegisterError {
	return &RegisterError{Status: 400, Reason: reason}
}

// ParseRegister reads a REGISTER parsed by sipgo into a RegisterRequest,
// or returns the parseRefusal to send before any authentication work:
//   - 400 for a missing or unparseable Call-ID, CSeq, From or To, a CSeq
//     method other than REGISTER, a To that is not a sip: or sips: URI with
//     a user part (RFC 3261 section 10.2: the AoR is a SIP or SIPS URI);
//   - 400 for a Require or Supported option tag that is not a token;
//   - 420 Bad Extension with Unsupported listing the Require option tags
//     not in SupportedOptions (RFC 3261 sections 8.2.2.3 and 10.3 step 2);
//   - 400 for a malformed Expires header (more than one, or not a
//     non-negative integer), a Contact that is not a sip: or sips: URI or
//     whose expires, q, reg-id or +sip.instance parameter is malformed,
//     "Contact: *" together with other Contacts or with an expiration
//     other than 0 (RFC 3261 section 10.3 step 6), more than
//     MaxContactsPerRequest Contacts, a malformed Path, or a User-Agent
//     holding control characters.
//
// The checks run in that order, so the status of a request with several
// faults is stable. Header parameter names are trimmed and lower-cased and
// values trimmed before use, since sipgo keeps them as written. sipgo ends
// header lines at CRLF only, so a bare CR or LF can sit inside a value:
// every value this returns (stored in bindings or echoed in responses) is
// free of control characters.
func ParseRegister(req *sip.Request) (*RegisterRequest, *RegisterError) {
	if req == nil {
		return nil, badRequest("Malformed request")
	}
	rr := &RegisterRequest{ExpiresHeader: -1}
	var hs registerHeaders
	hs.collect(req)

	callID := req.CallID()
	if callID == nil || callID.Value() == "" || !isWord(callID.Value()) {
		return nil, badRequest("Missing or malformed Call-ID")
	}
	rr.CallID = callID.Value()

	cseq := req.CSeq()
	if cseq == nil {
		return nil, badRequest("Missing or malformed CSeq")
	}
	// Methods are case-sensitive (RFC 3261 section 7.1) and the CSeq method
	// must match the request's (section 8.1.1.5).
	if m := strings.TrimSpace(string(cseq.MethodName)); m != string(sip.REGISTER) || req.Method != sip.REGISTER {
		return nil, badRequest("CSeq method is not REGISTER")
	}
	rr.CSeq = cseq.SeqNo

	if req.From() == nil {
		return nil, badRequest("Missing or malformed From")
	}
	to := req.To()
	if to == nil {
		return nil, badRequest("Missing or malformed To")
	}
	if rerr := parseAoR(&to.Address, rr); rerr != nil {
		return nil, rerr
	}

	// RFC 3261 section 8.2.2.3, step 2 of section 10.3. The tags are
	// echoed in Unsupported, so they must be tokens.
	var ok bool
	if rr.Require, ok = optionTags(hs.require); !ok {
		return nil, badRequest("Malformed Require")
	}
	if unsupported := unsupportedTags(hs.require); len(unsupported) > 0 {
		return nil, &RegisterError{
			Status: 420,
			Reason: "Bad Extension",
			Header: map[string]string{"Unsupported": strings.Join(unsupported, ", ")},
		}
	}
	if rr.Supported, ok = optionTags(hs.supported); !ok {
		return nil, badRequest("Malformed Supported")
	}

	if hs.expiresCount > 1 {
		return nil, badRequest("Malformed Expires")
	}
	if hs.expires != nil {
		n, ok := parseDelta(strings.TrimSpace(hs.expires.Value()))
		if !ok {
			return nil, badRequest("Malformed Expires")
		}
		rr.ExpiresHeader = n
	}

	if rerr := parseContacts(hs.contacts, hs.contactCount, rr); rerr != nil {
		return nil, rerr
	}

	path, ok := parsePath(hs.path)
	if !ok {
		return nil, badRequest("Malformed Path")
	}
	rr.Path = path

	if hs.userAgent != nil {
		ua := strings.TrimSpace(hs.userAgent.Value())
		if hasCTL(ua) {
			return nil, badRequest("Malformed User-Agent")
		}
		rr.UserAgent = truncateUTF8(ua, maxUserAgentLen)
	}
	return rr, nil
}

// registerHeaders are the headers ParseRegister reads that sipgo has no
// accessor for, collected in one pass: sipgo's GetHeaders lower-cases every
// header name of the message on every call, which is most of the cost of
// reading a REGISTER.
type registerHeaders struct {
	contacts     []*sip.ContactHeader // the first MaxContactsPerRequest
	contactCount int
	expires      sip.Header // the first
	expiresCount int
	require      []sip.Header
	supported    []sip.Header // Supported and its compact form k
	path         []sip.Header
	userAgent    sip.Header // the first
}

func (hs *registerHeaders) collect(req *sip.Request) {
	for _, h := range req.Headers() {
		if c, ok := h.(*sip.ContactHeader); ok {
			hs.contactCount++
			if len(hs.contacts) < MaxContactsPerRequest {
				hs.contacts = append(hs.contacts, c)
			}
			continue
		}
		switch n := h.Name(); {
		case strings.EqualFold(n, "Expires"):
			hs.expiresCount++
			if hs.expires == nil {
				hs.expires = h
			}
		case strings.EqualFold(n, "Require"):
			hs.require = append(hs.require, h)
		case strings.EqualFold(n, "Supported"), strings.EqualFold(n, "k"):
			hs.supported = append(hs.supported, h)
		case strings.EqualFold(n, "Path"):
			hs.path = append(hs.path, h)
		case strings.EqualFold(n, "User-Agent"):
			if hs.userAgent == nil {
				hs.userAgent = h
			}
		}
	}
}

// parseAoR fills rr's AoR fields from the To URI (RFC 3261 section 10.3
// step 5): URI parameters dropped, user unescaped, host lower-cased.
func parseAoR(u *sip.Uri, rr *RegisterRequest) *RegisterError {
	if u.Scheme != "sip" && u.Scheme != "sips" {
		return badRequest("To is not a SIP or SIPS URI")
	}
	if u.User == "" {
		return badRequest("To has no user part")
	}
	user, ok := unescapePercent(u.User)
	if !ok || len(user) > maxAoRUserLen || !validAoRUser(user) {
		return badRequest("Malformed To user")
	}
	host, ok := canonicalHost(u.Host)
	if !ok {
		return badRequest("Malformed To host")
	}
	rr.AoRUser = user
	rr.AoRDomain = host
	rr.AoR = "sip:" + user + "@" + host
	return nil
}

// validAoRUser refuses decoded user parts that would make the AoR ambiguous
// or unsafe to print: controls, whitespace, '@', angle brackets, quotes and
// backslashes.
func validAoRUser(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f || strings.IndexByte(`@<>"\`, c) >= 0 {
			return false
		}
	}
	return true
}

// optionTags returns the comma-separated option tags of hs, trimmed and
// lower-cased: option
// tags are tokens, and tokens compare case-insensitively (RFC 3261 section
// 7.3.1). A tag that is not a token makes it return false.
func optionTags(hs []sip.Header) ([]string, bool) {
	var tags []string
	for _, h := range hs {
		for _, t := range strings.Split(h.Value(), ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if !isToken(t) {
				return nil, false
			}
			tags = append(tags, strings.ToLower(t))
		}
	}
	return tags, true
}

// isToken reports whether s is an RFC 3261 token (section 25.1).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlphanumeric(c) && strings.IndexByte("-.!%*_+`'~", c) < 0 {
			return false
		}
	}
	return s != ""
}

// isWord reports whether s is made of RFC 3261 word characters (section
// 25.1), as a Call-ID is (callid = word ["@" word]); '@' is one of them
// here.
func isWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlphanumeric(c) && strings.IndexByte("-.!%*_+`'~()<>:\\\"/[]?{}@", c) < 0 {
			return false
		}
	}
	return true
}

// hasCTL reports whether s holds a control character other than HTAB.
// sipgo splits lines on CRLF only, so a bare LF or CR can survive inside a
// header value; nothing holding one may be stored or echoed.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

// unsupportedTags lists the option tags of the Require headers hs that are
// not in SupportedOptions, as
// the client spelled them, each once (RFC 3261 section 8.2.2.3: list
// "those options it does not understand amongst those in the Require
// header field").
func unsupportedTags(hs []sip.Header) []string {
	var out []string
	for _, h := range hs {
		for _, t := range strings.Split(h.Value(), ",") {
			t = strings.TrimSpace(t)
			if t == "" || isSupportedOption(t) {
				continue
			}
			dup := false
			for _, o := range out {
				if strings.EqualFold(o, t) {
					dup = true
					break
				}
			}
			if !dup {
				out = append(out, t)
			}
		}
	}
	return out
}

func isSupportedOption(tag string) bool {
	for _, s := range SupportedOptions {
		if strings.EqualFold(s, tag) {
			return true
		}
	}
	return false
}

// parseContacts reads every Contact value (sipgo splits comma lists and
// reads the compact form m) and applies the Contact: * rules of RFC 3261
// section 10.3 step 6. count is the number of Contact values in the
// request, of which hs holds the first ones.
func parseContacts(hs []*sip.ContactHeader, count int, rr *RegisterRequest) *RegisterError {
	if count > MaxContactsPerRequest {
		return badRequest("Too many Contacts in request")
	}
	wildcards := 0
	wildcardExpires := -1
	if len(hs) > 0 {
		rr.Contacts = make([]ContactSpec, 0, len(hs))
	}
	for _, ch := range hs {
		params := normalizeParams(ch.Params)
		if ch.Address.Wildcard {
			wildcards++
			// "*" has no parameters in the grammar; an expires on it is
			// read as the expiration it asks for.
			if v, ok := params.get("expires"); ok {
				n, ok := parseDelta(v)
				if !ok {
					return badRequest("Malformed Contact parameter")
				}
				wildcardExpires = n
			}
			continue
		}
		spec, rerr := parseContact(&ch.Address, params)
		if rerr != nil {
			return rerr
		}
		rr.Contacts = append(rr.Contacts, spec)
	}
	if wildcards == 0 {
		return nil
	}
	// RFC 3261 section 10.3 step 6: "*" is only valid alone and with an
	// expiration of zero; with neither an Expires header nor an expires
	// parameter the expiration would be the default, not zero.
	zero := (rr.ExpiresHeader == 0 || wildcardExpires == 0) &&
		rr.ExpiresHeader <= 0 && wildcardExpires <= 0
	if wildcards > 1 || len(rr.Contacts) > 0 || !zero {
		return badRequest("Contact: * only alone with Expires: 0")
	}
	rr.Wildcard = true
	return nil
}

// parseContact validates one non-wildcard Contact and its parameters.
func parseContact(u *sip.Uri, params normParams) (ContactSpec, *RegisterError) {
	spec := ContactSpec{Expires: -1, Q: -1}
	if u.Scheme != "sip" && u.Scheme != "sips" {
		return spec, badRequest("Contact is not a SIP or SIPS URI")
	}
	uri, key, ok := contactURI(u)
	if !ok {
		return spec, badRequest("Malformed Contact")
	}
	spec.URI, spec.Key = uri, key

	// A parameter given twice is refused. sipgo already keeps only the last
	// value of an exactly repeated name, so this catches repeats spelled
	// differently ("expires" and "Expires").
	seen := 0
	const (
		seenExpires = 1 << iota
		seenQ
		seenRegID
		seenInstance
	)
	once := func(bit int) bool {
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	}
	regID := 0
	for _, p := range params {
		var ok bool
		switch p.k {
		case "expires":
			ok = once(seenExpires)
			if ok {
				spec.Expires, ok = parseDelta(p.v)
			}
		case "q":
			ok = once(seenQ)
			if ok {
				spec.Q, ok = parseQ(p.v)
			}
		case "reg-id":
			ok = once(seenRegID)
			if ok {
				regID, ok = parseRegID(p.v)
			}
		case "+sip.instance":
			ok = once(seenInstance)
			if ok {
				spec.Instance, ok = parseInstance(p.v)
			}
		default:
			ok = true
		}
		if !ok {
			return spec, badRequest("Malformed Contact parameter")
		}
	}
	// RFC 5626 section 6: a reg-id without +sip.instance is ignored.
	if spec.Instance != "" {
		spec.RegID = regID
	}
	return spec, nil
}

// normParam is one header parameter with its name trimmed and lower-cased
// and its value trimmed.
type normParam struct{ k, v string }

type normParams []normParam

func (ps normParams) get(k string) (string, bool) {
	for _, p := range ps {
		if p.k == k {
			return p.v, true
		}
	}
	return "", false
}

// normalizeParams trims and lower-cases sipgo's raw header parameter names
// and trims the values; empty names (a stray ";" or " ") are skipped.
func normalizeParams(hp sip.HeaderParams) normParams {
	if len(hp) == 0 {
		return nil
	}
	out := make(normParams, 0, len(hp))
	for _, kv := range hp {
		k := strings.ToLower(strings.TrimSpace(kv.K))
		if k == "" {
			continue
		}
		out = append(out, normParam{k: k, v: strings.TrimSpace(kv.V)})
	}
	return out
}

// parseDelta reads delta-seconds (RFC 3261 section 25.1: 1*DIGIT), with
// values above maxDelta clamped to it.
func parseDelta(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n <= maxDelta {
			n = n*10 + int(c-'0')
		}
	}
	if n > maxDelta {
		n = maxDelta
	}
	return n, true
}

// parseQ reads a qvalue (RFC 3261 section 25.1: "0" ["." 0*3DIGIT] /
// "1" ["." 0*3("0")]) as thousandths.
func parseQ(s string) (int, bool) {
	if s == "" || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	whole := int(s[0]-'0') * 1000
	rest := s[1:]
	if rest == "" {
		return whole, true
	}
	if rest[0] != '.' || len(rest) > 4 {
		return 0, false
	}
	frac := 0
	scale := 100
	for i := 1; i < len(rest); i++ {
		c := rest[i]
		if c < '0' || c > '9' || (whole == 1000 && c != '0') {
			return 0, false
		}
		frac += int(c-'0') * scale
		scale /= 10
	}
	return whole + frac, true
}

// parseRegID reads a reg-id (RFC 5626 section 4.2: 1*DIGIT, 1 to 2**31-1).
func parseRegID(s string) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > math.MaxInt32 {
		return 0, false
	}
	return n, true
}

// parseInstance reads a +sip.instance value: RFC 5626 section 4.1 writes it
// DQUOTE "<" instance-val ">" DQUOTE. The quotes are removed; a value
// clients send unquoted is taken as is. A lone quote (also what sipgo
// leaves when a quoted value holds a ';'), an inner quote, whitespace or
// controls are refused.
func parseInstance(s string) (string, bool) {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "" || len(s) > maxInstanceLen {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f || c == '"' || c == '\\' {
			return "", false
		}
	}
	return s, true
}

// Character sets of RFC 3261 section 25.1, without '%' (escapes are
// handled separately).
const (
	unreservedMarks = "-_.!~*'()"
	userExtra       = "&=+$,;?/"                          // user-unreserved
	passwordExtra   = "&=+$,"                             // password
	paramExtra      = "[]/:&+$"                           // param-unreserved
	headerExtra     = "[]/?:+$"                           // hnv-unreserved
	keyParams       = "|transport|user|ttl|method|maddr|" // RFC 3261 section 19.1.4
)

func isAlphanumeric(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// validChars reports whether s consists of alphanumerics, marks, extra and
// well-formed %HH escapes.
func validChars(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlphanumeric(c), strings.IndexByte(unreservedMarks, c) >= 0, strings.IndexByte(extra, c) >= 0:
		case c == '%':
			if i+2 >= len(s) || !isHexDigit(s[i+1]) || !isHexDigit(s[i+2]) {
				return false
			}
			i += 2
		default:
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexValue(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// unescapePercent decodes %HH escapes; a malformed escape is refused.
func unescapePercent(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || !isHexDigit(s[i+1]) || !isHexDigit(s[i+2]) {
				return "", false
			}
			c = hexValue(s[i+1])<<4 | hexValue(s[i+2])
			i += 2
		}
		b = append(b, c)
	}
	return string(b), true
}

// canonEscape decodes s and escapes again, as upper-case %HH, exactly the
// bytes outside the allowed set: every spelling of one value yields one
// string (RFC 3261 section 19.1.4: characters other than those in the
// reserved set are equivalent to their escaped form).
func canonEscape(s, extra string) (string, bool) {
	d, ok := unescapePercent(s)
	if !ok {
		return "", false
	}
	clean := true
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !isAlphanumeric(c) && strings.IndexByte(unreservedMarks, c) < 0 && strings.IndexByte(extra, c) < 0 {
			clean = false
			break
		}
	}
	if clean {
		return d, true
	}
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(d); i++ {
		c := d[i]
		if isAlphanumeric(c) || strings.IndexByte(unreservedMarks, c) >= 0 || strings.IndexByte(extra, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdig[c>>4])
		b.WriteByte(hexdig[c&15])
	}
	return b.String(), true
}

// canonicalHost validates a URI host and returns it lower-cased; an IPv6
// reference keeps its brackets and is rewritten in canonical form.
func canonicalHost(h string) (string, bool) {
	if h == "" {
		return "", false
	}
	if h[0] == '[' {
		if len(h) < 3 || h[len(h)-1] != ']' {
			return "", false
		}
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", false
		}
		return "[" + a.String() + "]", true
	}
	lower := true
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_':
		case 'A' <= c && c <= 'Z':
			lower = false
		default:
			return "", false
		}
	}
	if lower {
		return h, true
	}
	return strings.ToLower(h), true
}

// contactURI renders a Contact URI as text (what the UA registered, with
// parameters trimmed) and computes its comparison key (see
// ContactSpec.Key). It refuses URIs whose parts hold characters the
// RFC 3261 grammar does not allow there, so the text is safe to echo.
func contactURI(u *sip.Uri) (text, key string, ok bool) {
	if u.HierarhicalSlashes || (u.User == "" && u.Password != "") {
		return "", "", false
	}
	if !validChars(u.User, userExtra) || !validChars(u.Password, passwordExtra) {
		return "", "", false
	}
	host, ok := canonicalHost(u.Host)
	if !ok || u.Port < 0 || u.Port > 65535 {
		return "", "", false
	}

	var t, k strings.Builder
	var num [8]byte
	t.Grow(64)
	k.Grow(64)
	t.WriteString(u.Scheme)
	t.WriteByte(':')
	k.WriteString(u.Scheme)
	k.WriteByte(':')
	if u.User != "" {
		user, ok := canonEscape(u.User, userExtra)
		if !ok {
			return "", "", false
		}
		t.WriteString(u.User)
		k.WriteString(user)
		if u.Password != "" {
			pw, ok := canonEscape(u.Password, passwordExtra)
			if !ok {
				return "", "", false
			}
			t.WriteByte(':')
			t.WriteString(u.Password)
			k.WriteByte(':')
			k.WriteString(pw)
		}
		t.WriteByte('@')
		k.WriteByte('@')
	}
	t.WriteString(u.Host)
	k.WriteString(host)
	if u.Port > 0 {
		t.WriteByte(':')
		t.Write(strconv.AppendInt(num[:0], int64(u.Port), 10))
	}

	var kp []string
	transport := ""
	for _, kv := range u.UriParams {
		name := strings.TrimSpace(kv.K)
		val := strings.TrimSpace(kv.V)
		if name == "" || !validChars(name, paramExtra) || !validChars(val, paramExtra) {
			return "", "", false
		}
		t.WriteByte(';')
		t.WriteString(name)
		if val != "" {
			t.WriteByte('=')
			t.WriteString(val)
		}
		lname := strings.ToLower(name)
		if !strings.Contains(keyParams, "|"+lname+"|") {
			continue
		}
		cv, ok := canonEscape(val, paramExtra)
		if !ok {
			return "", "", false
		}
		cv = strings.ToLower(cv)
		if lname == "transport" {
			transport = cv
		}
		kp = append(kp, lname+"="+cv)
	}
	for i, kv := range u.Headers {
		name := strings.TrimSpace(kv.K)
		val := strings.TrimSpace(kv.V)
		if name == "" || !validChars(name, headerExtra) || !validChars(val, headerExtra) {
			return "", "", false
		}
		if i == 0 {
			t.WriteByte('?')
		} else {
			t.WriteByte('&')
		}
		t.WriteString(name)
		t.WriteByte('=')
		t.WriteString(val)
	}

	port := u.Port
	if port == 0 {
		port = 5060
		if u.Scheme == "sips" || transport == "tls" {
			port = 5061
		}
	}
	k.WriteByte(':')
	k.Write(strconv.AppendInt(num[:0], int64(port), 10))
	sort.Strings(kp)
	for _, p := range kp {
		k.WriteByte(';')
		k.WriteString(p)
	}
	return t.String(), k.String(), true
}

// parsePath returns every value of the Path headers hs (RFC 3327 section
// 4: Path = "Path" HCOLON path-value *(COMMA path-value), path-value =
// name-addr *(SEMI rr-param)) in order. Each entry must hold a sip: or
// sips: URI in angle brackets.
func parsePath(hs []sip.Header) ([]string, bool) {
	if len(hs) == 0 {
		return nil, true
	}
	var out []string
	for _, h := range hs {
		parts, ok := splitList(h.Value())
		if !ok {
			return nil, false
		}
		for _, p := range parts {
			if hasCTL(p) || !validPathEntry(p) {
				return nil, false
			}
			if len(out) == MaxPathEntries {
				return nil, false
			}
			out = append(out, p)
		}
	}
	return out, true
}

// splitList splits a header value at the commas that separate list
// elements: not those inside <...> or a quoted string (RFC 3261 section
// 7.3.1). Elements are trimmed; empty ones are skipped. Unbalanced brackets
// or quotes are refused.
func splitList(s string) ([]string, bool) {
	var out []string
	start := 0
	inAngle, inQuote := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
		case c == '"':
			inQuote = true
		case c == '<':
			if inAngle {
				return nil, false
			}
			inAngle = true
		case c == '>':
			if !inAngle {
				return nil, false
			}
			inAngle = false
		case c == ',' && !inAngle:
			if e := strings.TrimSpace(s[start:i]); e != "" {
				out = append(out, e)
			}
			start = i + 1
		}
	}
	if inAngle || inQuote {
		return nil, false
	}
	if e := strings.TrimSpace(s[start:]); e != "" {
		out = append(out, e)
	}
	return out, true
}

// validPathEntry checks that a Path element is a name-addr around a sip: or
// sips: URI.
func validPathEntry(e string) bool {
	open := strings.IndexByte(e, '<')
	end := strings.IndexByte(e, '>')
	if open < 0 || end < open+2 {
		return false
	}
	var u sip.Uri
	if err := sip.ParseUri(e[open+1:end], &u); err != nil {
		return false
	}
	if u.Scheme != "sip" && u.Scheme != "sips" {
		return false
	}
	_, ok := canonicalHost(u.Host)
	return ok
}

// truncateUTF8 cuts s to at most n bytes without splitting a UTF-8
// sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
