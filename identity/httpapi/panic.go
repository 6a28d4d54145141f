package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
)

// recovered answers a request whose handler panicked; ServeHTTP defers it.
// Before the handler wrote anything, the answer is the usual JSON 500
// (INTERNAL_ERROR); after, the connection is aborted, so the client never
// takes a cut-off answer for a whole one. The log line names the route and
// the panic's type and stack, but the value only for runtime errors (nil
// dereference, index out of range: words of the runtime's own): any other
// value may hold request data such as a password. http.ErrAbortHandler
// passes through untouched (a handler's own way to abort).
func (s *Server) recovered(w *answerWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
		panic(v)
	}
	ev := s.cfg.Logger.Error().Str("method", r.Method).Str("route", r.Pattern).
		Str("panic_type", fmt.Sprintf("%T", v)).Bytes("stack", debug.Stack())
	if re, ok := v.(runtime.Error); ok {
		ev = ev.Str("panic", re.Error())
	}
	ev.Msg("handler panicked")
	if w.wrote {
		panic(http.ErrAbortHandler)
	}
	writeError(w, http.StatusInternalServerError, "INTERNAL_ERROR", "internal error")
}

// answerWriter notes whether the handler started its answer.
type answerWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *answerWriter) WriteHeader(code int) {
	if code >= 200 {
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *answerWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *answerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
