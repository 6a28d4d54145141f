package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
)

// Scopes the admin routes require (see identity/scopes.go).
const (
	scopeUsersRead    = "users:read"
	scopeUsersWrite   = "users:write"
	scopeProfileRead  = "profile:read"
	scopeProfileWrite = "profile:write"
	scopeKeysRead     = "apikeys:read"
	scopeKeysWrite    = "apikeys:write"
	scopeRegsRead     = "registrations:read"
	scopeRegsWrite    = "registrations:write"
)

// Bindings is what the registrations routes need of the binding store.
type Bindings interface {
	Bindings(ctx context.Context, aor string, now time.Time) ([]sip.Binding, error)
	BindingByID(ctx context.Context, id string) (*sip.Binding, error)
	UpdateBindings(ctx context.Context, aor string, now time.Time, fn func([]sip.Binding) ([]sip.Binding, error)) ([]sip.Binding, error)
}

// principal is an authenticated caller: the user and what it may do now.
type principal struct {
	user   *identity.User
	scopes []string
	keyID  string // set when authenticated by an API key
}

func (p *principal) can(scope string) bool { return identity.HasScope(p.scopes, scope) }

// isAdmin reports whether p may act on any user for scope (admins hold
// every scope through their role; a key narrows it).
func (p *principal) isAdmin() bool { return p.user.HasRole(identity.RoleAdmin) }

// allowed reports whether p may use scope on the resources of ownerID:
// admins (holding the scope) on anyone's, others only on their own with
// the matching self scope.
func (p *principal) allowed(adminScope, selfScope, ownerID string) bool {
	if p.isAdmin() && p.can(adminScope) {
		return true
	}
	return ownerID == p.user.ID && p.can(selfScope)
}

// caller authenticates the request by bearer access token or X-API-Key,
// answering 401 itself when it cannot.
func (s *Server) caller(w http.ResponseWriter, r *http.Request) (*principal, bool) {
	if key := r.Header.Get("X-API-Key"); key != "" && s.cfg.APIKeys != nil {
		k, u, scopes, err := s.cfg.APIKeys.Authenticate(r.Context(), key)
		if err != nil {
			if identity.ErrorCode(err) == identity.CodeInternal {
				s.fail(w, r, err)
				return nil, false
			}
			s.unauthorized(w, "invalid, expired or revoked API key")
			return nil, false
		}
		return &principal{user: u, scopes: scopes, keyID: k.ID}, true
	}
	u, ok := s.authenticate(w, r)
	if !ok {
		return nil, false
	}
	return &principal{user: u, scopes: identity.RoleScopes(u.Roles)}, true
}

// authed wraps an admin handler with authentication and the actor of the
// events it emits.
func (s *Server) authed(h func(w http.ResponseWriter, r *http.Request, p *principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.caller(w, r)
		if !ok {
			return
		}
		// The scope limit stops a caller from minting an API key with more
		// rights than it has itself (a narrow key of an admin asking for
		// admin).
		ctx := identity.WithScopeLimit(identity.WithActor(r.Context(), p.user.ID, s.clientAddr(r)), p.scopes)
		h(w, r.WithContext(ctx), p)
	}
}

func forbidden(w http.ResponseWriter, msg string) {
	writeError(w, http.StatusForbidden, "FORBIDDEN", msg)
}

// UserJSON is a user as the API (and the CLI's --json) shows it: never a
// hash or an HA1.
type UserJSON struct {
	ID          string     `json:"id"`
	Username    string     `json:"username"`
	Email       string     `json:"email"`
	DisplayName string     `json:"display_name"`
	Roles       []string   `json:"roles"`
	Active      bool       `json:"active"`
	TokenOnly   bool       `json:"token_only"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	LastLoginAt *time.Time `json:"last_login_at"`
}

// UserView returns u as the API shows it.
func UserView(u *identity.User) UserJSON {
	j := UserJSON{ID: u.ID, Username: u.Username, Email: u.Email, DisplayName: u.DisplayName, Roles: []string{},
		Active: u.Active, TokenOnly: u.TokenOnly, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
	for _, r := range u.Roles {
		j.Roles = append(j.Roles, string(r))
	}
	if !u.LastLoginAt.IsZero() {
		t := u.LastLoginAt
		j.LastLoginAt = &t
	}
	return j
}

type createUserRequest struct {
	Username    string   `json:"username"`
	Password    string   `json:"password"`
	Email       string   `json:"email"`
	DisplayName string   `json:"display_name"`
	Roles       []string `json:"roles"`
	Active      *bool    `json:"active"`
	TokenOnly   bool     `json:"token_only"`
}

// createUser: POST /users (admin).
func (s *Server) createUser(w http.ResponseWriter, r *http.Request, p *principal) {
	if !p.isAdmin() || !p.can(scopeUsersWrite) {
		forbidden(w, "creating users needs an admin with users:write")
		return
	}
	var req createUserRequest
	if !decodeJSON(w, r, &req, false) {
		return
	}
	nu := identity.NewUser{Username: req.Username, Password: req.Password, Email: req.Email,
		DisplayName: req.DisplayName, TokenOnly: req.TokenOnly, Disabled: req.Active != nil && !*req.Active}
	for _, x := range req.Roles {
		nu.Roles = append(nu.Roles, identity.Role(x))
	}
	u, err := s.cfg.Users.CreateUser(r.Context(), nu)
	if err != nil {
		s.failField(w, r, err)
		return
	}
	w.Header().Set("Location", "/users/"+u.ID)
	writeJSON(w, http.StatusCreated, UserView(u))
}

// failField writes err, naming the field at fault for validation errors.
func (s *Server) failField(w http.ResponseWriter, r *http.Request, err error) {
	if identity.ErrorCode(err) == identity.CodeInvalid {
		msg := identity.ErrorMessage(err)
		if f := identity.ErrorField(err); f != "" && !strings.Contains(msg, f) {
			msg = f + ": " + msg
		}
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{
			"code": "BAD_REQUEST", "message": msg, "field": identity.ErrorField(err)}})
		return
	}
	s.fail(w, r, err)
}

// listUsers: GET /users?active=&role=&search=&cursor=&limit= (admin).
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, p *principal) {
	if !p.isAdmin() || !p.can(scopeUsersRead) {
		forbidden(w, "listing users needs an admin with users:read")
		return
	}
	q := r.URL.Query()
	f := identity.UserFilter{Role: identity.Role(q.Get("role")), Search: q.Get("search"), After: q.Get("cursor")}
	if v := q.Get("active"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "BAD_REQUEST", "active must be true or false")
			return
		}
		f.Active = &b
	}
	if f.Role != "" {
		if _, err := identity.ParseRole(string(f.Role)); err != nil {
			s.failField(w, r, err)
			return
		}
	}
	var ok bool
	if f.Limit, ok = pageLimit(w, q.Get("limit")); !ok {
		return
	}
	page, err := s.cfg.Users.ListUsers(r.Context(), f)
	if err != nil {
		s.failField(w, r, err)
		return
	}
	out := make([]UserJSON, len(page.Users))
	for i, u := range page.Users {
		out[i] = UserView(u)
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out, "next_cursor": page.Next})
}

// target loads the user whose id is the path's, answering 404 itself.
func (s *Server) target(w http.ResponseWriter, r *http.Request) (*identity.User, bool) {
	id := r.PathValue("id")
	u, err := s.cfg.Users.User(r.Context(), id)
	if err == nil && u.ID != id {
		err = identity.E("httpapi.target", identity.CodeNotFound, "user not found") // ids only, never names
	}
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	return u, true
}

// getUser: GET /users/{id} (admin, or self).
func (s *Server) getUser(w http.ResponseWriter, r *http.Request, p *principal) {
	if !p.allowed(scopeUsersRead, scopeProfileRead, r.PathValue("id")) {
		forbidden(w, "reading this user is not allowed")
		return
	}
	u, ok := s.target(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, UserView(u))
}

type updateUserRequest struct {
	Email       *string `json:"email"`
	DisplayName *string `json:"display_name"`
	Active      *bool   `json:"active"`
}

// updateUser: PUT /users/{id}. Admins may change email, display name and
// the active flag of anyone; a user only their own email and display name.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	if !p.allowed(scopeUsersWrite, scopeProfileWrite, id) {
		forbidden(w, "changing this user is not allowed")
		return
	}
	var req updateUserRequest
	if !decodeJSON(w, r, &req, false) {
		return
	}
	if req.Active != nil && !(p.isAdmin() && p.can(scopeUsersWrite)) {
		forbidden(w, "only an admin may enable or disable users")
		return
	}
	u, err := s.cfg.Users.UpdateUser(r.Context(), id, identity.ProfileUpdate{Email: req.Email, DisplayName: req.DisplayName, Active: req.Active})
	if err != nil {
		s.failField(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, UserView(u))
}

// deleteUser: DELETE /users/{id} (admin).
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, p *principal) {
	if !p.isAdmin() || !p.can(scopeUsersWrite) {
		forbidden(w, "deleting users needs an admin with users:write")
		return
	}
	if err := s.cfg.Users.DeleteUser(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type passwordRequest struct {
	OldPassword string `json:"old_password"`
	NewPassword string `json:"new_password"`
}

// setPassword: POST /users/{id}/password. Self with the old password; an
// admin for anyone without it.
func (s *Server) setPassword(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	var req passwordRequest
	if !decodeJSON(w, r, &req, false) {
		return
	}
	if req.NewPassword == "" {
		writeError(w, http.StatusBadRequest, "BAD_REQUEST", "new_password is required")
		return
	}
	var err error
	switch {
	case id == p.user.ID && p.can(scopeProfileWrite):
		if req.OldPassword == "" {
			writeError(w, http.StatusBadRequest, "BAD_REQUEST", "old_password is required to change your own password")
			return
		}
		err = s.cfg.Users.ChangePassword(r.Context(), id, req.OldPassword, req.NewPassword)
	case p.isAdmin() && p.can(scopeUsersWrite):
		err = s.cfg.Users.SetPassword(r.Context(), id, req.NewPassword, nil)
	default:
		forbidden(w, "changing this user's password is not allowed")
		return
	}
	if err != nil {
		s.failField(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type rolesRequest struct {
	Roles []string `json:"roles"`
}

// setRoles: POST /users/{id}/roles (admin).
func (s *Server) setRoles(w http.ResponseWriter, r *http.Request, p *principal) {
	if !p.isAdmin() || !p.can(scopeUsersWrite) {
		forbidden(w, "changing roles needs an admin with users:write")
		return
	}
	var req rolesRequest
	if !decodeJSON(w, r, &req, false) {
		return
	}
	if req.Roles == nil {
		writeError(w, http.StatusBadRequest, "BAD_REQUEST", "roles is required")
		return
	}
	roles := make([]identity.Role, len(req.Roles))
	for i, x := range req.Roles {
		roles[i] = identity.Role(x)
	}
	u, err := s.cfg.Users.SetRoles(r.Context(), r.PathValue("id"), roles)
	if err != nil {
		s.failField(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, UserView(u))
}

// bindingJSON is one registration as the API shows it.
type bindingJSON struct {
	ID        string    `json:"id"`
	AoR       string    `json:"aor"`
	Contact   string    `json:"contact"`
	ExpiresAt time.Time `json:"expires_at"`
	Expires   int       `json:"expires"`
	Source    string    `json:"source"`
	Transport string    `json:"transport"`
	LocalAddr string    `json:"local_addr"`
	UserAgent string    `json:"user_agent"`
	Instance  string    `json:"instance,omitempty"`
	RegID     int       `json:"reg_id,omitempty"`
	Path      []string  `json:"path,omitempty"`
	Node      string    `json:"node"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ownAoR reports whether aor is an AoR of u (any of our domains).
func ownAoR(u *identity.User, aor string) bool {
	user, _, ok := strings.Cut(strings.TrimPrefix(aor, "sip:"), "@")
	return ok && strings.EqualFold(user, u.Username)
}

// listRegistrations: GET /registrations?aor=sip:user@domain (admin, or
// the user for their own AoR).
func (s *Server) listRegistrations(w http.ResponseWriter, r *http.Request, p *principal) {
	aor := strings.ToLower(r.URL.Query().Get("aor"))
	if !strings.HasPrefix(aor, "sip:") || !strings.Contains(aor, "@") {
		writeError(w, http.StatusBadRequest, "BAD_REQUEST", "aor is required, as sip:user@domain")
		return
	}
	if !(p.isAdmin() && p.can(scopeRegsRead)) && !(ownAoR(p.user, aor) && p.can(scopeRegsRead)) {
		forbidden(w, "reading this AoR's registrations is not allowed")
		return
	}
	now := s.cfg.Now()
	bs, err := s.cfg.Bindings.Bindings(r.Context(), aor, now)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]bindingJSON, len(bs))
	for i, b := range bs {
		out[i] = bindingJSON{ID: b.ID, AoR: b.AoR, Contact: b.Contact, ExpiresAt: b.ExpiresAt,
			Expires: int(b.ExpiresAt.Sub(now).Seconds()), Source: b.Source, Transport: b.Transport,
			LocalAddr: b.LocalAddr, UserAgent: b.UserAgent, Instance: b.Instance, RegID: b.RegID,
			Path: b.Path, Node: b.Node, CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"aor": aor, "registrations": out})
}

// deleteRegistration: DELETE /registrations/{id} (admin, or the owner).
// The binding goes in one registrar transaction, like an expires=0.
func (s *Server) deleteRegistration(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	b, err := s.cfg.Bindings.BindingByID(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !(p.isAdmin() && p.can(scopeRegsWrite)) && !(ownAoR(p.user, b.AoR) && p.can(scopeProfileWrite)) {
		forbidden(w, "removing this registration is not allowed")
		return
	}
	found := false
	_, err = s.cfg.Bindings.UpdateBindings(r.Context(), b.AoR, s.cfg.Now(), func(cur []sip.Binding) ([]sip.Binding, error) {
		out := cur[:0:0]
		for _, c := range cur {
			if c.ID == id {
				found = true
				continue
			}
			out = append(out, c)
		}
		return out, nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !found {
		s.fail(w, r, identity.E("httpapi.deleteRegistration", identity.CodeNotFound, "registration not found"))
		return
	}
	if s.cfg.Events != nil {
		s.cfg.Events.Emit(identity.Event{Time: s.cfg.Now(), Action: identity.ActionBindingRemoved, Actor: p.user.ID,
			Subject: b.AoR, Source: s.clientAddr(r), Outcome: identity.OutcomeSuccess, Detail: "binding " + id})
	}
	w.WriteHeader(http.StatusNoContent)
}

type createKeyRequest struct {
	Name             string   `json:"name"`
	Scopes           []string `json:"scopes"`
	ExpiresInSeconds int64    `json:"expires_in_seconds"`
}

// KeyJSON is an API key as the API (and the CLI's --json) shows it; Key
// is set only in the answer to its creation.
type KeyJSON struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	Status     string     `json:"status"`
	Key        string     `json:"key,omitempty"`
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// KeyView returns k as the API shows it at now.
func KeyView(k *identity.APIKey, now time.Time) KeyJSON {
	return KeyJSON{ID: k.ID, UserID: k.UserID, Name: k.Name, Scopes: append([]string{}, k.Scopes...),
		CreatedAt: k.CreatedAt, ExpiresAt: tp(k.ExpiresAt), LastUsedAt: tp(k.LastUsedAt), RevokedAt: tp(k.RevokedAt),
		Status: k.Status(now)}
}

// createKey: POST /users/{id}/api-keys (self or admin). The owner comes
// from the path only.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request, p *principal) {
	owner := r.PathValue("id")
	if !p.allowed(scopeUsersWrite, scopeKeysWrite, owner) {
		forbidden(w, "creating an API key for this user is not allowed")
		return
	}
	var req createKeyRequest
	if !decodeJSON(w, r, &req, false) {
		return
	}
	if req.ExpiresInSeconds < 0 {
		writeError(w, http.StatusBadRequest, "BAD_REQUEST", "expires_in_seconds must not be negative")
		return
	}
	key, k, err := s.cfg.APIKeys.Create(r.Context(), owner, req.Name, req.Scopes, time.Duration(req.ExpiresInSeconds)*time.Second)
	if err != nil {
		s.failField(w, r, err)
		return
	}
	out := KeyView(k, s.cfg.Now())
	out.Key = key
	writeJSON(w, http.StatusCreated, out)
}

// listKeys: GET /users/{id}/api-keys (self or admin).
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, p *principal) {
	owner := r.PathValue("id")
	if !p.allowed(scopeUsersRead, scopeKeysRead, owner) {
		forbidden(w, "listing this user's API keys is not allowed")
		return
	}
	if _, ok := s.target(w, r); !ok {
		return
	}
	keys, err := s.cfg.APIKeys.List(r.Context(), owner)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]KeyJSON, len(keys))
	for i, k := range keys {
		out[i] = KeyView(k, s.cfg.Now())
	}
	writeJSON(w, http.StatusOK, map[string]any{"api_keys": out})
}

// revokeKey: DELETE /api-keys/{id} (the owner or an admin).
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request, p *principal) {
	k, err := s.cfg.APIKeys.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !p.allowed(scopeUsersWrite, scopeKeysWrite, k.UserID) {
		forbidden(w, "revoking this API key is not allowed")
		return
	}
	if err := s.cfg.APIKeys.Revoke(r.Context(), k.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pageLimit parses the limit query parameter (1 to 1000; empty means the
// store's default), answering 400 itself when it is bad.
func pageLimit(w http.ResponseWriter, v string) (int, bool) {
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		writeError(w, http.StatusBadRequest, "BAD_REQUEST", "limit must be between 1 and 1000")
		return 0, false
	}
	return n, true
}
