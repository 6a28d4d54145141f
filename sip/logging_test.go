package sip

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestSipgoLogsNeverCarryCredentials(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newRedactingHandler(zerolog.New(&buf)))
	raw := "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1\r\n" +
		"Authorization: Digest username=\"alice\", response=\"0123456789abcdef0123456789abcdef\"\r\n" +
		"Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl\r\n\r\n"
	log.Error("failed to parse", "data", raw, "error", "bad header: Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.secret")
	out := buf.String()
	for _, secret := range []string{"0123456789abcdef", "eyJhbGciOiJSUzI1NiJ9", "secret"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log line carries %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, "REGISTER sip:example.test SIP/2.0") || !strings.Contains(out, "bytes, rest redacted") {
		t.Fatalf("log line lost the request line or the size: %s", out)
	}
}

func TestSipgoLogsAreRateLimited(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newRedactingHandler(zerolog.New(&buf)))
	for i := 0; i < 1000; i++ {
		log.Error("failed to parse", "data", "garbage")
	}
	if n := strings.Count(buf.String(), "\n"); n > 40 {
		t.Fatalf("%d lines written for 1000 records in a burst", n)
	}
}
