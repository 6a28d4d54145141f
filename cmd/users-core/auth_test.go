package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
)

// startMain runs the real Main in-process on port 0 over dataDir, with
// small Argon2id parameters, and stops it at the end of the test.
func startMain(t testing.TB, dataDir string, mutate ...func(*Config)) *Main {
	t.Helper()
	cfg := defaultConfig()
	cfg.UsersCore.DataDir = dataDir
	cfg.UsersCore.APIBindAddress = "127.0.0.1:0"
	sc := &cfg.UsersCore.SIP
	sc.UDP, sc.TCP, sc.WS = "off", "off", "off"
	smallArgon2(&cfg)
	for _, m := range mutate {
		m(&cfg)
	}
	if err := cfg.finish(); err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: cfg, Logger: zerolog.Nop(), Notice: io.Discard}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// call sends method path with a JSON body (nil for none) and optional
// headers (alternating names and values) and returns status, headers and
// the decoded body.
func call(t testing.TB, m *Main, method, path string, body any, headers ...string) (int, http.Header, map[string]any) {
	t.Helper()
	return callAt(t, m.HTTPAddr(), method, path, body, headers...)
}

// callAt is call on the HTTP listener at addr (a serve process's).
func callAt(t testing.TB, addr, method, path string, body any, headers ...string) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
		}
	}
	return resp.StatusCode, resp.Header, out
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func addUser(t testing.TB, m *Main, name string, roles ...identity.Role) *identity.User {
	t.Helper()
	u, err := m.app.Users.CreateUser(context.Background(), identity.NewUser{Username: name, Password: alicePassword, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func login(t testing.TB, m *Main, user, password string, headers ...string) (int, http.Header, map[string]any) {
	t.Helper()
	return call(t, m, "POST", "/auth/login", map[string]string{"username": user, "password": password}, headers...)
}

func TestLoginIssuesTokensOthersCanVerify(t *testing.T) {
	m := startMain(t, t.TempDir())
	u := addUser(t, m, "alice")
	status, hdr, body := login(t, m, "alice", alicePassword)
	if status != 200 || body["token_type"] != "Bearer" || body["expires_in"] != float64(900) {
		t.Fatalf("login: %d %v", status, body)
	}
	if hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("token response Cache-Control %q", hdr.Get("Cache-Control"))
	}
	access := body["access_token"].(string)
	if rt := body["refresh_token"].(string); !strings.HasPrefix(rt, identity.RefreshTokenPrefix) || strings.Count(rt, ".") != 0 {
		t.Fatalf("refresh token %q is not opaque", rt)
	}

	t.Run("a verifier configured as a remote trusted issuer accepts it", func(t *testing.T) {
		src := jwks.NewRemoteKeySource(jwks.RemoteConfig{
			Issuer:  m.Config.UsersCore.JWT.Issuer,
			JWKSURI: "http://" + m.HTTPAddr() + "/.well-known/jwks.json",
		})
		v, err := jwks.NewVerifier(jwks.VerifierConfig{Issuers: []jwks.IssuerConfig{{
			Name: "remote", Issuer: m.Config.UsersCore.JWT.Issuer, Audience: "rvoip-sip", Keys: src,
		}}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(context.Background(), access)
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject != u.ID || c.Username != "alice" || !c.HasScope(identity.ScopeSIPRegister) {
			t.Fatalf("claims: %+v", c)
		}
	})

	t.Run("crypto/rsa verifies it with n and e from the JWKS document", func(t *testing.T) {
		resp, err := http.Get("http://" + m.HTTPAddr() + "/auth/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Keys []map[string]string `json:"keys"`
		}
		json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if resp.Header.Get("Cache-Control") != "public, max-age=300" || resp.Header.Get("ETag") == "" {
			t.Errorf("JWKS headers: %v", resp.Header)
		}
		parts := strings.Split(access, ".")
		hdrJSON, _ := base64.RawURLEncoding.DecodeString(parts[0])
		var h map[string]string
		json.Unmarshal(hdrJSON, &h)
		if h["alg"] != "RS256" || h["typ"] != "at+jwt" {
			t.Fatalf("header %v", h)
		}
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		for _, k := range doc.Keys {
			if k["kid"] != h["kid"] {
				continue
			}
			if k["kty"] != "RSA" || k["use"] != "sig" || k["alg"] != "RS256" {
				t.Fatalf("JWK %v", k)
			}
			n, _ := base64.RawURLEncoding.DecodeString(k["n"])
			e, _ := base64.RawURLEncoding.DecodeString(k["e"])
			pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatalf("kid %s not in JWKS", h["kid"])
	})

	t.Run("discovery names the issuer and the JWKS", func(t *testing.T) {
		status, _, body := call(t, m, "GET", "/.well-known/openid-configuration", nil)
		if status != 200 || body["issuer"] != "https://users.rvoip.local" ||
			body["jwks_uri"] != "http://"+m.HTTPAddr()+"/auth/jwks.json" || body["token_endpoint"] == nil {
			t.Fatalf("discovery: %d %v", status, body)
		}
	})
}

func TestTokensSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	m := startMain(t, dir)
	addUser(t, m, "alice")
	_, _, body := login(t, m, "alice", alicePassword)
	kids := m.Keyring().Keys()
	m.Close()

	m = startMain(t, dir)
	if got := m.Keyring().Keys(); len(got) != len(kids) || got[0].KID != kids[0].KID {
		t.Fatalf("keys after restart %v, before %v", got, kids)
	}
	status, _, _ := call(t, m, "POST", "/auth/logout", nil, "Authorization", "Bearer "+body["access_token"].(string))
	if status != 204 {
		t.Fatalf("a token issued before the restart: logout %d", status)
	}
	status, _, _ = call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": body["refresh_token"].(string)})
	if status != 401 {
		t.Fatalf("refresh after logout: %d", status)
	}
}

func TestRefreshRotatesAndDetectsReuse(t *testing.T) {
	m := startMain(t, t.TempDir(), func(c *Config) { c.UsersCore.JWT.RefreshGraceSeconds = 0 })
	addUser(t, m, "alice")
	_, _, first := login(t, m, "alice", alicePassword)
	rt1 := first["refresh_token"].(string)

	status, _, second := call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": rt1})
	if status != 200 || second["refresh_token"] == rt1 {
		t.Fatalf("refresh did not rotate: %d %v", status, second)
	}
	rt2 := second["refresh_token"].(string)
	time.Sleep(5 * time.Millisecond) // past the (zero) grace window

	status, hdr, body := call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": rt1})
	if status != 401 || !strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("reused token: %d %v", status, body)
	}
	status, _, _ = call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": rt2})
	if status != 401 {
		t.Fatalf("the successor survived reuse detection: %d", status)
	}

	t.Run("another login's family is untouched", func(t *testing.T) {
		_, _, other := login(t, m, "alice", alicePassword)
		status, _, _ := call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": other["refresh_token"].(string)})
		if status != 200 {
			t.Fatalf("%d", status)
		}
	})
}

func TestRefreshGraceWindowReturnsTheSameSuccessor(t *testing.T) {
	m := startMain(t, t.TempDir())
	addUser(t, m, "alice")
	_, _, first := login(t, m, "alice", alicePassword)
	rt1 := first["refresh_token"].(string)
	_, _, a := call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": rt1})
	status, _, b := call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": rt1})
	if status != 200 || a["refresh_token"] != b["refresh_token"] {
		t.Fatalf("retry in the grace window: %d, successors %v vs %v", status, a["refresh_token"], b["refresh_token"])
	}
	status, _, _ = call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": a["refresh_token"].(string)})
	if status != 200 {
		t.Fatalf("the successor does not refresh: %d", status)
	}
}

func TestPasswordChangeAndDisableRevokeRefreshTokens(t *testing.T) {
	m := startMain(t, t.TempDir())
	u := addUser(t, m, "alice")
	_, _, a := login(t, m, "alice", alicePassword)
	if err := m.app.Users.SetPassword(context.Background(), u.ID, alicePassword+" v2", nil); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": a["refresh_token"].(string)}); status != 401 {
		t.Fatalf("refresh after password change: %d", status)
	}
	_, _, b := login(t, m, "alice", alicePassword+" v2")
	if _, err := m.app.Users.SetActive(context.Background(), u.ID, false); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": b["refresh_token"].(string)}); status != 401 {
		t.Fatalf("refresh after disable: %d", status)
	}
	if status, _, _ := call(t, m, "POST", "/auth/logout", nil, "Authorization", "Bearer "+b["access_token"].(string)); status != 401 {
		t.Fatalf("a disabled user's access token still authenticates: %d", status)
	}
}

func TestLoginFailuresAreIndistinguishableAndLock(t *testing.T) {
	dir := t.TempDir()
	m := startMain(t, dir)
	addUser(t, m, "alice")
	_, err := m.app.Users.CreateUser(context.Background(), identity.NewUser{Username: "off", Password: alicePassword, Disabled: true})
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, c := range [][2]string{{"nobody", alicePassword}, {"off", alicePassword}, {"alice", "wrong password here"}} {
		status, _, body := login(t, m, c[0], c[1])
		if status != 401 || errCode(body) != "INVALID_CREDENTIALS" {
			t.Fatalf("%s: %d %v", c[0], status, body)
		}
		bodies = append(bodies, fmt.Sprint(body))
	}
	if bodies[0] != bodies[1] || bodies[1] != bodies[2] {
		t.Fatalf("failure bodies differ: %v", bodies)
	}

	for i := 0; i < 4; i++ { // 1 failure above + 4 = 5 in the window
		login(t, m, "alice", "wrong password here")
	}
	status, hdr, body := login(t, m, "alice", alicePassword)
	if status != 429 || errCode(body) != "ACCOUNT_LOCKED" || hdr.Get("Retry-After") == "" {
		t.Fatalf("right password during the lock: %d %v %v", status, body, hdr)
	}
	m.Close()

	m = startMain(t, dir)
	if status, _, _ := login(t, m, "alice", alicePassword); status != 429 {
		t.Fatalf("the lock did not survive a restart: %d", status)
	}
	if status, _, _ := login(t, m, "ALICE", alicePassword); status != 429 {
		t.Fatalf("the lock does not cover another spelling of the username: %d", status)
	}
}

func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	tight := func(c *Config) { c.UsersCore.Lockout.AddrMaxFailures = 3; c.UsersCore.Lockout.UserMaxFailures = 0 }
	t.Run("an untrusted peer's X-Forwarded-For is ignored", func(t *testing.T) {
		m := startMain(t, t.TempDir(), tight)
		for i := 0; i < 3; i++ {
			login(t, m, fmt.Sprintf("user%d", i), "wrong password here", "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		}
		if status, _, _ := login(t, m, "someone", "wrong password here", "X-Forwarded-For", "203.0.113.99"); status != 429 {
			t.Fatalf("spoofed X-Forwarded-For escaped the address ban: %d", status)
		}
	})
	t.Run("a trusted proxy's X-Forwarded-For names the client", func(t *testing.T) {
		m := startMain(t, t.TempDir(), tight, func(c *Config) { c.UsersCore.HTTP.TrustedProxies = []string{"127.0.0.1"} })
		for i := 0; i < 3; i++ {
			login(t, m, "u", "wrong password here", "X-Forwarded-For", "198.51.100.7, 127.0.0.1")
		}
		if status, _, _ := login(t, m, "u", "wrong password here", "X-Forwarded-For", "198.51.100.7"); status != 429 {
			t.Fatalf("the forwarded client was not banned: %d", status)
		}
		if status, _, _ := login(t, m, "u", "wrong password here", "X-Forwarded-For", "198.51.100.8"); status != 401 {
			t.Fatalf("another forwarded client was banned too: %d", status)
		}
	})
}

func TestAuthRequestsAreValidated(t *testing.T) {
	m := startMain(t, t.TempDir())
	addr := "http://" + m.HTTPAddr()
	post := func(path, ctype, body string) (int, map[string]any) {
		resp, err := http.Post(addr+path, ctype, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	for _, c := range []struct {
		name, ctype, body string
		status            int
		code              string
	}{
		{"an unknown field", "application/json", `{"username":"a","password":"b","admin":true}`, 400, "BAD_REQUEST"},
		{"malformed JSON", "application/json", `{"username":`, 400, "BAD_REQUEST"},
		{"trailing data", "application/json", `{"username":"a","password":"b"} {}`, 400, "BAD_REQUEST"},
		{"a missing password", "application/json", `{"username":"a"}`, 400, "BAD_REQUEST"},
		{"a form body", "application/x-www-form-urlencoded", `username=a&password=b`, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"a body over 64 KiB", "application/json", `{"username":"` + strings.Repeat("a", 70<<10) + `","password":"b"}`, 413, "PAYLOAD_TOO_LARGE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := post("/auth/login", c.ctype, c.body)
			if status != c.status || errCode(body) != c.code {
				t.Fatalf("%d %v, want %d %s", status, body, c.status, c.code)
			}
		})
	}
	t.Run("a wrong method gets a JSON 405 with Allow", func(t *testing.T) {
		status, hdr, body := call(t, m, "GET", "/auth/login", nil)
		if status != 405 || errCode(body) != "METHOD_NOT_ALLOWED" || !strings.Contains(hdr.Get("Allow"), "POST") {
			t.Fatalf("%d %v %v", status, body, hdr)
		}
	})
	t.Run("logout without a token is 401 with WWW-Authenticate", func(t *testing.T) {
		status, hdr, _ := call(t, m, "POST", "/auth/logout", nil)
		if status != 401 || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%d %v", status, hdr)
		}
	})
	t.Run("a refresh token is not an access token", func(t *testing.T) {
		addUser(t, m, "rita")
		_, _, b := login(t, m, "rita", alicePassword)
		status, _, _ := call(t, m, "POST", "/auth/logout", nil, "Authorization", "Bearer "+b["refresh_token"].(string))
		if status != 401 {
			t.Fatalf("%d", status)
		}
	})
}

func TestCORS(t *testing.T) {
	t.Run("any origin by default", func(t *testing.T) {
		m := startMain(t, t.TempDir())
		status, hdr, _ := call(t, m, "OPTIONS", "/auth/login", nil, "Origin", "https://app.example.com", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
		if status != 204 || hdr.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(hdr.Get("Access-Control-Allow-Methods"), "POST") {
			t.Fatalf("preflight: %d %v", status, hdr)
		}
	})
	t.Run("configured origins only", func(t *testing.T) {
		m := startMain(t, t.TempDir(), func(c *Config) { c.UsersCore.HTTP.CORSOrigins = []string{"https://app.example.com"} })
		_, hdr, _ := call(t, m, "GET", "/auth/jwks.json", nil, "Origin", "https://app.example.com")
		if hdr.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
			t.Fatalf("allowed origin: %v", hdr)
		}
		_, hdr, _ = call(t, m, "GET", "/auth/jwks.json", nil, "Origin", "https://evil.example.com")
		if hdr.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("other origin allowed: %v", hdr)
		}
	})
}
