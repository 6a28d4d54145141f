package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
}

// login: POST /auth/login {username, password}.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if !decodeJSON(w, r, &req, false) {
		return
	}
	if req.Username == "" || req.Password == "" {
		writeError(w, http.StatusBadRequest, "BAD_REQUEST", "username and password are required")
		return
	}
	pair, err := s.cfg.Tokens.Login(r.Context(), req.Username, req.Password, s.clientAddr(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeTokens(w, pair)
}

// refresh: POST /auth/refresh {refresh_token}.
func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if !decodeJSON(w, r, &req, false) {
		return
	}
	if req.RefreshToken == "" {
		writeError(w, http.StatusBadRequest, "BAD_REQUEST", "refresh_token is required")
		return
	}
	pair, err := s.cfg.Tokens.Refresh(identity.WithActor(r.Context(), "", s.clientAddr(r)), req.RefreshToken)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeTokens(w, pair)
}

// logout: POST /auth/logout with a bearer access token and an optional
// {refresh_token}: revokes that token's family, or every family of the
// caller.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	u, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	var req refreshRequest
	if !decodeJSON(w, r, &req, true) {
		return
	}
	if err := s.cfg.Tokens.Logout(identity.WithActor(r.Context(), u.ID, s.clientAddr(r)), u.ID, req.RefreshToken); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeTokens(w http.ResponseWriter, p identity.TokenPair) {
	w.Header().Set("Pragma", "no-cache") // RFC 6749 5.1, with writeJSON's no-store
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken:  p.AccessToken,
		RefreshToken: p.RefreshToken,
		TokenType:    "Bearer",
		ExpiresIn:    int64(p.ExpiresIn.Seconds()),
	})
}

// authenticate checks the bearer access token and that its user still
// exists and is active. It answers 401 with WWW-Authenticate itself and
// returns false when the caller is not authenticated.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*identity.User, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(h, " ")
	if h == "" || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="users-core"`)
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "an access token is required (Authorization: Bearer)")
		return nil, false
	}
	claims, err := s.cfg.Verifier.Verify(r.Context(), strings.TrimSpace(token))
	if err != nil {
		var ve *jwks.VerifyError
		if errors.As(err, &ve) && ve.Reason == jwks.ReasonUnavailable {
			writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "token keys are unavailable; try again")
			return nil, false
		}
		s.unauthorized(w, "invalid or expired access token")
		return nil, false
	}
	u, err := s.cfg.Users.User(r.Context(), claims.Subject)
	if errors.Is(err, identity.ErrNotFound) || (err == nil && (!u.Active || u.ID != claims.Subject)) {
		s.unauthorized(w, "the token's user is unknown or disabled")
		return nil, false
	}
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	return u, true
}

func (s *Server) unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="users-core", error="invalid_token"`)
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg)
}
