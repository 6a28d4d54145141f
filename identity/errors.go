package identity

import (
	"errors"
	"fmt"
	"time"
)

// Code is a stable, machine-readable error kind. Codes are part of the
// outside contract: the HTTP layer maps them to statuses and JSON bodies, the
// CLI to exit statuses, and operators grep logs for them. Never rename one.
type Code string

// Error codes used across users-core.
const (
	CodeNotFound           Code = "NOT_FOUND"
	CodeConflict           Code = "CONFLICT"
	CodeInvalid            Code = "INVALID"
	CodeUnauthorized       Code = "UNAUTHORIZED"
	CodeForbidden          Code = "FORBIDDEN"
	CodeInvalidCredentials Code = "INVALID_CREDENTIALS"
	CodeAccountLocked      Code = "ACCOUNT_LOCKED"
	CodeUnavailable        Code = "UNAVAILABLE"
	CodeInternal           Code = "INTERNAL_ERROR"
)

// Error is the application error: an operation, a stable code, a message
// safe to show to the caller, optionally the input field at fault, and the
// underlying cause (logged, never shown).
type Error struct {
	Op      string // operation, e.g. "identity.CreateUser"
	Code    Code
	Field   string // input field at fault, for CodeInvalid
	Message string // safe for clients
	Err     error  // cause; internal detail
	// RetryAfter, when positive, tells the client when to try again
	// (CodeAccountLocked, CodeUnavailable).
	RetryAfter time.Duration
}

// E builds an *Error for op with code and a client-safe message.
func E(op string, code Code, format string, args ...any) *Error {
	return &Error{Op: op, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid builds a CodeInvalid error that names the field at fault.
func Invalid(op, field, format string, args ...any) *Error {
	return &Error{Op: op, Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Internal wraps an infrastructure failure: the caller sees a generic
// message, the log sees err.
func Internal(op string, err error) *Error {
	return &Error{Op: op, Code: CodeInternal, Message: "internal error", Err: err}
}

func (e *Error) Error() string {
	s := string(e.Code)
	if e.Op != "" {
		s = e.Op + ": " + s
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotFound) true for any *Error with that code, so
// the sentinels below match errors that carry an operation and message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Message == "" && t.Err == nil && t.Code == e.Code
}

// Sentinels for errors.Is. Stores return errors that match these.
var (
	// ErrNotFound: the record does not exist.
	ErrNotFound = &Error{Code: CodeNotFound}
	// ErrConflict: a unique value (username, email, ...) is already taken,
	// or a compare-and-swap lost.
	ErrConflict = &Error{Code: CodeConflict}
	// ErrInvalid: input failed validation.
	ErrInvalid = &Error{Code: CodeInvalid}
)

// ErrorCode returns the code of the first *Error in err's chain,
// CodeInternal for any other non-nil error, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-safe message of err: the message of the
// first *Error in its chain, or "internal error".
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" && e.Code != CodeInternal {
		return e.Message
	}
	if err == nil {
		return ""
	}
	return "internal error"
}

// ErrorRetryAfter returns the RetryAfter of the first *Error in err's
// chain, or 0.
func ErrorRetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// ErrorField returns the input field named by the first *Error in err's
// chain, or "".
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
