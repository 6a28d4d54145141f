package identity

import (
	"context"
	"slices"
	"strings"
)

// Scopes name what kind of operation a caller may perform. A role grants a
// set of scopes (RoleScopes); an API key carries a chosen subset and acts
// with the intersection of that subset and its owner's current roles
// (EffectiveScopes), so a key never holds more than its owner does now.
//
// Scopes say what, not on whose resources: the HTTP layer lets a caller
// touch another user's resources only when that caller's user is an admin
// and holds the scope; everyone else acts on their own resources only.
const (
	ScopeUsersRead          = "users:read"
	ScopeUsersWrite         = "users:write"
	ScopeAPIKeysRead        = "apikeys:read"
	ScopeAPIKeysWrite       = "apikeys:write"
	ScopeRegistrationsRead  = "registrations:read"
	ScopeRegistrationsWrite = "registrations:write"
	ScopeAuditRead          = "audit:read"
	ScopeProfileRead        = "profile:read"  // the caller's own user record
	ScopeProfileWrite       = "profile:write" // the caller's own user record
	// ScopeAdmin stands for every scope, present and future. Only admins
	// hold it, and a key granted it keeps only what its owner still has.
	ScopeAdmin = "admin"
)

// knownScopes lists every scope except ScopeAdmin, sorted.
var knownScopes = []string{
	ScopeAPIKeysRead, ScopeAPIKeysWrite, ScopeAuditRead, ScopeProfileRead, ScopeProfileWrite,
	ScopeRegistrationsRead, ScopeRegistrationsWrite, ScopeUsersRead, ScopeUsersWrite,
}

// userScopes are what RoleUser grants, for the user's own resources.
var userScopes = []string{
	ScopeAPIKeysRead, ScopeAPIKeysWrite, ScopeProfileRead, ScopeProfileWrite, ScopeRegistrationsRead,
}

// KnownScopes returns every scope, ScopeAdmin included, sorted.
func KnownScopes() []string {
	out := append(slices.Clone(knownScopes), ScopeAdmin)
	slices.Sort(out)
	return out
}

// RoleScopes returns the scopes roles grant, sorted without duplicates:
// RoleAdmin every scope (ScopeAdmin included), RoleUser the self-service
// ones (profile:read, profile:write, apikeys:read, apikeys:write,
// registrations:read), meant for the user's own resources only.
func RoleScopes(roles []Role) []string {
	var admin, user bool
	for _, r := range roles {
		admin = admin || r == RoleAdmin
		user = user || r == RoleUser
	}
	switch {
	case admin:
		return KnownScopes()
	case user:
		out := slices.Clone(userScopes)
		slices.Sort(out)
		return out
	}
	return []string{}
}

// ValidateScopes normalizes scopes (surrounding space trimmed, lower case,
// duplicates removed, sorted) and refuses unknown ones with an error
// matching ErrInvalid that names the field "scopes". An empty list is
// valid here; callers that need a scope say so.
func ValidateScopes(scopes []string) ([]string, error) {
	const op = "identity.ValidateScopes"
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		n := strings.ToLower(strings.TrimSpace(s))
		if n != ScopeAdmin && !slices.Contains(knownScopes, n) {
			return nil, Invalid(op, "scopes", "unknown scope %q (known: %s)", s, strings.Join(KnownScopes(), ", "))
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// expand returns scopes with ScopeAdmin replaced by every scope (and kept).
func expand(scopes []string) []string {
	if slices.Contains(scopes, ScopeAdmin) {
		return KnownScopes()
	}
	return scopes
}

// EffectiveScopes returns what a key holding keyScopes may do for an owner
// who currently has ownerRoles: the intersection of the two, with
// ScopeAdmin on either side expanded to every scope, sorted. It holds
// ScopeAdmin only when both the key and the roles do. A key whose owner
// lost the roles behind its scopes gets fewer scopes, possibly none; it
// never gets more than it was granted.
func EffectiveScopes(keyScopes []string, ownerRoles []Role) []string {
	granted := expand(RoleScopes(ownerRoles))
	out := []string{}
	for _, s := range expand(keyScopes) {
		if slices.Contains(granted, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// HasScope reports whether scopes allow s: they contain s or ScopeAdmin.
func HasScope(scopes []string, s string) bool {
	return slices.Contains(scopes, s) || slices.Contains(scopes, ScopeAdmin)
}

type scopeLimitKey struct{}

// WithScopeLimit returns a context under which APIKeys.Create refuses
// (CodeForbidden) any scope outside scopes. The HTTP layer sets it to the
// caller's effective scopes, so a key holding apikeys:write cannot mint a
// key with more rights than itself; without it, Create bounds scopes by
// the owner's roles only.
func WithScopeLimit(ctx context.Context, scopes []string) context.Context {
	return context.WithValue(ctx, scopeLimitKey{}, slices.Clone(scopes))
}

// scopeLimit returns the limit set by WithScopeLimit, and whether one was.
func scopeLimit(ctx context.Context) ([]string, bool) {
	s, ok := ctx.Value(scopeLimitKey{}).([]string)
	return s, ok
}
