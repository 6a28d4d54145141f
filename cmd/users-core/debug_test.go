package main

import (
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

// TestDebugListener: debug_listen serves net/http/pprof on its own
// listener, announced in the ready addresses, and is off by default.
func TestDebugListener(t *testing.T) {
	off := startMain(t, t.TempDir())
	if _, ok := off.addrs["debug"]; ok {
		t.Fatal("debug listener started without debug_listen")
	}
	m := startMain(t, t.TempDir(), func(c *Config) { c.UsersCore.DebugListen = "127.0.0.1:0" })
	addr := m.addrs["debug"]
	if addr == "" {
		t.Fatal("no debug address in the ready addresses")
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("pprof answered %d: %.200s", resp.StatusCode, body)
	}
	// The API listener does not serve it.
	resp, err = http.Get("http://" + m.HTTPAddr() + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("API listener answered /debug/pprof/ with %d", resp.StatusCode)
	}
}

// TestAtLeastTwoProcs: on one CPU the binary still runs two processors,
// and an operator's GOMAXPROCS is left alone.
func TestAtLeastTwoProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	atLeastTwoProcs("1")
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Fatalf("with GOMAXPROCS set: %d processors, want the operator's 1", n)
	}
	atLeastTwoProcs("")
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Fatalf("on one CPU: %d processors, want 2", n)
	}
}
