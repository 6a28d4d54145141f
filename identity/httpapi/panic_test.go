package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAPanicIsAJSON500WithoutTheValueInTheLog(t *testing.T) {
	const secret = "hunter2-is-a-password"
	var logs syncBuffer
	s := New(Config{Logger: zerolog.New(&logs)})
	s.route("/test/panic", false, methods{"POST": func(w http.ResponseWriter, r *http.Request) {
		panic("login failed for password " + secret)
	}})
	s.route("/test/nil", false, methods{"GET": func(w http.ResponseWriter, r *http.Request) {
		var m map[string]int
		m["x"]++
	}})
	s.route("/test/midway", false, methods{"GET": func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"partial":`)
		panic(secret)
	}})
	s.route("/test/abort", false, methods{"GET": func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	}})
	srv := httptest.NewServer(s)
	defer srv.Close()

	for _, c := range []struct{ method, path string }{{"POST", "/test/panic"}, {"GET", "/test/nil"}} {
		t.Run(c.path+" answers 500 INTERNAL_ERROR in JSON", func(t *testing.T) {
			req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(`{"password":"`+secret+`"}`))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != 500 || body.Error.Code != "INTERNAL_ERROR" || body.Error.Message == "" {
				t.Fatalf("%d %+v", resp.StatusCode, body)
			}
			if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("headers %v", resp.Header)
			}
		})
	}
	t.Run("a panic after the answer started aborts the connection", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/test/midway")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Fatal("the cut-off answer was delivered as if whole")
		}
	})
	t.Run("http.ErrAbortHandler passes through", func(t *testing.T) {
		if resp, err := http.Get(srv.URL + "/test/abort"); err == nil {
			resp.Body.Close()
			t.Fatalf("answered %d, want the connection aborted", resp.StatusCode)
		}
	})
	t.Run("the log names the panic but not its value", func(t *testing.T) {
		out := logs.String()
		if strings.Contains(out, secret) {
			t.Fatalf("the panic value reached the log:\n%s", out)
		}
		for _, want := range []string{`"route":"/test/panic"`, `"panic_type":"string"`, "assignment to entry in nil map", `"stack":`} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %s:\n%s", want, out)
			}
		}
		if strings.Contains(out, `"route":"/test/abort"`) {
			t.Errorf("http.ErrAbortHandler was logged as a panic:\n%s", out)
		}
	})
}
