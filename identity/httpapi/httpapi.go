// Package httpapi is the HTTP side-listener of users-core: health now, and
// login, tokens, JWKS and the admin API as they are added. It turns
// identity errors into the JSON error contract
// {"error":{"code":"...","message":"..."}} with one table of statuses.
package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/rvoip/users-core/identity"
)

// Config holds what the HTTP API needs.
type Config struct {
	Version string
	Started time.Time
	Now     func() time.Time // nil means time.Now
	Logger  zerolog.Logger
}

// Server is the HTTP API's handler.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// New returns the API handler for cfg.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /health", s.health)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no such route")
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// health is the liveness probe: the process answers.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"status":         "ok",
		"version":        s.cfg.Version,
		"uptime_seconds": int64(s.cfg.Now().Sub(s.cfg.Started).Seconds()),
	})
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

// Error writes err as the JSON error body with its mapped status. Internal
// detail is logged, never sent.
func (s *Server) Error(w http.ResponseWriter, r *http.Request, err error) {
	code := identity.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusInternalServerError {
		s.cfg.Logger.Error().Err(err).Str("path", r.URL.Path).Msg("internal error")
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
