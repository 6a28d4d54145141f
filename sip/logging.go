package sip

import (
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// redactingHandler is the slog handler given to sipgo. sipgo logs whole raw
// messages (the "data" attribute) when it cannot parse them, and those
// carry Authorization headers: Digest responses and Bearer tokens. The
// handler replaces raw messages by their first line and size, scrubs
// credentials out of error texts, and rate-limits what remote input can
// make it write (at most 20 records a second, the rest counted and
// reported).
type redactingHandler struct {
	next  slog.Handler
	limit *logLimiter
}

func newRedactingHandler(l zerolog.Logger) slog.Handler {
	return &redactingHandler{next: zerolog.NewSlogHandler(l), limit: &logLimiter{per: time.Second, max: 20}}
}

func (h *redactingHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	ok, dropped := h.limit.allow(time.Now())
	if !ok {
		return nil
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	if dropped > 0 {
		out.AddAttrs(slog.Int("suppressed", dropped))
	}
	return h.next.Handle(ctx, out)
}

func (h *redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = redactAttr(a)
	}
	return &redactingHandler{next: h.next.WithAttrs(red), limit: h.limit}
}

func (h *redactingHandler) WithGroup(name string) slog.Handler {
	return &redactingHandler{next: h.next.WithGroup(name), limit: h.limit}
}

// credentialRE finds credentials in free text: an Authorization header or a
// Digest response or a Bearer token, up to the end of the line.
var credentialRE = regexp.MustCompile(`(?i)((?:proxy-)?authorization\s*:|\bdigest\s|\bbearer\s|response\s*=)[^\r\n]*`)

// Redact removes credentials from free text, keeping what precedes them.
func Redact(s string) string {
	return credentialRE.ReplaceAllString(s, "${1} [redacted]")
}

func redactAttr(a slog.Attr) slog.Attr {
	switch a.Key {
	case "data", "msg", "message", "raw":
		raw := a.Value.String()
		first, _, _ := strings.Cut(raw, "\n")
		first = strings.TrimRight(first, "\r")
		if len(first) > 200 {
			first = first[:200]
		}
		return slog.String(a.Key, Redact(first)+" ["+strconv.Itoa(len(raw))+" bytes, rest redacted]")
	}
	if a.Value.Kind() == slog.KindGroup {
		attrs := a.Value.Group()
		red := make([]any, len(attrs))
		for i, x := range attrs {
			red[i] = redactAttr(x)
		}
		return slog.Group(a.Key, red...)
	}
	if a.Value.Kind() == slog.KindString || a.Value.Kind() == slog.KindAny {
		return slog.String(a.Key, Redact(a.Value.String()))
	}
	return a
}

// logLimiter lets through at most max records per period.
type logLimiter struct {
	mu      sync.Mutex
	per     time.Duration
	max     int
	start   time.Time
	n       int
	dropped int
}

// allow reports whether a record may be written now, and how many were
// dropped since the last one written.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.per {
		l.start, l.n = now, 0
	}
	if l.n >= l.max {
		l.dropped++
		return false, 0
	}
	l.n++
	d := l.dropped
	l.dropped = 0
	return true, d
}
