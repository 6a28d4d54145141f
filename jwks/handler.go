package jwks

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
)

// JWKSCacheControl is the Cache-Control of the JWKS: short enough that a
// new next key reaches verifiers well within the default lead time, long
// enough to spare the endpoint.
const JWKSCacheControl = "public, max-age=300"

// DocumentSource supplies the JWKS to publish. Keyring implements it.
type DocumentSource interface {
	Document() Document
}

// encodedSource is implemented by sources that keep the encoded document
// and its ETag themselves (Keyring: once per key set).
type encodedSource interface {
	encodedDocument() (body []byte, etag string)
}

// Handler serves src's JWKS: GET and HEAD only (405 with Allow otherwise),
// application/json, Cache-Control JWKSCacheControl, a strong ETag (base64url
// SHA-256 of the body, computed once per distinct document) and 304 Not
// Modified for a matching If-None-Match. CORS headers are the caller's
// business.
func Handler(src DocumentSource) http.Handler {
	return &jwksHandler{src: src}
}

type jwksHandler struct {
	src DocumentSource
	// body and etag cache the encoding of the last document from a plain
	// DocumentSource, so an unchanged document is not hashed again.
	mu   sync.Mutex
	body []byte
	etag string
}

func (h *jwksHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, etag := h.encoded()
	hdr := w.Header()
	hdr.Set("Cache-Control", JWKSCacheControl)
	hdr.Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagListMatches(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

func (h *jwksHandler) encoded() ([]byte, string) {
	if es, ok := h.src.(encodedSource); ok {
		return es.encodedDocument()
	}
	doc := h.src.Document()
	body, err := json.Marshal(normalizeDoc(doc))
	if err != nil {
		// A Document holds only strings; this cannot happen.
		panic("jwks: encoding JWKS: " + err.Error())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !bytes.Equal(body, h.body) {
		h.body, h.etag = body, etagOf(body)
	}
	return h.body, h.etag
}

// encodeDocument returns the JSON of doc and its strong ETag.
func encodeDocument(doc Document) ([]byte, string) {
	body, err := json.Marshal(normalizeDoc(doc))
	if err != nil {
		panic("jwks: encoding JWKS: " + err.Error())
	}
	return body, etagOf(body)
}

// normalizeDoc makes an empty key list encode as [] rather than null.
func normalizeDoc(doc Document) Document {
	if doc.Keys == nil {
		doc.Keys = []JWK{}
	}
	return doc
}

func etagOf(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + b64.EncodeToString(sum[:]) + `"`
}

// etagListMatches evaluates an If-None-Match field value against our
// (strong) etag with the weak comparison RFC 9110 section 13.1.2 requires:
// "*" matches, and W/"x" matches "x". Entity tags may contain commas, so the
// list is scanned tag by tag rather than split.
func etagListMatches(field, etag string) bool {
	opaque := etag // includes the quotes
	s := field
	for {
		for len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == ',') {
			s = s[1:]
		}
		if s == "" {
			return false
		}
		if s[0] == '*' {
			return true
		}
		if len(s) >= 2 && s[:2] == "W/" {
			s = s[2:]
		}
		if s == "" || s[0] != '"' {
			return false // not an entity tag: give up, answer in full
		}
		end := 1
		for end < len(s) && s[end] != '"' {
			end++
		}
		if end == len(s) {
			return false
		}
		if s[:end+1] == opaque {
			return true
		}
		s = s[end+1:]
	}
}
