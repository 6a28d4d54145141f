package jwks

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

func serve(h http.Handler, method, inm string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/auth/jwks.json", nil)
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerServesTheKeyringJWKS(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	k := newTestKeyring(t, NewMemoryKeyStore(), testSealer(t), clock, keyGen(t, 4))
	h := Handler(k)

	rec := serve(h, http.MethodGet, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	hdr := rec.Header()
	if hdr.Get("Content-Type") != "application/json" || hdr.Get("Cache-Control") != "public, max-age=300" {
		t.Fatalf("headers %v", hdr)
	}
	etag := hdr.Get("ETag")
	if len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' || strings.HasPrefix(etag, "W/") {
		t.Fatalf("ETag %q is not a strong entity tag", etag)
	}
	var doc Document
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(docKIDs(doc), docKIDs(k.Document())) || doc.Keys[0] != k.Document().Keys[0] {
		t.Fatalf("served %s", rec.Body)
	}
	if serve(h, http.MethodGet, "").Header().Get("ETag") != etag {
		t.Fatal("ETag changed without a key change")
	}

	for _, inm := range []string{etag, "W/" + etag, `"nope", ` + etag, `"a,b",W/` + etag, "*"} {
		rec := serve(h, http.MethodGet, inm)
		if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 || rec.Header().Get("ETag") != etag {
			t.Errorf("If-None-Match %s: status %d, %d bytes", inm, rec.Code, rec.Body.Len())
		}
	}
	for _, inm := range []string{`"nope"`, strings.Trim(etag, `"`), `W/"x"`} {
		if rec := serve(h, http.MethodGet, inm); rec.Code != http.StatusOK {
			t.Errorf("If-None-Match %s: status %d, want 200", inm, rec.Code)
		}
	}

	head := serve(h, http.MethodHead, "")
	if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("ETag") != etag ||
		head.Header().Get("Content-Length") != hdr.Get("Content-Length") {
		t.Fatalf("HEAD: %d, %d bytes, %v", head.Code, head.Body.Len(), head.Header())
	}

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		rec := serve(h, m, "")
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: status %d, Allow %q", m, rec.Code, rec.Header().Get("Allow"))
		}
	}

	// A changed key set gets a new ETag, and the old one no longer matches.
	if _, err := k.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	rec = serve(h, http.MethodGet, etag)
	if rec.Code != http.StatusOK || rec.Header().Get("ETag") == etag {
		t.Fatalf("after rotation: status %d, ETag %s", rec.Code, rec.Header().Get("ETag"))
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || len(doc.Keys) != 2 {
		t.Fatalf("after rotation served %s", rec.Body)
	}
}

// staticSource is a plain DocumentSource.
type staticSource struct {
	mu    sync.Mutex
	doc   Document
	calls int
}

func (s *staticSource) Document() Document {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return s.doc
}

func TestHandlerWithAPlainDocumentSource(t *testing.T) {
	src := &staticSource{}
	h := Handler(src)
	rec := serve(h, http.MethodGet, "")
	if rec.Body.String() != `{"keys":[]}` {
		t.Fatalf("empty source served %s", rec.Body)
	}
	empty := rec.Header().Get("ETag")
	src.mu.Lock()
	src.doc = Document{Keys: []JWK{PublicJWK(&poolKey(t, 0).PublicKey, "k1")}}
	src.mu.Unlock()
	rec = serve(h, http.MethodGet, empty)
	if rec.Code != http.StatusOK || rec.Header().Get("ETag") == empty {
		t.Fatalf("changed document: %d %s", rec.Code, rec.Header().Get("ETag"))
	}
	if serve(h, http.MethodGet, rec.Header().Get("ETag")).Code != http.StatusNotModified {
		t.Fatal("no 304 for the current ETag")
	}
}

func FuzzETagListMatches(f *testing.F) {
	const etag = `"abc"`
	for _, s := range []string{`"abc"`, `W/"abc"`, `*`, `"x", "abc"`, `"a,b", W/"abc"`, `"abc`, `W/`, `,,`, ` "abc" `} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, field string) {
		got := etagListMatches(field, etag)
		if got && !strings.Contains(field, "*") && !strings.Contains(field, etag) {
			t.Fatalf("%q matched without containing the tag", field)
		}
	})
}
