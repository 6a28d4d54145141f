package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
	"github.com/rvoip/users-core/sip"
)

// Stand-ins: only route registration matters, no request reaches them.
type (
	stubVerifier struct{ TokenVerifier }
	stubAPIKeys  struct{ APIKeys }
	stubBindings struct{}
	stubAudit    struct{ AuditReader }
)

func (stubBindings) Bindings(context.Context, string, time.Time) ([]sip.Binding, error) {
	return nil, nil
}
func (stubBindings) BindingByID(context.Context, string) (*sip.Binding, error) { return nil, nil }
func (stubBindings) UpdateBindings(context.Context, string, time.Time, func([]sip.Binding) ([]sip.Binding, error)) ([]sip.Binding, error) {
	return nil, nil
}

// fullServer configures every optional part, so every route registers.
func fullServer(t *testing.T) *Server {
	t.Helper()
	return New(Config{
		Version:  "1.2.3-test",
		Started:  time.Now(),
		Issuer:   "https://users.example",
		Users:    &identity.Service{},
		Tokens:   &identity.Tokens{},
		Verifier: stubVerifier{},
		JWKS:     http.NotFoundHandler(),
		APIKeys:  stubAPIKeys{},
		Bindings: stubBindings{},
		Audit:    stubAudit{},
		Metrics:  http.NotFoundHandler(),
	})
}

func fetchDoc(t *testing.T, s *Server) (map[string]any, *httptest.ResponseRecorder) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi.json: status %d, body %s", rec.Code, rec.Body)
	}
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("GET /openapi.json is not JSON: %v", err)
	}
	return doc, rec
}

var httpMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true,
	"head": true, "patch": true, "trace": true}

// docRoutes lists the (method, path) operations of doc's paths.
func docRoutes(t *testing.T, doc map[string]any) []Route {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatal("document has no paths object")
	}
	var out []Route
	for p, item := range paths {
		for m := range item.(map[string]any) {
			if httpMethods[m] {
				out = append(out, Route{Method: strings.ToUpper(m), Path: p})
			}
		}
	}
	return out
}

// sameRoutes reports the difference between the router's and the
// document's route sets.
func sameRoutes(t *testing.T, what string, router, documented []Route) {
	t.Helper()
	in := func(list []Route) map[Route]bool {
		m := map[Route]bool{}
		for _, r := range list {
			if m[r] {
				t.Errorf("%s: %s %s listed twice", what, r.Method, r.Path)
			}
			m[r] = true
		}
		return m
	}
	rs, ds := in(router), in(documented)
	var missing, extra []string
	for r := range rs {
		if !ds[r] {
			missing = append(missing, r.Method+" "+r.Path)
		}
	}
	for r := range ds {
		if !rs[r] {
			extra = append(extra, r.Method+" "+r.Path)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("%s: routes registered but not documented: %v", what, missing)
	}
	if len(extra) > 0 {
		t.Errorf("%s: routes documented but not registered: %v", what, extra)
	}
}

func TestOpenAPIMatchesRouter(t *testing.T) {
	s := fullServer(t)
	routes := s.Routes()
	if len(routes) < 20 {
		t.Fatalf("only %d routes registered; is the server fully configured? %v", len(routes), routes)
	}
	for _, r := range routes {
		if r.Method == http.MethodHead || r.Method == http.MethodOptions {
			t.Errorf("Routes lists the automatic %s %s", r.Method, r.Path)
		}
	}
	// The served document (filtered to the registered routes) and the whole
	// table must both match the fully configured router exactly.
	served, _ := fetchDoc(t, s)
	sameRoutes(t, "served document", routes, docRoutes(t, served))
	sameRoutes(t, "operation table", routes, docRoutes(t, openAPIDocument("x", nil)))
}

func TestOpenAPIOnlyRegisteredRoutes(t *testing.T) {
	s := New(Config{Version: "v"})
	routes := s.Routes()
	want := []Route{{"GET", "/health"}, {"GET", "/openapi.json"}, {"GET", "/ready"}}
	if !slices.Equal(routes, want) {
		t.Fatalf("Routes of a bare server = %v, want %v", routes, want)
	}
	doc, _ := fetchDoc(t, s)
	sameRoutes(t, "bare server", routes, docRoutes(t, doc))
}

func TestOpenAPIDocumentValid(t *testing.T) {
	doc, _ := fetchDoc(t, fullServer(t))
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", doc["openapi"])
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] != "users-core" || info["version"] != "1.2.3-test" {
		t.Errorf("info = %v", info)
	}
	comps, _ := doc["components"].(map[string]any)
	sec, _ := comps["securitySchemes"].(map[string]any)
	if b, _ := sec["bearerAuth"].(map[string]any); b["type"] != "http" || b["scheme"] != "bearer" || b["bearerFormat"] != "JWT" {
		t.Errorf("bearerAuth = %v", b)
	}
	if k, _ := sec["apiKeyAuth"].(map[string]any); k["type"] != "apiKey" || k["in"] != "header" || k["name"] != "X-API-Key" {
		t.Errorf("apiKeyAuth = %v", k)
	}

	ids := map[string]string{}
	for path, item := range doc["paths"].(map[string]any) {
		for method, v := range item.(map[string]any) {
			where := strings.ToUpper(method) + " " + path
			op := v.(map[string]any)
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s: no operationId", where)
			} else if prev, dup := ids[id]; dup {
				t.Errorf("operationId %q used by %s and %s", id, prev, where)
			}
			ids[id] = where
			if s, _ := op["summary"].(string); s == "" {
				t.Errorf("%s: no summary", where)
			}
			responses, _ := op["responses"].(map[string]any)
			if len(responses) == 0 {
				t.Errorf("%s: no responses", where)
			}
			success := false
			for code := range responses {
				if code[0] == '2' || code == "304" {
					success = true
				}
			}
			if !success {
				t.Errorf("%s: no success response", where)
			}
			// Path parameters: exactly those of the template.
			var want, got []string
			for _, m := range pathParamRE.FindAllStringSubmatch(path, -1) {
				want = append(want, m[1])
			}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				pm := p.(map[string]any)
				if pm["in"] == "path" {
					got = append(got, pm["name"].(string))
					if pm["required"] != true {
						t.Errorf("%s: path parameter %v not required", where, pm["name"])
					}
				}
			}
			if !slices.Equal(want, got) {
				t.Errorf("%s: path parameters %v, want %v", where, got, want)
			}
			// Security: present; authenticated operations answer 401
			// with WWW-Authenticate.
			secs, ok := op["security"].([]any)
			if !ok {
				t.Errorf("%s: no security requirement (use [] for none)", where)
			}
			if len(secs) > 0 {
				r401, _ := responses["401"].(map[string]any)
				if r401["$ref"] != "#/components/responses/Unauthorized" {
					t.Errorf("%s: authenticated but 401 is %v", where, r401)
				}
			}
			if rb, ok := op["requestBody"].(map[string]any); ok {
				for _, c := range []string{"400", "413", "415"} {
					if responses[c] == nil {
						t.Errorf("%s: takes a body but documents no %s", where, c)
					}
				}
				content, _ := rb["content"].(map[string]any)
				if content["application/json"] == nil {
					t.Errorf("%s: request body is not application/json", where)
				}
			}
		}
	}
	for _, want := range []string{"login", "refreshToken", "logout", "createUser", "listRegistrations", "getOpenAPI"} {
		if ids[want] == "" {
			t.Errorf("operation %q missing", want)
		}
	}

	// Shared answers carry their headers.
	resps := comps["responses"].(map[string]any)
	if h, _ := resps["Unauthorized"].(map[string]any)["headers"].(map[string]any); h["WWW-Authenticate"] == nil {
		t.Error("401 Unauthorized documents no WWW-Authenticate")
	}
	if h, _ := resps["AccountLocked"].(map[string]any)["headers"].(map[string]any); h["Retry-After"] == nil {
		t.Error("429 documents no Retry-After")
	}

	// Every $ref resolves.
	n := 0
	walk(doc, func(ref string) {
		n++
		if !strings.HasPrefix(ref, "#/") {
			t.Errorf("$ref %q is not local", ref)
			return
		}
		var cur any = doc
		for _, part := range strings.Split(ref[2:], "/") {
			part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
			m, ok := cur.(map[string]any)
			if !ok || m[part] == nil {
				t.Errorf("$ref %q does not resolve", ref)
				return
			}
			cur = m[part]
		}
	})
	if n < 20 {
		t.Errorf("only %d $refs walked", n)
	}
}

// walk calls fn with the value of every $ref in v.
func walk(v any, fn func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				fn(s)
				continue
			}
			walk(e, fn)
		}
	case []any:
		for _, e := range x {
			walk(e, fn)
		}
	}
}

// TestOpenAPISchemasMatchStructs checks the hand-written schemas against
// the JSON tags of the Go types they describe: the same fields, types,
// nullability, and for answers the always-present fields required.
func TestOpenAPISchemasMatchStructs(t *testing.T) {
	schemas := openAPISchemas()
	for name, v := range map[string]any{
		"LoginRequest":        loginRequest{},
		"RefreshRequest":      refreshRequest{},
		"LogoutRequest":       refreshRequest{},
		"TokenResponse":       tokenResponse{},
		"User":                UserJSON{},
		"CreateUserRequest":   createUserRequest{},
		"UpdateUserRequest":   updateUserRequest{},
		"PasswordRequest":     passwordRequest{},
		"RolesRequest":        rolesRequest{},
		"APIKey":              KeyJSON{},
		"CreateAPIKeyRequest": createKeyRequest{},
		"Registration":        bindingJSON{},
		"AuditEvent":          auditJSON{},
		"JWKS":                jwks.Document{},
		"JWK":                 jwks.JWK{},
	} {
		schema, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		props := schema["properties"].(map[string]any)
		isRequest := strings.HasSuffix(name, "Request")
		if isRequest && schema["additionalProperties"] != false {
			t.Errorf("%s: request schema without additionalProperties: false", name)
		}
		var wantRequired []string
		seen := map[string]bool{}
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			f := rt.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" || !f.IsExported() {
				continue
			}
			jname, opts, _ := strings.Cut(tag, ",")
			if jname == "" {
				jname = f.Name
			}
			seen[jname] = true
			if !strings.Contains(opts, "omitempty") {
				wantRequired = append(wantRequired, jname)
			}
			p, ok := props[jname].(map[string]any)
			if !ok {
				t.Errorf("%s: field %q (%s.%s) not in the schema", name, jname, rt.Name(), f.Name)
				continue
			}
			if want, got := jsonTypes(f.Type), schemaTypes(p); !slices.Equal(want, got) {
				t.Errorf("%s.%s: schema type %v, Go type %s is %v", name, jname, got, f.Type, want)
			}
		}
		for p := range props {
			if !seen[p] {
				t.Errorf("%s: schema property %q is no field of %s", name, p, rt.Name())
			}
		}
		if !isRequest {
			got := requiredOf(schema)
			sort.Strings(wantRequired)
			if !slices.Equal(got, wantRequired) {
				t.Errorf("%s: required %v, want the fields always sent %v", name, got, wantRequired)
			}
		}
	}
}

func requiredOf(schema map[string]any) []string {
	var out []string
	switch r := schema["required"].(type) {
	case []string:
		out = append(out, r...)
	case []any:
		for _, x := range r {
			out = append(out, x.(string))
		}
	}
	sort.Strings(out)
	return out
}

// jsonTypes is the JSON Schema type(s) a Go type encodes as.
func jsonTypes(t reflect.Type) []string {
	var out []string
	if t.Kind() == reflect.Pointer {
		out = append(out, "null")
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeOf(time.Time{}):
		out = append(out, "string")
	case t.Kind() == reflect.String:
		out = append(out, "string")
	case t.Kind() == reflect.Bool:
		out = append(out, "boolean")
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		out = append(out, "integer")
	case t.Kind() == reflect.Slice:
		out = append(out, "array")
	default:
		out = append(out, "object")
	}
	sort.Strings(out)
	return out
}

func schemaTypes(p map[string]any) []string {
	var out []string
	switch x := p["type"].(type) {
	case string:
		out = []string{x}
	case []any:
		for _, e := range x {
			out = append(out, e.(string))
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIMapBodies checks the schemas of the answers built from maps
// against real answers of the handlers that need no store.
func TestOpenAPIMapBodies(t *testing.T) {
	s := fullServer(t)
	schemas := openAPISchemas()
	for _, c := range []struct{ path, schema string }{
		{"/health", "Health"},
		{"/ready", "ReadyStatus"},
		{"/.well-known/openid-configuration", "Discovery"},
		{"/no/such/route", "Error"},
	} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Errorf("GET %s: %v", c.path, err)
			continue
		}
		schema := schemas[c.schema].(map[string]any)
		props := schema["properties"].(map[string]any)
		for k := range body {
			if props[k] == nil {
				t.Errorf("GET %s: field %q not in schema %s", c.path, k, c.schema)
			}
		}
		for _, k := range requiredOf(schema) {
			if _, ok := body[k]; !ok {
				t.Errorf("GET %s: required field %q of %s not sent", c.path, k, c.schema)
			}
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	s := fullServer(t)
	doc, rec := fetchDoc(t, s)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	want, err := encodeOpenAPI(openAPIDocument("1.2.3-test", nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Body.String(); got != string(want) {
		t.Error("served document differs from the fully configured table")
	}
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v", doc["openapi"])
	}
	// Built once: a second answer is the same bytes with the same ETag.
	etag := rec.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	rec2 := httptest.NewRecorder()
	s.ServeHTTP(rec2, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec2.Body.String() != rec.Body.String() || rec2.Header().Get("ETag") != etag {
		t.Error("second answer differs")
	}
	req := httptest.NewRequest(http.MethodGet, "/openapi.json", nil)
	req.Header.Set("If-None-Match", etag)
	rec3 := httptest.NewRecorder()
	s.ServeHTTP(rec3, req)
	if rec3.Code != http.StatusNotModified || rec3.Body.Len() != 0 {
		t.Errorf("If-None-Match: status %d, %d bytes", rec3.Code, rec3.Body.Len())
	}
	// Public CORS: any origin may read it.
	req = httptest.NewRequest(http.MethodGet, "/openapi.json", nil)
	req.Header.Set("Origin", "https://app.example")
	rec4 := httptest.NewRecorder()
	s.ServeHTTP(rec4, req)
	if got := rec4.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin = %q, want *", got)
	}
	// HEAD works, POST does not.
	rec6 := httptest.NewRecorder()
	s.ServeHTTP(rec6, httptest.NewRequest(http.MethodHead, "/openapi.json", nil))
	if rec6.Code != http.StatusOK || rec6.Header().Get("ETag") != etag {
		t.Errorf("HEAD /openapi.json: status %d", rec6.Code)
	}
	rec5 := httptest.NewRecorder()
	s.ServeHTTP(rec5, httptest.NewRequest(http.MethodPost, "/openapi.json", nil))
	if rec5.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /openapi.json: status %d", rec5.Code)
	}
}
