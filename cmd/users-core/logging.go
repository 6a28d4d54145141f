package main

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"
	"sync"
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
		out := w
		if b, ok := w.(*logBuffer); ok {
			out = b.out
		}
		if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
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

// logFlushEvery bounds how long a log line of serve waits in the buffer.
const logFlushEvery = 100 * time.Millisecond

// logBuffer batches serve's log lines into fewer writes: under load every
// REGISTER logs a line, and one write(2) per line cost several percent of
// the registrar's CPU. Lines reach w within logFlushEvery; a warning or
// worse is written at once, with everything before it. On SIGKILL the last
// logFlushEvery of info lines can be lost; Close writes the rest, and
// lines logged after Close are written at once.
type logBuffer struct {
	out     io.Writer
	mu      sync.Mutex
	w       *bufio.Writer
	pending bool
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

func newLogBuffer(w io.Writer) *logBuffer {
	b := &logBuffer{out: w, w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushLoop()
	return b
}

func (b *logBuffer) Write(p []byte) (int, error) {
	return b.WriteLevel(zerolog.NoLevel, p)
}

// WriteLevel makes logBuffer a zerolog.LevelWriter: warnings and errors
// are flushed at once.
func (b *logBuffer) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.w.Write(p)
	if err != nil {
		return n, err
	}
	if b.closed || (l >= zerolog.WarnLevel && l <= zerolog.PanicLevel) {
		b.pending = false
		return n, b.w.Flush()
	}
	b.pending = true
	return n, nil
}

func (b *logBuffer) flushLoop() {
	defer close(b.done)
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.flush()
		case <-b.stop:
			return
		}
	}
}

func (b *logBuffer) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending {
		b.w.Flush()
		b.pending = false
	}
}

// Close writes what is buffered and stops the flusher.
func (b *logBuffer) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.w.Flush()
	b.pending = false
	b.mu.Unlock()
	close(b.stop)
	<-b.done
}
