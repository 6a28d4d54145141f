package main

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestLogBufferWritesWarningsAtOnceAndInfoSoon(t *testing.T) {
	out := new(syncBuffer)
	b := newLogBuffer(out)
	defer b.Close()
	logger, err := newLogger(LogConfig{Level: "info", Format: "json"}, b)
	if err != nil {
		t.Fatal(err)
	}

	logger.Info().Msg("first info")
	logger.Warn().Msg("a warning")
	// The warning is written before Warn returns, with the info before it.
	got := out.String()
	if !strings.Contains(got, `"first info"`) || !strings.Contains(got, `"a warning"`) ||
		strings.Index(got, "first info") > strings.Index(got, "a warning") {
		t.Fatalf("after a warning the log holds %q", got)
	}

	logger.Info().Msg("second info")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "second info") {
		if time.Now().After(deadline) {
			t.Fatalf("an info line was not written within 5 s: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLogBufferCloseWritesEverything(t *testing.T) {
	out := new(syncBuffer)
	b := newLogBuffer(out)
	logger := zerolog.New(b)
	for i := range 1000 {
		logger.Info().Int("n", i).Msg("line")
	}
	b.Close()
	if n := strings.Count(out.String(), "\n"); n != 1000 {
		t.Fatalf("%d lines after Close, want 1000", n)
	}
	logger.Info().Msg("after close")
	if !strings.Contains(out.String(), "after close") {
		t.Fatal("a line logged after Close was not written at once")
	}
	b.Close() // twice is fine
}
