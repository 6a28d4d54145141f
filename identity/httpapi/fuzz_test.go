package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// fuzzDecodeTargets are the request bodies the API decodes, in the order
// FuzzDecodeJSON's kind argument selects them. optional mirrors the
// decodeJSON call of the handler that uses the type.
var fuzzDecodeTargets = []struct {
	name     string
	new      func() any
	optional bool
}{
	{"login", func() any { return new(loginRequest) }, false},
	{"refresh", func() any { return new(refreshRequest) }, false},
	{"logout", func() any { return new(refreshRequest) }, true},
	{"createUser", func() any { return new(createUserRequest) }, false},
	{"updateUser", func() any { return new(updateUserRequest) }, false},
	{"password", func() any { return new(passwordRequest) }, false},
	{"roles", func() any { return new(rolesRequest) }, false},
	{"createKey", func() any { return new(createKeyRequest) }, false},
}

// fuzzFixedText is every piece of text decodeJSON's error messages are
// built from (besides echoed field names), so an input value that is a
// substring of it is not counted as echoed.
func fuzzFixedText() string {
	parts := []string{
		"Content-Type must be application/json",
		"request body is larger than 64 KiB",
		"malformed JSON at byte ",
		"field  must be ",
		"unknown field ",
		"request body must be a JSON object",
		"invalid JSON body: ",
		"unexpected data after the JSON object",
	}
	for _, tg := range fuzzDecodeTargets {
		rt := reflect.TypeOf(tg.new()).Elem()
		parts = append(parts, rt.String()) // a non-object body names the struct type
		for i := 0; i < rt.NumField(); i++ {
			parts = append(parts, rt.Field(i).Type.String())
		}
	}
	return strings.Join(parts, "\n")
}

// fuzzStrings returns the string and number values and the object keys
// found in body, reading tokens until the first syntax error.
func fuzzStrings(body []byte) (values, keys []string) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct{ object, wantKey bool }
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return values, keys
		}
		isKey := len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].wantKey
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, frame{object: true, wantKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
			}
			if v == '{' || v == '[' {
				continue
			}
		case string:
			if isKey {
				keys = append(keys, v)
				stack[len(stack)-1].wantKey = false
				continue
			}
			values = append(values, v)
		case json.Number:
			values = append(values, string(v))
		}
		// A complete value: an enclosing object wants a key next.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
}

// FuzzDecodeJSON feeds arbitrary bodies and Content-Types through
// decodeJSON into every request type: no panic, only 200 (decoded), 400,
// 413 or 415, a well-formed {"error":{"code","message"}} body on failure,
// and no value from the body echoed in the message (bodies carry
// passwords and refresh tokens).
func FuzzDecodeJSON(f *testing.F) {
	fixed := fuzzFixedText()
	for i := range fuzzDecodeTargets {
		k := uint8(i)
		f.Add(k, "application/json", uint16(0), []byte(`{"username":"alice","password":"hunter2-secret"}`))
		f.Add(k, "application/json; charset=utf-8", uint16(0), []byte(`{"roles":["admin","user"],"scopes":["users:read"],"expires_in_seconds":3600}`))
		f.Add(k, "application/json", uint16(0), []byte(`{"password":12345678901234567890}`))
		f.Add(k, "application/json", uint16(0), []byte(`{"password":"s3cr3t-value" "x"}`))
		f.Add(k, "", uint16(0), []byte(``))
		f.Add(k, "text/plain", uint16(0), []byte(`{}`))
		f.Add(k, "application/json", uint16(65535), []byte(`{}`))
		f.Add(k, "application/json", uint16(0), []byte(`{"refresh_token":"rt_abcdefgh"}{"refresh_token":"rt_2"}`))
		f.Add(k, "application/json", uint16(0), []byte(`{"active":"yes-please","email":null}`))
	}
	f.Fuzz(func(t *testing.T, kind uint8, contentType string, pad uint16, body []byte) {
		tg := fuzzDecodeTargets[int(kind)%len(fuzzDecodeTargets)]
		full := append(bytes.Repeat([]byte(" "), int(pad)), body...)
		r := httptest.NewRequest(http.MethodPost, "/fuzz", bytes.NewReader(full))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		w := httptest.NewRecorder()
		dst := tg.new()
		ok := decodeJSON(w, r, dst, tg.optional)
		if ok {
			if w.Code != http.StatusOK || w.Body.Len() != 0 {
				t.Fatalf("%s: decoded but wrote %d %q", tg.name, w.Code, w.Body.Bytes())
			}
			return
		}
		wantCode := map[int]string{
			http.StatusBadRequest:            "BAD_REQUEST",
			http.StatusRequestEntityTooLarge: "PAYLOAD_TOO_LARGE",
			http.StatusUnsupportedMediaType:  "UNSUPPORTED_MEDIA_TYPE",
		}[w.Code]
		if wantCode == "" {
			t.Fatalf("%s: status %d", tg.name, w.Code)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s: error Content-Type %q", tg.name, ct)
		}
		var eb struct {
			Error *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&eb); err != nil || eb.Error == nil {
			t.Fatalf("%s: error body %q: %v", tg.name, w.Body.Bytes(), err)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("%s: trailing data in error body %q", tg.name, w.Body.Bytes())
		}
		if eb.Error.Code != wantCode || eb.Error.Message == "" {
			t.Fatalf("%s: %d with %+v", tg.name, w.Code, *eb.Error)
		}
		msg := eb.Error.Message
		if w.Code == http.StatusBadRequest && strings.ContainsAny(msg, "\r\n\x00") {
			t.Fatalf("%s: control characters in message %q", tg.name, msg)
		}
		values, keys := fuzzStrings(full)
	values:
		for _, v := range values {
			if len(v) < 6 || !strings.Contains(msg, v) || strings.Contains(fixed, v) {
				continue
			}
			for _, k := range keys { // field names may be named back
				if strings.Contains(k, v) {
					continue values
				}
			}
			t.Fatalf("%s: value %q echoed in %q", tg.name, v, msg)
		}
	})
}
