package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Route is one method and path pattern the API serves, as registered
// (path parameters as {name}; the automatic HEAD and OPTIONS are left out).
type Route struct {
	Method string
	Path   string
}

// Routes returns every route registered on s, sorted by path and method.
func (s *Server) Routes() []Route {
	out := slices.Clone(s.routes)
	slices.SortFunc(out, func(a, b Route) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	return out
}

// openAPICache holds the served document, built on first use.
type openAPICache struct {
	once sync.Once
	body []byte
	etag string
	err  error
}

// openAPI serves GET /openapi.json: the OpenAPI 3.1 document of the routes
// this server registered.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	c := &s.openapi
	c.once.Do(func() {
		registered := make(map[Route]bool, len(s.routes))
		for _, rt := range s.routes {
			registered[rt] = true
		}
		c.body, c.err = encodeOpenAPI(openAPIDocument(s.cfg.Version, func(rt Route) bool { return registered[rt] }))
		sum := sha256.Sum256(c.body)
		c.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
	})
	if c.err != nil {
		s.fail(w, r, c.err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", c.etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			if t = strings.TrimSpace(t); t == c.etag || t == "*" {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(c.body)
}

func encodeOpenAPI(doc map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Who may call an operation.
type authKind int

const (
	authNone   authKind = iota // anyone
	authBearer                 // Authorization: Bearer <access token> only
	authAny                    // bearer access token or X-API-Key
)

// apiOp is one operation of the document's table.
type apiOp struct {
	method, path string
	id, summary  string
	desc         string
	tag          string
	auth         authKind
	idDesc       string // description of the {id} path parameter
	query        []any  // query and header parameters
	body         string // request body schema (components.schemas); "" none
	bodyOptional bool
	responses    map[string]any // success answers and the op's own errors
}

// Helpers that build the document's pieces.

func ref(kind, name string) map[string]any {
	return map[string]any{"$ref": "#/components/" + kind + "/" + name}
}

func schemaRef(name string) map[string]any { return ref("schemas", name) }

func jsonContent(schema any) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": schema}}
}

func answer(desc, schema string, headers ...string) map[string]any {
	a := map[string]any{"description": desc, "content": jsonContent(schemaRef(schema))}
	if len(headers) > 0 {
		h := map[string]any{}
		for _, name := range headers {
			h[name] = ref("headers", name)
		}
		a["headers"] = h
	}
	return a
}

func noContent(desc string) map[string]any { return map[string]any{"description": desc} }

// errorResponses names the shared error answer of each status.
var errorResponses = map[int]string{
	400: "BadRequest",
	401: "Unauthorized",
	403: "Forbidden",
	404: "NotFound",
	409: "Conflict",
	413: "PayloadTooLarge",
	415: "UnsupportedMediaType",
	429: "AccountLocked",
	500: "InternalError",
	503: "Unavailable",
}

// resp returns responses: the given answers plus the shared error answers
// of codes.
func resp(answers map[string]any, codes ...int) map[string]any {
	out := map[string]any{}
	for k, v := range answers {
		out[k] = v
	}
	for _, c := range codes {
		out[strconv.Itoa(c)] = ref("responses", errorResponses[c])
	}
	return out
}

func queryParam(name, desc string, schema map[string]any, required bool) map[string]any {
	p := map[string]any{"name": name, "in": "query", "description": desc, "schema": schema}
	if required {
		p["required"] = true
	}
	return p
}

func str() map[string]any { return map[string]any{"type": "string"} }

func strFmt(format string) map[string]any { return map[string]any{"type": "string", "format": format} }

func strDesc(desc string) map[string]any {
	return map[string]any{"type": "string", "description": desc}
}

func nullable(t, format, desc string) map[string]any {
	m := map[string]any{"type": []any{t, "null"}}
	if format != "" {
		m["format"] = format
	}
	if desc != "" {
		m["description"] = desc
	}
	return m
}

func integer(desc string) map[string]any {
	return map[string]any{"type": "integer", "format": "int64", "description": desc}
}

func boolean(desc string) map[string]any {
	return map[string]any{"type": "boolean", "description": desc}
}

func strArray(desc string) map[string]any {
	return map[string]any{"type": "array", "items": str(), "description": desc}
}

func arrayOf(schema string) map[string]any {
	return map[string]any{"type": "array", "items": schemaRef(schema)}
}

func object(desc string, required []string, props map[string]any) map[string]any {
	m := map[string]any{"type": "object", "properties": props}
	if desc != "" {
		m["description"] = desc
	}
	if len(required) > 0 {
		m["required"] = required
	}
	return m
}

// request is an object schema for a request body: unknown fields are
// refused (400), so additionalProperties is false.
func request(desc string, required []string, props map[string]any) map[string]any {
	m := object(desc, required, props)
	m["additionalProperties"] = false
	return m
}

var (
	limitParam  = queryParam("limit", "page size, 1 to 1000", map[string]any{"type": "integer", "minimum": 1, "maximum": 1000}, false)
	cursorParam = queryParam("cursor", "the next_cursor of the previous page; absent starts at the beginning", str(), false)
	ifNoneMatch = map[string]any{"name": "If-None-Match", "in": "header", "required": false,
		"description": "an ETag of an earlier answer: 304 when it still matches", "schema": str()}
)

// openAPIOps is the table of every operation the API can serve.
var openAPIOps = []apiOp{
	{method: "GET", path: "/health", id: "getHealth", tag: "service", summary: "Liveness probe",
		desc:      "Answers whenever the process runs.",
		responses: resp(map[string]any{"200": answer("the process is alive", "Health")})},
	{method: "GET", path: "/ready", id: "getReady", tag: "service", summary: "Readiness probe",
		desc: "200 when the service can serve (listeners bound, database reachable, a signing key loaded); 503 otherwise.",
		responses: resp(map[string]any{
			"200": answer("ready to serve", "ReadyStatus"),
			"503": answer("not ready; reason names every failing part", "ReadyStatus"),
		})},
	{method: "GET", path: "/metrics", id: "getMetrics", tag: "service", summary: "Prometheus metrics",
		responses: resp(map[string]any{"200": map[string]any{
			"description": "metrics in the Prometheus text exposition format",
			"content":     map[string]any{"text/plain": map[string]any{"schema": str()}},
		}})},
	{method: "GET", path: "/openapi.json", id: "getOpenAPI", tag: "service", summary: "This OpenAPI document",
		desc:  "The OpenAPI 3.1 document of the routes this server serves.",
		query: []any{ifNoneMatch},
		responses: resp(map[string]any{
			"200": map[string]any{"description": "the OpenAPI document",
				"headers": map[string]any{"ETag": ref("headers", "ETag")},
				"content": jsonContent(map[string]any{"type": "object"})},
			"304": noContent("the document matches If-None-Match"),
		})},

	{method: "POST", path: "/auth/login", id: "login", tag: "auth", summary: "Log in with username and password",
		desc: "Issues an access token (JWT) and a refresh token. A wrong password, an unknown user and a disabled user all get the same 401.",
		body: "LoginRequest",
		responses: resp(map[string]any{
			"200": answer("the new tokens", "TokenResponse", "Cache-Control", "Pragma"),
			"401": ref("responses", "InvalidCredentials"),
		}, 429, 503)},
	{method: "POST", path: "/auth/refresh", id: "refreshToken", tag: "auth", summary: "Exchange a refresh token for new tokens",
		desc: "Rotates the refresh token. A rotated token presented again after the grace window revokes its whole family.",
		body: "RefreshRequest",
		responses: resp(map[string]any{
			"200": answer("the new tokens, with a new refresh token", "TokenResponse", "Cache-Control", "Pragma"),
		}, 401, 503)},
	{method: "POST", path: "/auth/logout", id: "logout", tag: "auth", summary: "Log out",
		desc: "Revokes the family of the given refresh token, or without one every refresh-token family of the caller. " +
			"Access tokens stay valid until they expire.",
		auth: authBearer, body: "LogoutRequest", bodyOptional: true,
		responses: resp(map[string]any{"204": noContent("logged out")})},
	{method: "GET", path: "/auth/jwks.json", id: "getJWKS", tag: "keys", summary: "Token signing keys (JWKS)",
		query:     []any{ifNoneMatch},
		responses: jwksResponses()},
	{method: "GET", path: "/.well-known/jwks.json", id: "getWellKnownJWKS", tag: "keys", summary: "Token signing keys (JWKS), well-known path",
		query:     []any{ifNoneMatch},
		responses: jwksResponses()},
	{method: "GET", path: "/.well-known/openid-configuration", id: "getOpenIDConfiguration", tag: "keys",
		summary:   "Issuer metadata (the RFC 8414 fields that apply)",
		responses: resp(map[string]any{"200": answer("the issuer metadata", "Discovery")})},

	{method: "POST", path: "/users", id: "createUser", tag: "users", summary: "Create a user",
		desc: "Admin with users:write.", auth: authAny, body: "CreateUserRequest",
		responses: resp(map[string]any{"201": answer("the new user", "User", "Location")}, 403, 409)},
	{method: "GET", path: "/users", id: "listUsers", tag: "users", summary: "List users",
		desc: "Admin with users:read. Ordered by username, in pages.", auth: authAny,
		query: []any{
			queryParam("active", "only active (true) or disabled (false) users", map[string]any{"type": "boolean"}, false),
			queryParam("role", "only users with this role", map[string]any{"type": "string", "enum": []any{"admin", "user"}}, false),
			queryParam("search", "only users whose username, email or display name contains this", str(), false),
			cursorParam, limitParam,
		},
		responses: resp(map[string]any{"200": answer("a page of users", "UserList")}, 400, 403)},
	{method: "GET", path: "/users/{id}", id: "getUser", tag: "users", summary: "Get a user",
		desc: "Admin with users:read, or the user itself with profile:read.", auth: authAny, idDesc: "user id",
		responses: resp(map[string]any{"200": answer("the user", "User")}, 403, 404)},
	{method: "PUT", path: "/users/{id}", id: "updateUser", tag: "users", summary: "Update a user's profile",
		desc: "Admin with users:write (email, display_name, active), or the user itself with profile:write (email, display_name). " +
			"Absent or null fields are left unchanged.",
		auth: authAny, idDesc: "user id", body: "UpdateUserRequest",
		responses: resp(map[string]any{"200": answer("the updated user", "User")}, 403, 404, 409)},
	{method: "DELETE", path: "/users/{id}", id: "deleteUser", tag: "users", summary: "Delete a user",
		desc: "Admin with users:write. Deletes everything the user owns; the last active admin cannot be deleted (409).",
		auth: authAny, idDesc: "user id",
		responses: resp(map[string]any{"204": noContent("deleted")}, 403, 404, 409)},
	{method: "POST", path: "/users/{id}/password", id: "setUserPassword", tag: "users", summary: "Set a user's password",
		desc: "The user itself with profile:write and old_password, or an admin with users:write without it. " +
			"A wrong old password is 403.",
		auth: authAny, idDesc: "user id", body: "PasswordRequest",
		responses: resp(map[string]any{"204": noContent("password changed")}, 403, 404)},
	{method: "POST", path: "/users/{id}/roles", id: "setUserRoles", tag: "users", summary: "Replace a user's roles",
		desc: "Admin with users:write. Demoting the last active admin is refused (409).",
		auth: authAny, idDesc: "user id", body: "RolesRequest",
		responses: resp(map[string]any{"200": answer("the updated user", "User")}, 403, 404, 409)},

	{method: "POST", path: "/users/{id}/api-keys", id: "createAPIKey", tag: "api-keys", summary: "Create an API key",
		desc: "The owner with apikeys:write, or an admin with users:write. The key is in the answer once and never again.",
		auth: authAny, idDesc: "id of the key's owner", body: "CreateAPIKeyRequest",
		responses: resp(map[string]any{"201": answer("the new key, with its secret in key", "APIKey")}, 403, 404, 409)},
	{method: "GET", path: "/users/{id}/api-keys", id: "listAPIKeys", tag: "api-keys", summary: "List a user's API keys",
		desc: "The owner with apikeys:read, or an admin with users:read. Revoked keys are listed too; secrets never are.",
		auth: authAny, idDesc: "id of the keys' owner",
		responses: resp(map[string]any{"200": answer("the user's keys", "APIKeyList")}, 403, 404)},
	{method: "DELETE", path: "/api-keys/{id}", id: "revokeAPIKey", tag: "api-keys", summary: "Revoke an API key",
		desc: "The owner with apikeys:write, or an admin with users:write.", auth: authAny, idDesc: "key id (the public 12-character id)",
		responses: resp(map[string]any{"204": noContent("revoked")}, 403, 404)},

	{method: "GET", path: "/audit", id: "listAudit", tag: "audit", summary: "List audit events",
		desc: "Admin with audit:read. Newest first, in pages.", auth: authAny,
		query: []any{
			queryParam("action", "only this action, such as login.failed", str(), false),
			queryParam("actor", "only events by this user id", str(), false),
			queryParam("subject", "only events about this subject", str(), false),
			queryParam("source", "only events from this client address", str(), false),
			queryParam("outcome", "only this outcome", map[string]any{"type": "string", "enum": []any{"success", "failure"}}, false),
			queryParam("since", "only events at or after this time (RFC 3339)", strFmt("date-time"), false),
			queryParam("until", "only events before this time (RFC 3339)", strFmt("date-time"), false),
			cursorParam, limitParam,
		},
		responses: resp(map[string]any{"200": answer("a page of events", "AuditList")}, 400, 403)},

	{method: "GET", path: "/registrations", id: "listRegistrations", tag: "registrations", summary: "List the current bindings of an AoR",
		desc: "Admin with registrations:read, or the user for their own AoR.", auth: authAny,
		query:     []any{queryParam("aor", "the address of record, as sip:user@domain", str(), true)},
		responses: resp(map[string]any{"200": answer("the AoR's unexpired bindings", "RegistrationList")}, 400, 403)},
	{method: "DELETE", path: "/registrations/{id}", id: "deleteRegistration", tag: "registrations", summary: "Remove a binding",
		desc: "Admin with registrations:write, or the AoR's user with profile:write. Works like a REGISTER with expires=0.",
		auth: authAny, idDesc: "binding id",
		responses: resp(map[string]any{"204": noContent("removed")}, 403, 404)},
}

func jwksResponses() map[string]any {
	return map[string]any{
		"200": answer("the public keys that sign access tokens", "JWKS", "Cache-Control", "ETag"),
		"304": noContent("the key set matches If-None-Match"),
	}
}

var pathParamRE = regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`)

// operation builds the OpenAPI operation object of o.
func (o apiOp) operation() map[string]any {
	m := map[string]any{"operationId": o.id, "summary": o.summary, "tags": []any{o.tag}}
	if o.desc != "" {
		m["description"] = o.desc
	}
	var params []any
	for _, sm := range pathParamRE.FindAllStringSubmatch(o.path, -1) {
		params = append(params, map[string]any{"name": sm[1], "in": "path", "required": true,
			"description": o.idDesc, "schema": str()})
	}
	params = append(params, o.query...)
	if len(params) > 0 {
		m["parameters"] = params
	}
	responses := map[string]any{}
	for k, v := range o.responses {
		responses[k] = v
	}
	add := func(codes ...int) {
		for _, c := range codes {
			if _, ok := responses[strconv.Itoa(c)]; !ok {
				responses[strconv.Itoa(c)] = ref("responses", errorResponses[c])
			}
		}
	}
	if o.body != "" {
		m["requestBody"] = map[string]any{"required": !o.bodyOptional, "content": jsonContent(schemaRef(o.body))}
		add(400, 413, 415, 500)
	}
	switch o.auth {
	case authNone:
		m["security"] = []any{}
	case authBearer:
		m["security"] = []any{map[string]any{"bearerAuth": []any{}}}
		add(401, 503, 500)
	case authAny:
		m["security"] = []any{map[string]any{"bearerAuth": []any{}}, map[string]any{"apiKeyAuth": []any{}}}
		add(401, 503, 500)
	}
	m["responses"] = responses
	return m
}

// openAPIDocument builds the OpenAPI 3.1 document of the operations whose
// route keep accepts (nil: all of them).
func openAPIDocument(version string, keep func(Route) bool) map[string]any {
	if version == "" {
		version = "dev"
	}
	paths := map[string]any{}
	for _, o := range openAPIOps {
		if keep != nil && !keep(Route{Method: o.method, Path: o.path}) {
			continue
		}
		item, _ := paths[o.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[o.path] = item
		}
		item[strings.ToLower(o.method)] = o.operation()
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "users-core",
			"version": version,
			"description": "SIP registrar and identity service: tokens, users, API keys, registrations and the audit trail. " +
				"Errors are {\"error\":{\"code\",\"message\"}}; request bodies are JSON, at most 64 KiB, and unknown fields are refused.",
		},
		"tags": []any{
			map[string]any{"name": "auth", "description": "login, token refresh and logout"},
			map[string]any{"name": "keys", "description": "token signing keys and issuer metadata"},
			map[string]any{"name": "users", "description": "user administration and self-service"},
			map[string]any{"name": "api-keys", "description": "long-lived credentials sent in X-API-Key"},
			map[string]any{"name": "registrations", "description": "current SIP bindings"},
			map[string]any{"name": "audit", "description": "the audit trail"},
			map[string]any{"name": "service", "description": "health, readiness, metrics and this document"},
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearerAuth": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
					"description": "an access token from /auth/login or /auth/refresh (audience rvoip-api)"},
				"apiKeyAuth": map[string]any{"type": "apiKey", "in": "header", "name": "X-API-Key",
					"description": "an API key (ucak_...); its scopes are intersected with its owner's roles"},
			},
			"headers":   openAPIHeaders(),
			"responses": openAPIResponses(),
			"schemas":   openAPISchemas(),
		},
	}
}

func openAPIHeaders() map[string]any {
	h := func(desc string, schema map[string]any) map[string]any {
		return map[string]any{"description": desc, "schema": schema}
	}
	return map[string]any{
		"WWW-Authenticate": h(`the Bearer challenge, such as Bearer realm="users-core", error="invalid_token"`, str()),
		"Retry-After":      h("seconds to wait before trying again", map[string]any{"type": "integer", "minimum": 0}),
		"Location":         h("path of the created resource", str()),
		"ETag":             h("strong entity tag of the answer", str()),
		"Cache-Control":    h("caching directives", str()),
		"Pragma":           h("no-cache (RFC 6749 section 5.1)", str()),
	}
}

func openAPIResponses() map[string]any {
	e := func(desc string, headers map[string]any) map[string]any {
		m := map[string]any{"description": desc, "content": jsonContent(schemaRef("Error"))}
		if headers != nil {
			m["headers"] = headers
		}
		return m
	}
	return map[string]any{
		"BadRequest": e("BAD_REQUEST: malformed JSON, a wrong type, an unknown field or invalid input; "+
			"field names the input at fault when known", nil),
		"Unauthorized": map[string]any{
			"description": "UNAUTHORIZED: missing, invalid, expired or revoked credentials",
			"headers": map[string]any{"WWW-Authenticate": map[string]any{
				"description": "the Bearer challenge", "required": true, "schema": str()}},
			"content": jsonContent(schemaRef("Error")),
		},
		"InvalidCredentials":   e("INVALID_CREDENTIALS: wrong password, unknown user or disabled user (not told apart)", nil),
		"Forbidden":            e("FORBIDDEN: authenticated but not allowed", nil),
		"NotFound":             e("NOT_FOUND: no such resource", nil),
		"Conflict":             e("CONFLICT: a unique value is taken, or the change would leave no active admin", nil),
		"PayloadTooLarge":      e("PAYLOAD_TOO_LARGE: the body is larger than 64 KiB", nil),
		"UnsupportedMediaType": e("UNSUPPORTED_MEDIA_TYPE: the body is not application/json", nil),
		"AccountLocked": e("ACCOUNT_LOCKED: too many failed logins for this username or address",
			map[string]any{"Retry-After": map[string]any{"description": "seconds until the lock ends", "required": true,
				"schema": map[string]any{"type": "integer", "minimum": 0}}}),
		"Unavailable": e("UNAVAILABLE: the server is busy or a dependency (such as the token keys) is unavailable; try again",
			map[string]any{"Retry-After": ref("headers", "Retry-After")}),
		"InternalError": e("INTERNAL_ERROR: an unexpected failure (details are logged, never sent)", nil),
	}
}

func openAPISchemas() map[string]any {
	dt := func(desc string) map[string]any {
		m := strFmt("date-time")
		if desc != "" {
			m["description"] = desc
		}
		return m
	}
	roles := map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": []any{"admin", "user"}}}
	return map[string]any{
		"Error": object("the error body of every failed request", []string{"error"}, map[string]any{
			"error": object("", []string{"code", "message"}, map[string]any{
				"code":    strDesc("stable machine-readable code, such as BAD_REQUEST or UNAUTHORIZED"),
				"message": strDesc("human-readable, safe to show"),
				"field":   strDesc("the input field at fault, for some BAD_REQUEST answers"),
			}),
		}),

		"LoginRequest": request("", []string{"username", "password"}, map[string]any{
			"username": str(),
			"password": map[string]any{"type": "string", "format": "password"},
		}),
		"RefreshRequest": request("", []string{"refresh_token"}, map[string]any{
			"refresh_token": strDesc("the refresh token of the last login or refresh"),
		}),
		"LogoutRequest": request("optional; without refresh_token every family of the caller is revoked", nil, map[string]any{
			"refresh_token": strDesc("revoke only this token's family"),
		}),
		"TokenResponse": object("", []string{"access_token", "refresh_token", "token_type", "expires_in"}, map[string]any{
			"access_token":  strDesc("a JWT (RS256, typ at+jwt)"),
			"refresh_token": strDesc("an opaque refresh token (ucrt_...)"),
			"token_type":    map[string]any{"type": "string", "const": "Bearer"},
			"expires_in":    integer("seconds until the access token expires"),
		}),

		"User": object("a user; never a hash or an HA1",
			[]string{"id", "username", "email", "display_name", "roles", "active", "token_only", "created_at", "updated_at", "last_login_at"},
			map[string]any{
				"id":            str(),
				"username":      str(),
				"email":         str(),
				"display_name":  str(),
				"roles":         roles,
				"active":        boolean("false: the user cannot log in or register"),
				"token_only":    boolean("true: SIP Digest is refused; only bearer tokens register"),
				"created_at":    dt(""),
				"updated_at":    dt(""),
				"last_login_at": nullable("string", "date-time", "null until the first login"),
			}),
		"UserList": object("", []string{"users", "next_cursor"}, map[string]any{
			"users":       arrayOf("User"),
			"next_cursor": strDesc("cursor of the next page; empty on the last page"),
		}),
		"CreateUserRequest": request("", []string{"username"}, map[string]any{
			"username":     str(),
			"password":     map[string]any{"type": "string", "format": "password", "description": "checked against the password policy"},
			"email":        str(),
			"display_name": str(),
			"roles":        strArray("admin and/or user; empty means user"),
			"active":       nullable("boolean", "", "false creates the user disabled; absent or null means true"),
			"token_only":   boolean("refuse SIP Digest; only bearer tokens register"),
		}),
		"UpdateUserRequest": request("absent or null fields are left unchanged", nil, map[string]any{
			"email":        nullable("string", "", ""),
			"display_name": nullable("string", "", ""),
			"active":       nullable("boolean", "", "admins only"),
		}),
		"PasswordRequest": request("", []string{"new_password"}, map[string]any{
			"old_password": map[string]any{"type": "string", "format": "password", "description": "required to change your own password"},
			"new_password": map[string]any{"type": "string", "format": "password"},
		}),
		"RolesRequest": request("", []string{"roles"}, map[string]any{
			"roles": strArray("the new roles: admin and/or user"),
		}),

		"APIKey": object("an API key; the secret only in the answer to its creation",
			[]string{"id", "user_id", "name", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at", "status"},
			map[string]any{
				"id":           strDesc("the public 12-character key id"),
				"user_id":      str(),
				"name":         str(),
				"scopes":       strArray(""),
				"created_at":   dt(""),
				"expires_at":   nullable("string", "date-time", "null: never expires"),
				"last_used_at": nullable("string", "date-time", "recorded in batches, so it may lag"),
				"revoked_at":   nullable("string", "date-time", ""),
				"status":       strDesc("active, expired or revoked"),
				"key":          strDesc("the key itself (ucak_...), only in the answer to its creation; store it now"),
			}),
		"APIKeyList": object("", []string{"api_keys"}, map[string]any{"api_keys": arrayOf("APIKey")}),
		"CreateAPIKeyRequest": request("", []string{"name"}, map[string]any{
			"name":               strDesc("1 to 64 printable characters, unique among the owner's unrevoked keys"),
			"scopes":             strArray("users:read, users:write, apikeys:read, apikeys:write, registrations:read, registrations:write, audit:read, profile:read, profile:write or admin"),
			"expires_in_seconds": map[string]any{"type": "integer", "format": "int64", "minimum": 0, "description": "lifetime; 0 or absent: never expires"},
		}),

		"AuditEvent": object("", []string{"id", "time", "action", "actor", "subject", "source", "outcome", "detail"}, map[string]any{
			"id":      integer(""),
			"time":    dt(""),
			"action":  strDesc("such as login.failed or user.created"),
			"actor":   strDesc("user id of who acted; empty for anonymous"),
			"subject": str(),
			"source":  strDesc("client address"),
			"outcome": map[string]any{"type": "string", "enum": []any{"success", "failure"}},
			"detail":  str(),
		}),
		"AuditList": object("", []string{"events", "next_cursor"}, map[string]any{
			"events":      arrayOf("AuditEvent"),
			"next_cursor": strDesc("cursor of the next (older) page; empty on the last page"),
		}),

		"Registration": object("one binding of an AoR",
			[]string{"id", "aor", "contact", "expires_at", "expires", "source", "transport", "local_addr", "user_agent", "node", "created_at", "updated_at"},
			map[string]any{
				"id":         str(),
				"aor":        str(),
				"contact":    str(),
				"expires_at": dt(""),
				"expires":    map[string]any{"type": "integer", "description": "seconds left"},
				"source":     strDesc("address the REGISTER came from"),
				"transport":  str(),
				"local_addr": str(),
				"user_agent": str(),
				"instance":   strDesc("+sip.instance (RFC 5626), when given"),
				"reg_id":     map[string]any{"type": "integer", "description": "reg-id (RFC 5626), when given"},
				"path":       strArray("Path header values (RFC 3327), when given"),
				"node":       strDesc("the node holding the client's flow"),
				"created_at": dt(""),
				"updated_at": dt(""),
			}),
		"RegistrationList": object("", []string{"aor", "registrations"}, map[string]any{
			"aor":           str(),
			"registrations": arrayOf("Registration"),
		}),

		"JWK": object("an RSA public key (RFC 7517)", []string{"kty"}, map[string]any{
			"kty": strDesc("RSA"),
			"use": strDesc("sig"),
			"alg": strDesc("RS256"),
			"kid": str(),
			"n":   strDesc("modulus, base64url"),
			"e":   strDesc("exponent, base64url"),
		}),
		"JWKS": object("a JWK Set (RFC 7517 section 5)", []string{"keys"}, map[string]any{"keys": arrayOf("JWK")}),
		"Discovery": object("authorization server metadata (RFC 8414)",
			[]string{"issuer", "jwks_uri", "token_endpoint", "grant_types_supported", "response_types_supported",
				"token_endpoint_auth_methods_supported", "scopes_supported", "id_token_signing_alg_values_supported"},
			map[string]any{
				"issuer":                                str(),
				"jwks_uri":                              strFmt("uri"),
				"token_endpoint":                        strFmt("uri"),
				"grant_types_supported":                 strArray(""),
				"response_types_supported":              strArray(""),
				"token_endpoint_auth_methods_supported": strArray(""),
				"scopes_supported":                      strArray(""),
				"id_token_signing_alg_values_supported": strArray(""),
			}),

		"Health": object("", []string{"status", "version", "uptime_seconds"}, map[string]any{
			"status":         map[string]any{"type": "string", "const": "ok"},
			"version":        str(),
			"uptime_seconds": integer(""),
		}),
		"ReadyStatus": object("", []string{"status"}, map[string]any{
			"status": map[string]any{"type": "string", "enum": []any{"ready", "unavailable"}},
			"reason": strDesc("when unavailable: every failing part"),
		}),
	}
}
