package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// serveDebug starts the profiling listener (debug_listen): net/http/pprof
// under /debug/pprof/, nothing else. It returns the bound address.
func (m *Main) serveDebug(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("debug: cannot listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m.debugSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: newStdLogger(m.Logger, "debug")}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.debugSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.serveErr <- fmt.Errorf("debug: %w", err)
		}
	}()
	m.Logger.Warn().Str("addr", ln.Addr().String()).Msg("pprof debug listener on (no authentication)")
	return ln.Addr().String(), nil
}
