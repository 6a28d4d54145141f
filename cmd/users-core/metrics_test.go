package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
	"github.com/rvoip/users-core/sip"
)

// scrape fetches GET /metrics and parses the Prometheus text format.
func scrape(t testing.TB, m *Main) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + m.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics is not Prometheus text: %v", err)
	}
	return fams
}

// sample returns the value of the series of name whose labels are exactly
// labels (alternating names and values): a counter's or gauge's value, a
// histogram's sample count. ok is false when there is no such series.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if w, ok := want[l.GetName()]; !ok || w != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// scrapeUntil scrapes until ready(fams) holds, for at most 5 seconds,
// and returns the last scrape: the registrar counts a REGISTER just after
// sending its answer, so a client can see the answer first.
func scrapeUntil(t testing.TB, m *Main, ready func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		fams := scrape(t, m)
		if ready(fams) || time.Now().After(deadline) {
			return fams
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// total sums every series of a counter family.
func total(fams map[string]*dto.MetricFamily, name string) float64 {
	var n float64
	for _, m := range fams[name].GetMetric() {
		n += m.GetCounter().GetValue()
	}
	return n
}

// wantSample fails unless the series exists with value want.
func wantSample(t testing.TB, fams map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := sample(fams, name, labels...)
	if !ok {
		t.Errorf("no series %s%v", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func TestMetricsCountLoginsTokensAndHTTPRequests(t *testing.T) {
	m := startMain(t, t.TempDir(), func(c *Config) {
		c.UsersCore.Lockout.UserMaxFailures = 2
		c.UsersCore.JWT.RefreshGraceSeconds = 0
	})
	addUser(t, m, "alice")

	status, _, pair := login(t, m, "alice", alicePassword)
	if status != 200 {
		t.Fatalf("login: %d %v", status, pair)
	}
	rt1 := pair["refresh_token"].(string)
	if status, _, _ := call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": rt1}); status != 200 {
		t.Fatalf("refresh: %d", status)
	}
	time.Sleep(5 * time.Millisecond) // past the (zero) grace window
	if status, _, _ := call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": rt1}); status != 401 {
		t.Fatalf("reused refresh token: %d", status)
	}
	if status, _, _ := call(t, m, "POST", "/auth/logout", nil, "Authorization", "Bearer "+pair["access_token"].(string)); status != 204 {
		t.Fatalf("logout: %d", status)
	}
	if status, _, _ := call(t, m, "POST", "/auth/logout", nil, "Authorization", "Bearer x.y.z"); status != 401 {
		t.Fatalf("logout with a bad token: %d", status)
	}
	for i, want := range []int{401, 401, 429} { // the second failure locks alice
		if status, _, _ := login(t, m, "alice", "wrong password, try "+string(rune('0'+i))); status != want {
			t.Fatalf("bad login %d: %d, want %d", i, status, want)
		}
	}
	call(t, m, "GET", "/no/such/secret-path-alice", nil)

	fams := scrape(t, m)
	wantSample(t, fams, 1, "users_core_logins_total", "result", "success")
	wantSample(t, fams, 2, "users_core_logins_total", "result", "failure")
	wantSample(t, fams, 1, "users_core_logins_total", "result", "locked")
	wantSample(t, fams, 1, "users_core_lockouts_total", "protocol", "http")
	wantSample(t, fams, 1, "users_core_tokens_issued_total", "grant", "login")
	wantSample(t, fams, 1, "users_core_tokens_issued_total", "grant", "refresh")
	wantSample(t, fams, 1, "users_core_token_refresh_reuse_total")
	wantSample(t, fams, 1, "users_core_token_verifications_total", "protocol", "http", "result", "ok")
	wantSample(t, fams, 1, "users_core_token_verifications_total", "protocol", "http", "result", string(jwks.ReasonMalformed))

	login := []string{"route", "/auth/login", "method", "POST"}
	wantSample(t, fams, 1, "users_core_http_requests_total", append(login, "status", "200")...)
	wantSample(t, fams, 2, "users_core_http_requests_total", append(login, "status", "401")...)
	wantSample(t, fams, 1, "users_core_http_requests_total", append(login, "status", "429")...)
	wantSample(t, fams, 4, "users_core_http_request_duration_seconds", login...)
	wantSample(t, fams, 1, "users_core_http_requests_total", "route", "/auth/logout", "method", "POST", "status", "204")
	wantSample(t, fams, 1, "users_core_http_requests_total", "route", "/", "method", "GET", "status", "404")

	if runs, _ := sample(fams, "users_core_argon2_runs_total"); runs < 3 {
		t.Errorf("argon2_runs_total = %v after three password checks", runs)
	}
	for _, name := range []string{"users_core_argon2_in_flight", "users_core_argon2_queued",
		"users_core_argon2_queue_wait_seconds_total", "users_core_sip_bindings_active",
		"users_core_audit_events_dropped_total", "go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := sample(fams, name); !ok {
			t.Errorf("no %s", name)
		}
	}
	wantSample(t, fams, 1, "users_core_signing_keys", "state", "active")
	wantSample(t, fams, 1, "users_core_build_info", "version", Version())

	t.Run("no raw path, username or address becomes a label", func(t *testing.T) {
		for name, f := range fams {
			for _, s := range f.GetMetric() {
				for _, l := range s.GetLabel() {
					if v := l.GetValue(); strings.Contains(v, "secret-path") || strings.Contains(v, "alice") || strings.Contains(v, "127.0.0.1") {
						t.Errorf("%s has label %s=%q", name, l.GetName(), v)
					}
				}
			}
		}
	})
}

func TestMetricsCountSIPRegisters(t *testing.T) {
	m := sipMain(t, t.TempDir())
	addUser(t, m, "alice")
	if res := newPhone(t, m, "UDP", "alice").registerDigest(identity.SHA256, alicePassword, 600); res.StatusCode != 200 {
		t.Fatalf("UDP REGISTER: %d", res.StatusCode)
	}
	if res := newPhone(t, m, "TCP", "alice").registerDigest(identity.SHA256, "not alice's password", 600); res.StatusCode != 401 {
		t.Fatalf("TCP REGISTER with a wrong password: %d", res.StatusCode)
	}

	fams := scrapeUntil(t, m, func(f map[string]*dto.MetricFamily) bool {
		return total(f, "users_core_sip_register_total") >= 4
	})
	wantSample(t, fams, 1, "users_core_sip_register_total", "transport", "udp", "scheme", "none", "result", "challenge")
	wantSample(t, fams, 1, "users_core_sip_register_total", "transport", "udp", "scheme", "digest", "result", "ok")
	wantSample(t, fams, 1, "users_core_sip_register_total", "transport", "tcp", "scheme", "none", "result", "challenge")
	wantSample(t, fams, 1, "users_core_sip_register_total", "transport", "tcp", "scheme", "digest", "result", "auth_failed")
	wantSample(t, fams, 1, "users_core_sip_bindings_active")
	wantSample(t, fams, 0, "users_core_lockouts_total", "protocol", "sip")
}

// getJSON sends GET path and returns the status and decoded body.
func getJSON(t testing.TB, m *Main, path string) (int, map[string]any) {
	t.Helper()
	status, _, body := call(t, m, "GET", path, nil)
	return status, body
}

func TestReadyReportsTheDatabaseAndHealthStaysLive(t *testing.T) {
	m := sipMain(t, t.TempDir())
	if status, body := getJSON(t, m, "/ready"); status != 200 || body["status"] != "ready" {
		t.Fatalf("GET /ready on a healthy server: %d %v", status, body)
	}
	if err := m.app.Store.Close(); err != nil {
		t.Fatal(err)
	}
	status, body := getJSON(t, m, "/ready")
	if status != 503 || body["status"] != "unavailable" || body["reason"] != "database unreachable" {
		t.Fatalf("GET /ready with the database closed: %d %v", status, body)
	}
	if status, body := getJSON(t, m, "/health"); status != 200 || body["status"] != "ok" {
		t.Fatalf("GET /health is liveness only, yet: %d %v", status, body)
	}
}

type fakeKeys []jwks.KeyInfo

func (k fakeKeys) Keys() []jwks.KeyInfo { return k }

func TestReadinessNamesEveryFailingPart(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := defaultConfig().UsersCore
	cfg.APIBindAddress = "127.0.0.1:0"
	cfg.SIP.UDP, cfg.SIP.TCP, cfg.SIP.WS = "127.0.0.1:0", "off", "off"
	dbDown := func(context.Context) error { return errors.New("sql: database is closed") }
	dbUp := func(context.Context) error { return nil }
	future := now.Add(time.Hour)

	for _, tc := range []struct {
		name  string
		ping  func(context.Context) error
		keys  fakeKeys
		bound map[string]string
		want  string
	}{
		{"ready", dbUp, fakeKeys{{State: jwks.StateActive}}, map[string]string{"http": "a", "sip_udp": "b"}, ""},
		{"a next key past its activation time signs", dbUp, fakeKeys{{State: jwks.StateNext, ActivateAt: now}}, map[string]string{"http": "a", "sip_udp": "b"}, ""},
		{"before the listeners are bound", dbUp, fakeKeys{{State: jwks.StateActive}}, nil, "listeners not up: http, sip_udp"},
		{"everything down", dbDown, fakeKeys{{State: jwks.StateRetired}, {State: jwks.StateNext, ActivateAt: future}},
			map[string]string{"http": "a"}, "listeners not up: sip_udp; database unreachable; no signing key loaded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReadiness(cfg, tc.ping, tc.keys, zerolog.Nop())
			r.now = func() time.Time { return now }
			r.listening(tc.bound)
			err := r.check(context.Background())
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("check = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRegisterResultsAreAFixedSet(t *testing.T) {
	for _, tc := range []struct {
		out  sip.RegisterOutcome
		want string
	}{
		{sip.RegisterOutcome{Status: 200}, "ok"},
		{sip.RegisterOutcome{Status: 401, Reason: "challenge"}, "challenge"},
		{sip.RegisterOutcome{Status: 401, Reason: "stale nonce"}, "challenge"},
		{sip.RegisterOutcome{Status: 401, AuthFailed: true}, "auth_failed"},
		{sip.RegisterOutcome{Status: 403, Reason: "locked", AuthFailed: true}, "locked"},
		{sip.RegisterOutcome{Status: 403, Reason: "credentials for another AoR"}, "forbidden"},
		{sip.RegisterOutcome{Status: 404}, "not_found"},
		{sip.RegisterOutcome{Status: 423}, "interval_too_brief"},
		{sip.RegisterOutcome{Status: 420}, "bad_request"},
		{sip.RegisterOutcome{Status: 400}, "bad_request"},
		{sip.RegisterOutcome{Status: 500}, "server_error"},
		{sip.RegisterOutcome{Status: 503}, "unavailable"},
		{sip.RegisterOutcome{Status: 302}, "other"},
	} {
		if got := registerResult(tc.out); got != tc.want {
			t.Errorf("registerResult(%d %q) = %q, want %q", tc.out.Status, tc.out.Reason, got, tc.want)
		}
	}
	for in, want := range map[string]string{"UDP": "udp", "WSS": "wss", "SCTP": "other", "x\"y": "other"} {
		if got := transportLabel(in); got != want {
			t.Errorf("transportLabel(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"GET": "GET", "PROPFIND": "other", "get": "other"} {
		if got := methodLabel(in); got != want {
			t.Errorf("methodLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEventsAndOutcomesReachEveryReceiver(t *testing.T) {
	var a, b, c int
	hub := &eventHub{}
	hub.Emit(identity.Event{}) // nothing attached yet: dropped
	hub.attach(multiSink(nil, identity.EventFunc(func(identity.Event) { a++ }), identity.EventFunc(func(identity.Event) { b++ })))
	hub.Emit(identity.Event{Action: identity.ActionLogout})
	if a != 1 || b != 1 {
		t.Fatalf("events reached a %d and b %d times, want 1 each", a, b)
	}
	if chainOutcomes(nil, nil) != nil {
		t.Fatal("chainOutcomes of nothing is not nil")
	}
	chainOutcomes(nil, func(sip.RegisterOutcome) { c++ }, func(sip.RegisterOutcome) { c++ })(sip.RegisterOutcome{})
	if c != 2 {
		t.Fatalf("outcome reached %d receivers, want 2", c)
	}
}
