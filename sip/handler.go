package sip

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
)

// dummyHA1 is hashed against when there is no real HA1 (unknown, disabled
// or token-only user), so every failure costs the same work.
var dummyHA1 = strings.Repeat("0", 64)

// outcome is what one REGISTER came to, for the log line.
type outcome struct {
	user, aor, scheme, reason string
	status                    int
	authFailed                bool // credentials were presented and refused
}

// RegisterOutcome describes one answered REGISTER for observers.
type RegisterOutcome struct {
	Time      time.Time
	User      string // the user the credentials named, "" when none
	AoR       string
	Source    string // ip:port
	Transport string // UDP, TCP, TLS, WS, WSS
	Scheme    string // "digest", "bearer" or "" (no credentials)
	Status    int
	Reason    string
	// AuthFailed is true when credentials were presented and refused
	// (wrong password, unknown user, bad token, locked).
	AuthFailed bool
}

// HandleRegister answers one REGISTER: challenge, Digest or Bearer
// verification, AoR authorization and the registrar update (RFC 3261
// section 10.3). It is the sipgo handler; tests drive it with siptest.
func (s *Server) HandleRegister(req *sip.Request, tx sip.ServerTransaction) {
	res, out, counted := s.answerRegister(req, localAddr(tx))
	terminate := res.StatusCode == 401 // stateless nonces: a retransmission may get a fresh 401
	s.send(req, tx, res, terminate)
	if counted {
		s.reportOutcome(req, out)
	}
}

// answerRegister decides the answer to a REGISTER that arrived on our
// address local, under the in-flight bound and the REGISTER deadline.
// counted is false for the 503 of a full in-flight bound, which is not
// logged or reported per request.
func (s *Server) answerRegister(req *sip.Request, local string) (res *sip.Response, out outcome, counted bool) {
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", overloadRetryAfter))
		return res, out, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RegisterTimeout)
	defer cancel()
	res = s.register(ctx, req, local, &out)
	out.status = res.StatusCode
	return res, out, true
}

// reportOutcome logs one answered REGISTER and tells Config.Outcomes.
func (s *Server) reportOutcome(req *sip.Request, out outcome) {
	s.logOutcome(req, out)
	if s.cfg.Outcomes != nil {
		s.cfg.Outcomes(RegisterOutcome{Time: s.cfg.Now(), User: out.user, AoR: out.aor, Source: req.Source(),
			Transport: req.Transport(), Scheme: out.scheme, Status: out.status, Reason: out.reason, AuthFailed: out.authFailed})
	}
}

func (s *Server) send(req *sip.Request, tx sip.ServerTransaction, res *sip.Response, terminate bool) {
	if err := tx.Respond(res); err != nil {
		s.log.Warn().Err(err).Int("status", res.StatusCode).Str("source", req.Source()).Msg("sending response failed")
	}
	if terminate && req.Transport() == "UDP" {
		// Release the UDP transaction at once instead of holding ~4 KB
		// for Timer J (32 s): challenges are stateless.
		tx.Terminate()
	}
}

// register decides the answer to req, which arrived on our address local.
func (s *Server) register(ctx context.Context, req *sip.Request, local string, out *outcome) *sip.Response {
	rr, rerr := ParseRegister(req)
	if rerr != nil {
		out.reason = rerr.Reason
		return s.errorResponse(req, rerr)
	}
	realm := rr.AoRDomain
	// RFC 3261 10.3 step 5: the AoR must belong to the Request-URI's
	// domain, and that domain must be ours. Usernames are unique
	// regardless of case, so the AoR key is lower-cased: ALICE and alice
	// share one binding set.
	if !s.domains[realm] || !strings.EqualFold(strings.Trim(req.Recipient.Host, "[]"), strings.Trim(realm, "[]")) {
		out.aor = rr.AoR
		out.reason = "domain not served"
		return sip.NewResponseFromRequest(req, 404, "Not Found", nil)
	}
	rr.AoR = "sip:" + strings.ToLower(rr.AoRUser) + "@" + realm
	out.aor = rr.AoR
	addr := hostOf(req.Source())

	cred, present, err := s.credentialsFor(req, realm)
	if err != nil {
		out.reason = "malformed Authorization"
		return sip.NewResponseFromRequest(req, 400, "Bad Request", nil)
	}
	if !present {
		out.reason = "challenge"
		return s.challenge(req, realm, false, true)
	}
	var (
		userID, username string
		maxExpiresAt     time.Time
	)
	if cred.Scheme == "Bearer" {
		out.scheme = "bearer"
		res, claims := s.verifyBearer(ctx, req, realm, addr, cred, out)
		if res != nil {
			return res
		}
		userID, username = claims.userID, claims.username
		if !s.cfg.BindingsOutliveTokens {
			maxExpiresAt = claims.expires
		}
	} else {
		out.scheme = "digest"
		res, u := s.verifyDigest(ctx, req, realm, addr, cred, out)
		if res != nil {
			return res
		}
		userID, username = u.ID, u.Username
	}
	out.user = username
	// RFC 3261 10.3 step 4: the authenticated user may change only its
	// own AoR.
	if !strings.EqualFold(username, rr.AoRUser) {
		out.reason = "credentials for another AoR"
		return sip.NewResponseFromRequest(req, 403, "Forbidden", nil)
	}
	return s.apply(ctx, req, rr, local, userID, maxExpiresAt, out)
}

// credentialsFor picks the credentials for realm: a Bearer token, else
// the Digest credentials whose realm is ours. Credentials for other realms
// are ignored (RFC 3261 22.4).
func (s *Server) credentialsFor(req *sip.Request, realm string) (*Credentials, bool, error) {
	var digest *Credentials
	for _, h := range req.GetHeaders("Authorization") {
		c, err := ParseAuthorization(h.Value())
		if errors.Is(err, ErrUnsupportedAuthScheme) {
			continue // Basic and the like: never accepted (RFC 3261 22.4), challenge instead
		}
		if err != nil {
			return nil, false, err
		}
		if c.Scheme == "Bearer" {
			return c, true, nil
		}
		if strings.EqualFold(c.Realm, realm) && digest == nil {
			digest = c
		}
	}
	return digest, digest != nil, nil
}

// verifyDigest checks Digest credentials. It returns the answer when they
// do not let the request through, else the user.
func (s *Server) verifyDigest(ctx context.Context, req *sip.Request, realm, addr string, c *Credentials, out *outcome) (*sip.Response, *identity.User) {
	alg, supported := c.SupportedAlgorithm()
	user, okName := SplitDigestUsername(c.Username, s.cfg.Domains)
	if !okName {
		user = c.Username
	}
	out.user = user
	// Throttle before any lookup or hashing.
	if err := s.cfg.Regulator.Check(ctx, user, addr); err != nil {
		return s.lockedResponse(ctx, req, err, out), nil
	}
	status := s.nonces.Check(c.Nonce, realm, alg)
	if !supported || status == NonceInvalid || !s.offered(realm, alg) {
		// A forged nonce, another realm's, or a downgrade to an algorithm
		// this nonce was not issued for.
		out.reason = "invalid nonce or algorithm"
		return s.challenge(req, realm, false, false), nil
	}
	if !DigestURIMatches(c.URI, req.Recipient) {
		out.reason = "digest uri does not match the Request-URI"
		return sip.NewResponseFromRequest(req, 400, "Bad Request", nil), nil
	}
	qualified := okName && user != c.Username
	u, ha1, ok, err := s.cfg.Credentials.DigestHA1(ctx, user, realm, alg, qualified)
	if err != nil {
		return s.storeFailure(ctx, req, err, out, "credential lookup"), nil
	}
	if !ok || !okName {
		ha1 = dummyHA1[:len(dummyHA1)-hexLenDiff(alg)]
	}
	verified := VerifyDigest(c, ha1, "REGISTER") && ok && okName
	if !verified {
		out.authFailed = true
		out.reason = "wrong credentials"
		if s.replay.FirstFailure(c.Nonce, c.Response, s.nonceExpiry(c.Nonce)) {
			if _, err := s.cfg.Regulator.Failure(ctx, user, addr); err != nil {
				s.log.Error().Err(err).Msg("recording a failed attempt")
			}
			s.log.Warn().Str("user", user).Str("source", addr).Str("transport", req.Transport()).
				Msgf("auth failure for user %q from %s", user, addr)
		}
		return s.challenge(req, realm, false, false), nil
	}
	if status == NonceStale {
		out.reason = "stale nonce"
		return s.challenge(req, realm, true, false), nil
	}
	if !s.replay.Use(c.Nonce, c.NC, s.nonceExpiry(c.Nonce)) {
		out.reason = "replayed nonce count"
		return s.challenge(req, realm, false, false), nil
	}
	if res := s.useSharedNonceCount(ctx, req, realm, c, out); res != nil {
		return res, nil
	}
	if err := s.cfg.Regulator.Success(ctx, user); err != nil && ctx.Err() == nil {
		// With the deadline gone the binding update answers 503 next and
		// the overload is logged there: an error line per REGISTER here
		// would only add noise.
		s.log.Error().Err(err).Msg("clearing failed attempts")
	}
	return nil, u
}

// hexLenDiff is how much shorter than 64 hex digits an HA1 of alg is.
func hexLenDiff(alg identity.DigestAlgorithm) int {
	if alg == identity.MD5 {
		return 64 - 32
	}
	return 0
}

func (s *Server) nonceExpiry(nonce string) time.Time {
	if t, ok := s.nonces.IssuedAt(nonce); ok {
		return t.Add(s.cfg.NonceLifetime)
	}
	return s.cfg.Now().Add(s.cfg.NonceLifetime)
}

// offered reports whether alg is enabled for realm at all (client rules
// only narrow the list).
func (s *Server) offered(realm string, alg identity.DigestAlgorithm) bool {
	for _, a := range s.algorithms(realm) {
		if a == alg {
			return true
		}
	}
	return false
}

func (s *Server) algorithms(realm string) []identity.DigestAlgorithm {
	if a, ok := s.cfg.DomainAlgorithms[realm]; ok && len(a) > 0 {
		return a
	}
	return s.cfg.Algorithms
}

// bearerIdentity is who a valid Bearer token speaks for.
type bearerIdentity struct {
	userID, username string
	expires          time.Time
}

// verifyBearer checks a Bearer token (RFC 8898). It returns the answer
// when the token does not let the request through.
func (s *Server) verifyBearer(ctx context.Context, req *sip.Request, realm, addr string, c *Credentials, out *outcome) (*sip.Response, bearerIdentity) {
	if err := s.cfg.Regulator.Check(ctx, "", addr); err != nil {
		return s.lockedResponse(ctx, req, err, out), bearerIdentity{}
	}
	if s.cfg.Verifier == nil {
		out.reason = "Bearer not configured"
		return s.bearerError(req, realm, "invalid_token", 401), bearerIdentity{}
	}
	claims, err := s.cfg.Verifier.Verify(ctx, c.Token)
	if err != nil {
		out.reason = "invalid token: " + string(jwks.ReasonOf(err))
		out.authFailed = true
		if jwks.ReasonOf(err) == jwks.ReasonUnavailable {
			res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
			res.AppendHeader(sip.NewHeader("Retry-After", "5"))
			return res, bearerIdentity{}
		}
		return s.bearerError(req, realm, "invalid_token", 401), bearerIdentity{}
	}
	if !claims.HasScope(identity.ScopeSIPRegister) {
		out.reason = "token lacks scope sip.register"
		return s.bearerError(req, realm, "insufficient_scope", 403), bearerIdentity{}
	}
	id := bearerIdentity{expires: claims.ExpiresAt}
	if claims.IssuerName == s.cfg.OwnIssuer && s.cfg.Users != nil {
		u, err := s.cfg.Users.User(ctx, claims.Subject)
		if err != nil && !errors.Is(err, identity.ErrNotFound) {
			return s.storeFailure(ctx, req, err, out, "user lookup"), bearerIdentity{}
		}
		if err != nil || !u.Active || u.ID != claims.Subject {
			out.reason = "token user unknown or disabled"
			return s.bearerError(req, realm, "invalid_token", 401), bearerIdentity{}
		}
		id.userID, id.username = u.ID, u.Username
	} else {
		for _, name := range s.cfg.UsernameClaims {
			if v, ok := claims.Raw[name].(string); ok && v != "" {
				id.username = v
				break
			}
		}
		if id.username == "" {
			out.reason = "token names no SIP user"
			return s.bearerError(req, realm, "invalid_token", 401), bearerIdentity{}
		}
		id.userID = claims.IssuerName + ":" + claims.Subject
	}
	out.user = id.username
	return nil, id
}

// bearerError answers an unusable token (RFC 6750 section 3).
func (s *Server) bearerError(req *sip.Request, realm, code string, status int) *sip.Response {
	reason := "Unauthorized"
	if status == 403 {
		reason = "Forbidden"
	}
	res := sip.NewResponseFromRequest(req, status, reason, nil)
	res.AppendHeader(sip.NewHeader("WWW-Authenticate", `Bearer realm="`+realm+`", error="`+code+`"`))
	return res
}

// lockedResponse answers a locked user or banned address, or a failed
// regulator check.
func (s *Server) lockedResponse(ctx context.Context, req *sip.Request, err error, out *outcome) *sip.Response {
	if identity.ErrorCode(err) != identity.CodeAccountLocked {
		return s.storeFailure(ctx, req, err, out, "regulator check")
	}
	out.reason = "locked"
	out.authFailed = true
	res := sip.NewResponseFromRequest(req, 403, "Forbidden", nil)
	if ra := identity.ErrorRetryAfter(err); ra > 0 {
		res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(int(ra.Seconds()))))
	}
	return res
}

// challenge builds the 401: one Digest challenge per algorithm for this
// client, then a Bearer challenge where enabled. initial is true for a
// REGISTER that carried no credentials.
func (s *Server) challenge(req *sip.Request, realm string, stale, initial bool) *sip.Response {
	algs := s.algorithms(realm)
	bearer := s.bearerOn[req.Transport()]
	if h := req.GetHeader("User-Agent"); h != nil {
		ua := h.Value()
		for _, r := range s.cfg.ClientRules {
			if r.UserAgent != nil && r.UserAgent.MatchString(ua) {
				if r.Algorithms != nil {
					algs = intersect(r.Algorithms, algs)
				}
				if r.Bearer != nil {
					bearer = bearer && *r.Bearer
				}
				break
			}
		}
	}
	if initial && len(algs) > 1 {
		if cid := req.CallID(); cid != nil && s.fallback.challenged(realm+"|"+cid.Value(), s.cfg.Now()) {
			// Challenged before and back without credentials: it could not
			// answer; offer the weakest first this time.
			algs = reversed(algs)
		}
	}
	res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
	for _, a := range algs {
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", DigestChallenge(realm, s.nonces.New(realm, a), a, stale)))
	}
	if bearer && s.cfg.Verifier != nil {
		v := `Bearer realm="` + realm + `", scope="` + identity.ScopeSIPRegister + `"`
		if s.cfg.AuthzServer != "" {
			v += `, authz_server="` + s.cfg.AuthzServer + `"`
		}
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", v))
	}
	return res
}

// intersect keeps the algorithms of want that are also in allowed, in
// want's order; when none remain, allowed is returned unchanged (a rule
// cannot enable what the domain disabled, nor leave no challenge).
func intersect(want, allowed []identity.DigestAlgorithm) []identity.DigestAlgorithm {
	var out []identity.DigestAlgorithm
	for _, w := range want {
		for _, a := range allowed {
			if w == a {
				out = append(out, w)
			}
		}
	}
	if len(out) == 0 {
		return allowed
	}
	return out
}

// errAbort carries a registrar refusal out of the store transaction.
var errAbort = errors.New("registrar refused the update")

// apply runs the registrar update and builds the 200.
func (s *Server) apply(ctx context.Context, req *sip.Request, rr *RegisterRequest, local, userID string, maxExpiresAt time.Time, out *outcome) *sip.Response {
	now := s.cfg.Now()
	var refused *RegisterError
	flow := Flow{Source: req.Source(), Transport: req.Transport(), LocalAddr: local, Node: s.cfg.Node}
	bs, err := s.cfg.Bindings.UpdateBindings(ctx, rr.AoR, now, func(cur []Binding) ([]Binding, error) {
		next, rerr := Apply(s.cfg.Policy, cur, Update{Req: rr, UserID: userID, Now: now, MaxExpiresAt: maxExpiresAt, Flow: flow, NewID: s.cfg.NewID})
		if rerr != nil {
			refused = rerr
			return nil, errAbort
		}
		return next, nil
	})
	if refused != nil {
		out.reason = refused.Reason
		return s.errorResponse(req, refused)
	}
	if err != nil {
		return s.storeFailure(ctx, req, err, out, "binding update")
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	for _, c := range OKContacts(bs, now) {
		v, err := FormatContact(c)
		if err != nil {
			continue
		}
		res.AppendHeader(sip.NewHeader("Contact", v))
	}
	if len(rr.Path) > 0 && hasTag(rr.Supported, "path") {
		for _, p := range rr.Path {
			res.AppendHeader(sip.NewHeader("Path", p))
		}
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(http.TimeFormat)))
	out.reason = "registered"
	return res
}

func hasTag(tags []string, t string) bool {
	for _, x := range tags {
		if x == t {
			return true
		}
	}
	return false
}

// localAddr is our address on the connection the request came in on.
func localAddr(tx sip.ServerTransaction) string {
	if stx, ok := tx.(*sip.ServerTx); ok {
		if c := stx.Connection(); c != nil && c.LocalAddr() != nil {
			return c.LocalAddr().String()
		}
	}
	return ""
}

// errorResponse turns a registrar refusal into its response.
func (s *Server) errorResponse(req *sip.Request, e *RegisterError) *sip.Response {
	res := sip.NewResponseFromRequest(req, e.Status, e.ReasonPhrase(), nil)
	for _, h := range e.Headers() {
		res.AppendHeader(sip.NewHeader(h[0], h[1]))
	}
	return res
}

// handleOptions answers OPTIONS pings.
func (s *Server) handleOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", "REGISTER, OPTIONS"))
	res.AppendHeader(sip.NewHeader("Supported", strings.Join(SupportedOptions, ", ")))
	s.send(req, tx, res, false)
}

// handleOther answers every other method: 405 with Allow (CANCEL: there is
// no transaction it could cancel).
func (s *Server) handleOther(req *sip.Request, tx sip.ServerTransaction) {
	if req.Method == sip.CANCEL {
		s.send(req, tx, sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil), false)
		return
	}
	res := sip.NewResponseFromRequest(req, 405, "Method Not Allowed", nil)
	res.AppendHeader(sip.NewHeader("Allow", "REGISTER, OPTIONS"))
	s.send(req, tx, res, false)
}

// logOutcome writes one structured line per REGISTER.
func (s *Server) logOutcome(req *sip.Request, out outcome) {
	ev := s.log.Info()
	if out.status >= 400 && out.status != 401 {
		ev = s.log.Warn()
	}
	ev.Str("event", "register").Str("user", out.user).Str("aor", out.aor).
		Str("source", req.Source()).Str("transport", req.Transport()).
		Str("scheme", out.scheme).Int("status", out.status).Str("reason", out.reason).Msg("REGISTER")
}
