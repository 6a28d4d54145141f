package main

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// newLogger returns the process logger: a readable console format when w
// is a terminal (or format is "console"), JSON lines otherwise.
func newLogger(cfg LogConfig, w io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(strings.ToLower(cfg.Level))
	if err != nil || cfg.Level == "" {
		return zerolog.Nop(), fmt.Errorf("log level %q: want trace, debug, info, warn or error", cfg.Level)
	}
	console := false
	switch strings.ToLower(cfg.Format) {
	case "console":
		console = true
	case "auto", "":
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			console = true
		}
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}

// bridgeSlog sends everything logged through log/slog (sipgo and other
// libraries) and the standard log package to logger.
func bridgeSlog(logger zerolog.Logger) {
	slog.SetDefault(slog.New(zerolog.NewSlogHandler(logger)))
}

// newStdLogger adapts logger for APIs that want a *log.Logger (net/http's
// ErrorLog), at warn level.
func newStdLogger(logger zerolog.Logger, component string) *log.Logger {
	return log.New(stdWriter{logger.With().Str("component", component).Logger()}, "", 0)
}

type stdWriter struct{ l zerolog.Logger }

func (w stdWriter) Write(p []byte) (int, error) {
	w.l.Warn().Msg(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
