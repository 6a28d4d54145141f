// Package page holds what both storage backends share about listing in
// pages: the page size rule, the opaque cursors of user and audit pages,
// and LIKE escaping for searches. It has no SQL of its own.
package page

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Limits of list pages (see identity.UserFilter and identity.AuditFilter).
const (
	DefaultSize = 100
	MaxSize     = 1000
)

// Size is the page size a list asks for: <= 0 means DefaultSize, and no
// page is larger than MaxSize.
func Size(n int) int {
	if n <= 0 {
		return DefaultSize
	}
	return min(n, MaxSize)
}

// UserCursor is the cursor after the user whose username key is key.
func UserCursor(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// ParseUserCursor returns the username key a UserCursor holds; false for a
// cursor that cannot be one.
func ParseUserCursor(s string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return "", false
	}
	return string(b), true
}

// AuditCursor is the cursor after the audit record with id.
func AuditCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(id, 10)))
}

// ParseAuditCursor returns the record id an AuditCursor holds; false for a
// cursor that cannot be one.
func ParseAuditCursor(s string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, false
	}
	id, err := strconv.ParseInt(string(b), 10, 64)
	return id, err == nil && id > 0
}

// EscapeLike escapes the LIKE wildcards % and _ and the escape character
// itself, for a pattern used with ESCAPE '\'.
func EscapeLike(s string) string {
	return likeEscaper.Replace(s)
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
