// Package httpapi is the HTTP side-listener of users-core: login, token
// refresh and logout, JWKS and discovery, health. It turns identity errors
// into the JSON error contract {"error":{"code":"...","message":"..."}}
// with one table of statuses, and never sends internal detail.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 64 << 10

// TokenVerifier checks access tokens; *jwks.Verifier satisfies it.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*jwks.Claims, error)
}

// Config holds what the HTTP API needs.
type Config struct {
	Version string
	Started time.Time
	Now     func() time.Time // nil means time.Now
	Logger  zerolog.Logger

	Users    *identity.Service
	Tokens   *identity.Tokens
	Verifier TokenVerifier // access tokens for this API (audience rvoip-api)
	JWKS     http.Handler  // serves the JWKS document

	// Issuer is our token issuer; PublicURL is the base URL clients reach
	// this listener at (empty: taken from each request's Host).
	Issuer    string
	PublicURL string
	// CORSOrigins restricts which browser origins may call the public
	// routes; empty allows any (no cookies are used).
	CORSOrigins []string
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix

	// APIKeys authenticates X-API-Key and manages keys; nil: no key routes.
	APIKeys APIKeys
	// Bindings backs the registrations routes; nil: none.
	Bindings Bindings
	// Audit backs GET /audit; nil: no route.
	Audit AuditReader
	// Events receives audit events of admin actions that identity does
	// not emit itself (binding removals).
	Events identity.EventSink

	// Metrics serves GET /metrics (Prometheus text); nil: no route.
	Metrics http.Handler
	// Ready reports whether the service can serve (database reachable,
	// keys loaded, listeners up) for GET /ready; nil: always ready.
	Ready func(ctx context.Context) error
}

// APIKeys is what the API needs of the API-key service; *identity.APIKeys
// satisfies it.
type APIKeys interface {
	Authenticate(ctx context.Context, key string) (*identity.APIKey, *identity.User, []string, error)
	Create(ctx context.Context, ownerID, name string, scopes []string, ttl time.Duration) (string, *identity.APIKey, error)
	List(ctx context.Context, ownerID string) ([]*identity.APIKey, error)
	Get(ctx context.Context, id string) (*identity.APIKey, error)
	Revoke(ctx context.Context, id string) error
}

// Server is the API's handler.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	origins map[string]bool
	routes  []Route      // every registration of route, for Routes
	openapi openAPICache // GET /openapi.json
}

// New returns the API handler for cfg.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), origins: map[string]bool{}}
	for _, o := range cfg.CORSOrigins {
		s.origins[strings.TrimRight(o, "/")] = true
	}
	s.route("/health", false, methods{"GET": s.health})
	s.route("/ready", false, methods{"GET": s.ready})
	s.route("/openapi.json", true, methods{"GET": s.openAPI})
	if cfg.Metrics != nil {
		s.route("/metrics", false, methods{"GET": cfg.Metrics.ServeHTTP})
	}
	if cfg.Tokens != nil {
		s.route("/auth/login", true, methods{"POST": s.login})
		s.route("/auth/refresh", true, methods{"POST": s.refresh})
		s.route("/auth/logout", true, methods{"POST": s.logout})
	}
	if cfg.Users != nil && cfg.Verifier != nil {
		s.route("/users", false, methods{"POST": s.authed(s.createUser), "GET": s.authed(s.listUsers)})
		s.route("/users/{id}", false, methods{"GET": s.authed(s.getUser), "PUT": s.authed(s.updateUser), "DELETE": s.authed(s.deleteUser)})
		s.route("/users/{id}/password", false, methods{"POST": s.authed(s.setPassword)})
		s.route("/users/{id}/roles", false, methods{"POST": s.authed(s.setRoles)})
		if cfg.APIKeys != nil {
			s.route("/users/{id}/api-keys", false, methods{"POST": s.authed(s.createKey), "GET": s.authed(s.listKeys)})
			s.route("/api-keys/{id}", false, methods{"DELETE": s.authed(s.revokeKey)})
		}
		if cfg.Audit != nil {
			s.route("/audit", false, methods{"GET": s.authed(s.listAudit)})
		}
		if cfg.Bindings != nil {
			s.route("/registrations", false, methods{"GET": s.authed(s.listRegistrations)})
			s.route("/registrations/{id}", false, methods{"DELETE": s.authed(s.deleteRegistration)})
		}
	}
	if cfg.JWKS != nil {
		for _, p := range []string{"/auth/jwks.json", "/.well-known/jwks.json"} {
			s.route(p, true, methods{"GET": cfg.JWKS.ServeHTTP})
		}
		s.route("/.well-known/openid-configuration", true, methods{"GET": s.discovery})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no such route")
	})
	return s
}

// ServeHTTP implements http.Handler. Every answer carries the security
// headers, and a handler that panics is answered by recovered (panic.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	aw := &answerWriter{ResponseWriter: w}
	defer s.recovered(aw, r)
	s.mux.ServeHTTP(aw, r)
}

// methods maps HTTP methods to handlers for one path.
type methods map[string]http.HandlerFunc

// route registers path with its methods. Other methods get a JSON 405
// with Allow. CORS: public routes (login, refresh, JWKS) admit any origin
// unless origins are configured; the others admit only configured ones.
func (s *Server) route(path string, public bool, m methods) {
	for k := range m {
		s.routes = append(s.routes, Route{Method: k, Path: path})
	}
	if h, ok := m["GET"]; ok {
		m["HEAD"] = h
	}
	allowed := make([]string, 0, len(m)+1)
	for k := range m {
		allowed = append(allowed, k)
	}
	allowed = append(allowed, "OPTIONS")
	sort.Strings(allowed)
	allow := strings.Join(allowed, ", ")
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		if !s.cors(w, r, allow, public) {
			return
		}
		h, ok := m[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "method "+r.Method+" not allowed; allowed: "+allow)
			return
		}
		h(w, r)
	})
}

// cors sets CORS headers for an allowed origin and answers preflights. It
// returns false when the request was fully answered.
func (s *Server) cors(w http.ResponseWriter, r *http.Request, allow string, public bool) bool {
	origin := r.Header.Get("Origin")
	h := w.Header()
	if len(s.origins) > 0 {
		h.Add("Vary", "Origin")
	}
	anyOrigin := public && len(s.origins) == 0
	ok := origin != "" && (anyOrigin || s.origins[origin])
	if ok {
		if anyOrigin {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		h.Set("Access-Control-Expose-Headers", "ETag, Retry-After, WWW-Authenticate")
	}
	if r.Method != http.MethodOptions {
		return true
	}
	if ok && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", allow)
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-None-Match, X-API-Key")
		h.Set("Access-Control-Max-Age", "600")
	}
	h.Set("Allow", allow)
	w.WriteHeader(http.StatusNoContent)
	return false
}

// health is the liveness probe: the process answers.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"status":         "ok",
		"version":        s.cfg.Version,
		"uptime_seconds": int64(s.cfg.Now().Sub(s.cfg.Started).Seconds()),
	})
}

// ready is the readiness probe: 200 when the service can serve, 503 with
// the reason otherwise (for load balancers).
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}

// discovery serves the RFC 8414 metadata fields that apply.
func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	base := s.publicURL(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.cfg.Issuer,
		"jwks_uri":                              base + "/auth/jwks.json",
		"token_endpoint":                        base + "/auth/login",
		"grant_types_supported":                 []string{"password", "refresh_token"},
		"response_types_supported":              []string{},
		"token_endpoint_auth_methods_supported": []string{"none"},
		"scopes_supported":                      []string{"openid", "profile", "email", identity.ScopeSIPRegister},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}

// publicURL is the configured public base URL, or one built from the
// request.
func (s *Server) publicURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	} else if s.trustedPeer(r) {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "https" {
			scheme = p
		}
	}
	return scheme + "://" + r.Host
}

// statusOf maps identity error codes to HTTP statuses: the one table.
var statusOf = map[identity.Code]int{
	identity.CodeNotFound:           http.StatusNotFound,
	identity.CodeConflict:           http.StatusConflict,
	identity.CodeInvalid:            http.StatusBadRequest,
	identity.CodeUnauthorized:       http.StatusUnauthorized,
	identity.CodeForbidden:          http.StatusForbidden,
	identity.CodeInvalidCredentials: http.StatusUnauthorized,
	identity.CodeAccountLocked:      http.StatusTooManyRequests,
	identity.CodeUnavailable:        http.StatusServiceUnavailable,
	identity.CodeInternal:           http.StatusInternalServerError,
}

// wireCode is the code sent to clients; INVALID is spelled BAD_REQUEST on
// the wire, as the HTTP contract names it.
func wireCode(c identity.Code) string {
	if c == identity.CodeInvalid {
		return "BAD_REQUEST"
	}
	return string(c)
}

// fail writes err as the JSON error body with its mapped status. Internal
// detail is logged, never sent.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := identity.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusInternalServerError {
		s.cfg.Logger.Error().Err(err).Str("path", r.URL.Path).Msg("internal error")
	}
	if ra := identity.ErrorRetryAfter(err); ra > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((ra+time.Second-1)/time.Second)))
	}
	if status == http.StatusUnauthorized && code == identity.CodeUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="users-core", error="invalid_token"`)
	}
	writeError(w, status, wireCode(code), identity.ErrorMessage(err))
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads r's body into dst: application/json only, at most
// MaxBodyBytes, unknown fields and trailing data refused. It writes the
// error answer itself and returns false on failure. An empty body is
// allowed when optional.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any, optional bool) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" || !optional {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
			return false
		}
	}
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if errors.Is(err, io.EOF) && optional {
		return true
	}
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "request body is larger than 64 KiB")
			return false
		}
		writeError(w, http.StatusBadRequest, "BAD_REQUEST", jsonErrorMessage(err))
		return false
	}
	return true
}

// jsonErrorMessage says what is wrong with a JSON body without echoing
// values (which may be passwords).
func jsonErrorMessage(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "malformed JSON at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te) && te.Field == "":
		return "request body must be a JSON object"
	case errors.As(err, &te):
		t := te.Type
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		return "field " + strconv.Quote(te.Field) + " must be " + jsonKind(t.Kind())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "request body must be a JSON object"
	}
	return "invalid JSON body: " + err.Error()
}

// jsonKind names a Go kind the way a JSON client thinks of it, never a Go
// type name.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a number"
}

// clientAddr is the client's IP: the socket peer, or, when the peer is a
// trusted proxy, the right-most address in X-Forwarded-For that is not a
// trusted proxy.
func (s *Server) clientAddr(r *http.Request) string {
	peer := peerAddr(r)
	if !peer.IsValid() {
		return ""
	}
	if !s.isTrusted(peer) {
		return peer.String()
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: stop believing the chain
		}
		a = a.Unmap()
		if !s.isTrusted(a) {
			return a.String()
		}
	}
	return peer.String()
}

func peerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func (s *Server) trustedPeer(r *http.Request) bool {
	p := peerAddr(r)
	return p.IsValid() && s.isTrusted(p)
}

func (s *Server) isTrusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
