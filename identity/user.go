// Package identity is the domain of users-core: users and their roles,
// password hashing (Argon2id as PHC strings), SIP credentials (HA1 per realm
// and Digest algorithm, sealed at rest), the password policy, and errors with
// stable codes. It declares the storage contracts it needs (UserStore) and
// imports no other package of this module; store/* implements them.
//
// It is not the place for transport concerns: HTTP lives in
// identity/httpapi, SIP in package sip.
package identity

import (
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Role is a user's role. Only the roles below exist.
type Role string

// Roles.
const (
	RoleAdmin Role = "admin"
	RoleUser  Role = "user"
)

// ParseRole returns the Role named by s (case-insensitive).
func ParseRole(s string) (Role, error) {
	switch Role(strings.ToLower(strings.TrimSpace(s))) {
	case RoleAdmin:
		return RoleAdmin, nil
	case RoleUser:
		return RoleUser, nil
	}
	return "", Invalid("identity.ParseRole", "roles", "unknown role %q (known: admin, user)", s)
}

// User is a person or device identity. It never carries secrets: password
// hashes and HA1 values live in Credentials, which no API returns.
type User struct {
	ID          string // stable UUID, assigned at creation
	Username    string // unique case-insensitively; the SIP user part
	Email       string // optional; unique case-insensitively when set
	DisplayName string
	Roles       []Role // sorted, no duplicates
	Active      bool
	// TokenOnly users have no HA1 values: they register over SIP with Bearer
	// tokens only, never with Digest.
	TokenOnly   bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
	LastLoginAt time.Time // zero when the user never logged in
}

// HasRole reports whether u has role r.
func (u *User) HasRole(r Role) bool {
	for _, x := range u.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// Clone returns a deep copy of u.
func (u *User) Clone() *User {
	c := *u
	c.Roles = append([]Role(nil), u.Roles...)
	return &c
}

// Limits on user fields.
const (
	MaxUsernameLen    = 64
	MaxEmailLen       = 254
	MaxDisplayNameLen = 128
)

// ValidateUsername checks that name is usable as the user part of a SIP URI
// without escaping (RFC 3261 section 25.1: unreserved and user-unreserved
// characters; escapes are refused so that one user has one spelling), and
// as a Digest username in a quoted string.
func ValidateUsername(name string) error {
	const op = "identity.ValidateUsername"
	if name == "" {
		return Invalid(op, "username", "username is required")
	}
	if len(name) > MaxUsernameLen {
		return Invalid(op, "username", "username is longer than %d characters", MaxUsernameLen)
	}
	for i := 0; i < len(name); i++ {
		if !isSIPUserChar(name[i]) {
			return Invalid(op, "username", "username contains %q, which is not allowed in a SIP URI user part (allowed: letters, digits and - _ . ! ~ * ' ( ) & = + $ , ; ? /)", name[i])
		}
	}
	return nil
}

func isSIPUserChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-_.!~*'()&=+$,;?/", c) >= 0
}

// ValidateEmail checks an optional email address: empty, or one bare
// address (no display name) of at most MaxEmailLen bytes.
func ValidateEmail(email string) error {
	const op = "identity.ValidateEmail"
	if email == "" {
		return nil
	}
	if len(email) > MaxEmailLen {
		return Invalid(op, "email", "email is longer than %d characters", MaxEmailLen)
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return Invalid(op, "email", "email is not a valid address")
	}
	return nil
}

// ValidateDisplayName checks a display name: valid UTF-8, no control
// characters, at most MaxDisplayNameLen characters.
func ValidateDisplayName(s string) error {
	const op = "identity.ValidateDisplayName"
	if !utf8.ValidString(s) {
		return Invalid(op, "display_name", "display name is not valid UTF-8")
	}
	if utf8.RuneCountInString(s) > MaxDisplayNameLen {
		return Invalid(op, "display_name", "display name is longer than %d characters", MaxDisplayNameLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return Invalid(op, "display_name", "display name contains a control character")
		}
	}
	return nil
}

// NormalizeRoles validates roles, removes duplicates and sorts them. An
// empty list means RoleUser.
func NormalizeRoles(roles []Role) ([]Role, error) {
	var admin, user bool
	for _, r := range roles {
		p, err := ParseRole(string(r))
		if err != nil {
			return nil, err
		}
		admin = admin || p == RoleAdmin
		user = user || p == RoleUser
	}
	out := make([]Role, 0, 2)
	if admin {
		out = append(out, RoleAdmin)
	}
	if user || !admin {
		out = append(out, RoleUser)
	}
	return out, nil
}
