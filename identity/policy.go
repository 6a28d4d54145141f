package identity

import (
	_ "embed"
	"strings"
	"sync"
	"unicode/utf8"
)

// PasswordPolicy is the rule set a new password must pass. Lengths count
// Unicode characters (code points), not bytes, so that a passphrase in any
// script gets the same allowance.
type PasswordPolicy struct {
	MinLength int // at least this many characters
	MaxLength int // at most this many characters
}

// Bounds for PasswordPolicy.Validate.
const maxPolicyMaxLength = 1024

// DefaultPasswordPolicy returns the default policy: 12 to 128 characters.
// Length is what resists guessing (NIST SP 800-63B section 3.1.1.2); the
// cap only keeps request bodies and hashing input small, and is far above
// what a passphrase needs.
func DefaultPasswordPolicy() PasswordPolicy {
	return PasswordPolicy{MinLength: 12, MaxLength: 128}
}

// Validate checks the policy configuration: 1 <= MinLength <= MaxLength
// <= 1024.
func (p PasswordPolicy) Validate() error {
	const op = "identity.PasswordPolicy.Validate"
	switch {
	case p.MinLength < 1:
		return Invalid(op, "password_policy", "minimum password length must be at least 1")
	case p.MaxLength > maxPolicyMaxLength:
		return Invalid(op, "password_policy", "maximum password length must be at most %d", maxPolicyMaxLength)
	case p.MinLength > p.MaxLength:
		return Invalid(op, "password_policy", "minimum password length (%d) must not exceed the maximum (%d)", p.MinLength, p.MaxLength)
	}
	return nil
}

// Check returns nil if password is acceptable for the user called
// username, or an error matching ErrInvalid with field "password" whose
// message names the first rule broken, in this order: valid UTF-8, no NUL
// character, at least MinLength and at most MaxLength characters, not equal
// to the username (ignoring case), not in the embedded list of common
// passwords (ignoring case). Composition rules (digits, symbols) are
// deliberately absent: they push users to predictable patterns
// (NIST SP 800-63B). Messages never contain the password.
func (p PasswordPolicy) Check(username, password string) error {
	return p.check(username, password, true)
}

// CheckStorable applies only the rules a password must pass to be stored
// and used at all (valid UTF-8, no NUL, 1 to MaxLength characters): for a
// password that already exists in the field and is imported as is.
func (p PasswordPolicy) CheckStorable(password string) error {
	return PasswordPolicy{MinLength: 1, MaxLength: p.MaxLength}.check("", password, false)
}

func (p PasswordPolicy) check(username, password string, commonList bool) error {
	const op = "identity.PasswordPolicy.Check"
	// A rune takes at most 4 bytes: refuse a huge input before scanning it.
	if len(password) > 4*p.MaxLength {
		return Invalid(op, "password", "password must be at most %d characters", p.MaxLength)
	}
	if !utf8.ValidString(password) {
		return Invalid(op, "password", "password is not valid UTF-8")
	}
	// NUL: C libraries, terminals and some SIP clients cut the string there.
	if strings.IndexByte(password, 0) >= 0 {
		return Invalid(op, "password", "password must not contain a NUL character")
	}
	n := utf8.RuneCountInString(password)
	if n < p.MinLength {
		return Invalid(op, "password", "password must be at least %d characters", p.MinLength)
	}
	if n > p.MaxLength {
		return Invalid(op, "password", "password must be at most %d characters", p.MaxLength)
	}
	if username != "" && strings.EqualFold(password, username) {
		return Invalid(op, "password", "password must not equal the username")
	}
	if _, common := commonPasswords()[strings.ToLower(password)]; commonList && common {
		return Invalid(op, "password", "password is too common (it appears in a list of common passwords)")
	}
	return nil
}

// commonPasswordsFile is the list of common passwords, one a line, lower
// case, lines starting with "#!" being comments. Source and licence are in
// its header and in COMMON_PASSWORDS_SOURCE.md (John the Ripper's
// password.lst, which its compiler states is assumed to be in the public
// domain).
//
//go:embed common_passwords.txt
var commonPasswordsFile string

// commonPasswords returns the embedded list as a set, built on first use.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 4096)
	for line := range strings.Lines(commonPasswordsFile) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || strings.HasPrefix(line, "#!") {
			continue
		}
		set[strings.ToLower(line)] = struct{}{}
	}
	return set
})
