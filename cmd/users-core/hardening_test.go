package main

// Issue 6 edges: the scanner User-Agent drop list, headers answers echo,
// oversized messages, overload answers, SIP lockout events, and the HTTP
// listener's errors and headers. Real sockets on 127.0.0.1, port 0.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/rvoip/users-core/identity"
	usip "github.com/rvoip/users-core/sip"
)

// noAnswerWait is how long a test listens for an answer that must not
// come. The server drops such messages before any handler, or answers
// within milliseconds; a positive check follows each wait.
const noAnswerWait = time.Second

// rawRequest builds a request as raw bytes from local over transport,
// with extra header lines ({{LF}} becomes a bare LF, see assembleSIP).
func rawRequest(method, transport, local string, extra ...string) []byte {
	lines := []string{
		method + " sip:" + sipDomain + " SIP/2.0",
		"Via: SIP/2.0/" + transport + " " + local + ";rport;branch=z9hG4bK-" + randHex(8),
		"Max-Forwards: 70",
		"From: <sip:alice@" + sipDomain + ">;tag=" + randHex(4),
		"To: <sip:alice@" + sipDomain + ">",
		"Call-ID: " + randHex(8) + "@users-core.test",
		"CSeq: 1 " + method,
	}
	return assembleSIP(append(lines, extra...), nil)
}

// udpPeer is a raw UDP client of the registrar.
type udpPeer struct {
	t    testing.TB
	c    *net.UDPConn
	to   *net.UDPAddr
	addr string
}

func newUDPPeer(t testing.TB, m *Main) *udpPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	to, err := net.ResolveUDPAddr("udp", sipAddr(t, m, "udp"))
	if err != nil {
		t.Fatal(err)
	}
	return &udpPeer{t: t, c: c, to: to, addr: c.LocalAddr().String()}
}

// send writes raw and returns the first final answer within wait, or nil.
func (p *udpPeer) send(raw []byte, wait time.Duration) *sip.Response {
	p.t.Helper()
	if _, err := p.c.WriteToUDP(raw, p.to); err != nil {
		p.t.Fatal(err)
	}
	buf := make([]byte, 65535)
	deadline := time.Now().Add(wait)
	for {
		p.c.SetReadDeadline(deadline)
		n, _, err := p.c.ReadFromUDP(buf)
		if err != nil {
			return nil
		}
		msg, err := sip.ParseMessage(buf[:n])
		if err != nil {
			p.t.Fatalf("unparseable answer: %v\n%q", err, buf[:n])
		}
		if res, ok := msg.(*sip.Response); ok && res.StatusCode >= 200 {
			return res
		}
	}
}

// frame adds a top Via with a new branch (a new transaction),
// Max-Forwards and Content-Length to req and returns its bytes.
func (u *udpPeer) frame(req *sip.Request) []byte {
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1", Port: u.c.LocalAddr().(*net.UDPAddr).Port, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranch())
	req.PrependHeader(via)
	req.AppendHeader(sip.NewHeader("Max-Forwards", "70"))
	req.AppendHeader(sip.NewHeader("Content-Length", "0"))
	return []byte(req.String())
}

// exchange sends raw and returns the bytes of the answer.
func (u *udpPeer) exchange(raw []byte) string {
	u.t.Helper()
	if _, err := u.c.WriteToUDP(raw, u.to); err != nil {
		u.t.Fatal(err)
	}
	u.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65535)
	n, _, err := u.c.ReadFromUDP(buf)
	if err != nil {
		u.t.Fatal(err)
	}
	return string(buf[:n])
}

// tcpPeer is a raw TCP client of the registrar.
type tcpPeer struct {
	t    testing.TB
	conn net.Conn
	rd   *bufio.Reader
	addr string
}

func newTCPPeer(t testing.TB, m *Main) *tcpPeer {
	t.Helper()
	conn, err := net.Dial("tcp", sipAddr(t, m, "tcp"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &tcpPeer{t: t, conn: conn, rd: bufio.NewReader(conn), addr: conn.LocalAddr().String()}
}

// send writes raw and returns the next answer within wait, nil when none
// came, and the read error otherwise (io.EOF: the server closed).
func (p *tcpPeer) send(raw []byte, wait time.Duration) (*sip.Response, error) {
	p.t.Helper()
	if _, err := p.conn.Write(raw); err != nil {
		return nil, err
	}
	p.conn.SetReadDeadline(time.Now().Add(wait))
	var head strings.Builder
	length := 0
	for {
		line, err := p.rd.ReadString('\n')
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && head.Len() == 0 && line == "" {
				return nil, nil
			}
			return nil, err
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
		if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(p.rd, body); err != nil {
		return nil, err
	}
	msg, err := sip.ParseMessage(append([]byte(head.String()), body...))
	if err != nil {
		p.t.Fatalf("unparseable answer: %v\n%s", err, head.String())
	}
	return msg.(*sip.Response), nil
}

// filterDrops returns users_core_sip_filter_dropped_total{reason} once it
// reaches want (the counters are read at each scrape), for at most 5 s.
func filterDrops(t testing.TB, m *Main, reason string, want float64) float64 {
	t.Helper()
	fams := scrapeUntil(t, m, func(f map[string]*dto.MetricFamily) bool {
		v, _ := sample(f, "users_core_sip_filter_dropped_total", "reason", reason)
		return v >= want
	})
	v, ok := sample(fams, "users_core_sip_filter_dropped_total", "reason", reason)
	if !ok {
		t.Fatalf("no users_core_sip_filter_dropped_total{reason=%q}", reason)
	}
	return v
}

func TestScannerUserAgentsAreDroppedOnEveryTransport(t *testing.T) {
	if got := defaultConfig().UsersCore.SIP.DropUserAgents; len(got) != 0 {
		t.Fatalf("drop_user_agents defaults to %v, want empty", got)
	}
	m := sipMain(t, t.TempDir(), func(c *Config) {
		c.UsersCore.SIP.DropUserAgents = []string{"friendly-scanner", "sipvicious"}
	})

	t.Run("UDP, before parsing", func(t *testing.T) {
		p := newUDPPeer(t, m)
		if res := p.send(rawRequest("OPTIONS", "UDP", p.addr, "User-Agent: friendly-scanner"), noAnswerWait); res != nil {
			t.Fatalf("svmap's OPTIONS was answered: %d", res.StatusCode)
		}
		if res := p.send(rawRequest("REGISTER", "UDP", p.addr, "User-Agent: SIPVicious 0.3.4", "Contact: <sip:alice@"+p.addr+">"), noAnswerWait); res != nil {
			t.Fatalf("svwar's REGISTER was answered: %d", res.StatusCode)
		}
		if res := p.send(rawRequest("OPTIONS", "UDP", p.addr, "User-Agent: Linphone/5.2"), 5*time.Second); res == nil || res.StatusCode != 200 {
			t.Fatalf("a phone's OPTIONS from the same source: %v", res)
		}
	})
	t.Run("TCP, after parsing", func(t *testing.T) {
		p := newTCPPeer(t, m)
		res, err := p.send(rawRequest("REGISTER", "TCP", p.addr, "User-Agent: friendly-scanner", "Contact: <sip:alice@"+p.addr+";transport=tcp>"), noAnswerWait)
		if err != nil || res != nil {
			t.Fatalf("svwar's REGISTER over TCP: %v %v", res, err)
		}
		res, err = p.send(rawRequest("OPTIONS", "TCP", p.addr, "User-Agent: Linphone/5.2"), 5*time.Second)
		if err != nil || res == nil || res.StatusCode != 200 {
			t.Fatalf("a phone's OPTIONS on the same connection: %v %v", res, err)
		}
	})
	if got := filterDrops(t, m, "user_agent", 3); got != 3 {
		t.Errorf("user_agent drops = %v, want 3", got)
	}
	fams := scrape(t, m)
	for _, reason := range []string{"rate", "table_full", "unsafe_header"} {
		wantSample(t, fams, 0, "users_core_sip_filter_dropped_total", "reason", reason)
	}
	if v, _ := sample(fams, "users_core_sip_filter_passed_total"); v < 1 {
		t.Errorf("passed_total = %v, want the phone's datagram at least", v)
	}
	if v, ok := sample(fams, "users_core_sip_filter_sources"); !ok || v < 1 {
		t.Errorf("sip_filter_sources = %v (%v), want the phone's address", v, ok)
	}
	for _, name := range []string{"users_core_sip_udp_pool_entries", "users_core_sip_udp_transactions", "users_core_sip_udp_queue_full_total"} {
		if _, ok := sample(fams, name); !ok {
			t.Error("no " + name)
		}
	}
}

func TestAnswersNeverEchoAControlCharacter(t *testing.T) {
	m := sipMain(t, t.TempDir())
	// Over UDP the datagram is dropped before parsing (testdata/sip/38);
	// over TCP the parsed request is, before any handler.
	p := newTCPPeer(t, m)
	for i, bad := range []string{
		"Call-ID: abc{{LF}}X-Injected: yes",
		"From: <sip:alice@" + sipDomain + ">;tag=1{{LF}}X-Injected: yes",
		"Via: SIP/2.0/TCP " + p.addr + ";branch=z9hG4bK-" + randHex(8) + ";x=1{{LF}}X-Injected: yes",
	} {
		name, _, _ := strings.Cut(bad, ":")
		raw := string(rawRequest("OPTIONS", "TCP", p.addr))
		// Replace the header of that name, or add it.
		lines := strings.Split(raw, "\r\n")
		replaced := false
		for j, l := range lines {
			if strings.HasPrefix(l, name+":") {
				lines[j], replaced = bad, true
			}
		}
		if !replaced {
			lines = append(lines[:2], append([]string{bad}, lines[2:]...)...)
		}
		raw = strings.ReplaceAll(strings.Join(lines, "\r\n"), "{{LF}}", "\n")
		res, err := p.send([]byte(raw), noAnswerWait)
		if err != nil || res != nil {
			t.Fatalf("%d: a bare LF in %s: answered %v %v", i, name, res, err)
		}
	}
	res, err := p.send(rawRequest("OPTIONS", "TCP", p.addr), 5*time.Second)
	if err != nil || res == nil || res.StatusCode != 200 {
		t.Fatalf("a clean OPTIONS on the same connection: %v %v", res, err)
	}
	if got := filterDrops(t, m, "unsafe_header", 3); got != 3 {
		t.Errorf("unsafe_header drops = %v, want 3", got)
	}
}

func TestOversizedSIPMessagesAreRefused(t *testing.T) {
	m := sipMain(t, t.TempDir())
	pad := strings.Repeat("a", 70<<10)
	t.Run("a TCP message over 64 KiB closes the connection unanswered", func(t *testing.T) {
		p := newTCPPeer(t, m)
		res, err := p.send(rawRequest("REGISTER", "TCP", p.addr, "X-Pad: "+pad), 10*time.Second)
		if res != nil || (err != io.EOF && !isReset(err)) {
			t.Fatalf("answered %v, read error %v; want the connection closed", res, err)
		}
	})
	t.Run("a TCP header line that never ends closes the connection", func(t *testing.T) {
		p := newTCPPeer(t, m)
		raw := "REGISTER sip:" + sipDomain + " SIP/2.0\r\nX-Pad: " + pad
		res, err := p.send([]byte(raw), 10*time.Second)
		if res != nil || (err != io.EOF && !isReset(err)) {
			t.Fatalf("answered %v, read error %v; want the connection closed", res, err)
		}
	})
	t.Run("a UDP datagram over sipgo's 32 KiB read buffer is not answered", func(t *testing.T) {
		p := newUDPPeer(t, m)
		if res := p.send(rawRequest("OPTIONS", "UDP", p.addr, "X-Pad: "+pad[:40<<10]), noAnswerWait); res != nil {
			t.Fatalf("answered %d", res.StatusCode)
		}
		if res := p.send(rawRequest("OPTIONS", "UDP", p.addr), 5*time.Second); res == nil || res.StatusCode != 200 {
			t.Fatalf("then a small OPTIONS: %v", res)
		}
	})
	t.Run("the listener still serves", func(t *testing.T) {
		p := newTCPPeer(t, m)
		res, err := p.send(rawRequest("OPTIONS", "TCP", p.addr), 5*time.Second)
		if err != nil || res == nil || res.StatusCode != 200 {
			t.Fatalf("OPTIONS on a new connection: %v %v", res, err)
		}
	})
}

// isReset reports a connection reset by the peer (it closed with unread
// data in its buffer).
func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// stalledBindings is the real store with UpdateBindings held until
// release is closed, as a store stuck behind a lock or a full writer
// queue would be. opaque makes a held update fail with a driver-style
// error that does not wrap the context's (an interrupted SQLite statement
// reports SQLITE_INTERRUPT).
type stalledBindings struct {
	usip.BindingStore
	release chan struct{}
	opaque  atomic.Bool
	held    atomic.Int32
}

func (s *stalledBindings) UpdateBindings(ctx context.Context, aor string, now time.Time, fn func([]usip.Binding) ([]usip.Binding, error)) ([]usip.Binding, error) {
	select {
	case <-s.release:
		return s.BindingStore.UpdateBindings(ctx, aor, now, fn)
	case <-ctx.Done():
		s.held.Add(1)
		if s.opaque.Load() {
			return nil, identity.Internal("test.UpdateBindings", errors.New("interrupted (9)"))
		}
		return nil, identity.Internal("test.UpdateBindings", ctx.Err())
	}
}

// startMainWith is startMain with a hook on Main before it runs.
func startMainWith(t testing.TB, dir string, hook func(*Main), mutate ...func(*Config)) *Main {
	t.Helper()
	cfg := defaultConfig()
	cfg.UsersCore.DataDir = dir
	cfg.UsersCore.APIBindAddress = "127.0.0.1:0"
	smallArgon2(&cfg)
	cfg.UsersCore.Domains = []string{sipDomain}
	sc := &cfg.UsersCore.SIP
	sc.UDP, sc.TCP, sc.WS = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	for _, f := range mutate {
		f(&cfg)
	}
	if err := cfg.finish(); err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: cfg, Logger: zerolog.Nop(), Notice: io.Discard}
	hook(m)
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestSlowStoreAnswers503WithRetryAfter(t *testing.T) {
	stalled := &stalledBindings{release: make(chan struct{})}
	m := startMainWith(t, t.TempDir(), func(m *Main) {
		m.wrapBindings = func(b usip.BindingStore) usip.BindingStore {
			stalled.BindingStore = b
			return stalled
		}
	}, func(c *Config) { c.UsersCore.SIP.RegisterTimeoutSeconds = 1 })
	addUser(t, m, "alice")

	for _, c := range []struct {
		transport string
		opaque    bool
	}{{"UDP", false}, {"TCP", true}} {
		t.Run(fmt.Sprintf("%s, opaque error %v", c.transport, c.opaque), func(t *testing.T) {
			stalled.opaque.Store(c.opaque)
			res := newPhone(t, m, c.transport, "alice").registerDigest(identity.SHA256, alicePassword, 600)
			if res.StatusCode != 503 || res.Reason != "Service Unavailable" {
				t.Fatalf("REGISTER with the store stalled: %d %s, want 503", res.StatusCode, res.Reason)
			}
			if ra := res.GetHeader("Retry-After"); ra == nil || ra.Value() != "5" {
				t.Fatalf("Retry-After %v, want 5", ra)
			}
		})
	}
	if n := stalled.held.Load(); n != 2 {
		t.Fatalf("%d updates held, want 2", n)
	}
	fams := scrapeUntil(t, m, func(f map[string]*dto.MetricFamily) bool {
		v, _ := sample(f, "users_core_sip_register_total", "transport", "tcp", "scheme", "digest", "result", "unavailable")
		return v == 1
	})
	wantSample(t, fams, 1, "users_core_sip_register_total", "transport", "udp", "scheme", "digest", "result", "unavailable")
	wantSample(t, fams, 1, "users_core_sip_register_total", "transport", "tcp", "scheme", "digest", "result", "unavailable")

	close(stalled.release)
	p := newPhone(t, m, "UDP", "alice")
	res := p.registerDigest(identity.SHA256, alicePassword, 600)
	if res.StatusCode != 200 {
		t.Fatalf("once the store answers: %d", res.StatusCode)
	}
	if n := len(res.GetHeaders("Contact")); n != 1 {
		t.Fatalf("%d bindings after the 503s, want only this one:\n%s", n, res)
	}
}

func TestSIPLockoutsAreAudited(t *testing.T) {
	m := sipMain(t, t.TempDir(), func(c *Config) {
		l := &c.UsersCore.Lockout
		l.UserMaxFailures, l.AddrMaxFailures = 3, 5
	})
	addUser(t, m, "alice")
	addUser(t, m, "bob")
	// alice's third failure locks her name; the address has 3 of its 5.
	alice := newPhone(t, m, "UDP", "alice")
	for i := 0; i < 3; i++ {
		if res := alice.registerDigest(identity.SHA256, "not alice's password", 600); res.StatusCode != 401 {
			t.Fatalf("wrong password %d: %d", i+1, res.StatusCode)
		}
	}
	if res := alice.registerDigest(identity.SHA256, alicePassword, 600); res.StatusCode != 403 {
		t.Fatalf("alice's right password after 3 failures: %d, want 403", res.StatusCode)
	}
	// bob's second failure is the address's fifth: it is banned.
	bob := newPhone(t, m, "TCP", "bob")
	for i := 0; i < 2; i++ {
		if res := bob.registerDigest(identity.SHA256, "not bob's password", 600); res.StatusCode != 401 {
			t.Fatalf("bob's wrong password %d: %d", i+1, res.StatusCode)
		}
	}

	waitAudit(t, m.app, identity.AuditFilter{Action: identity.ActionLockout, Subject: "bob"})
	for _, w := range []struct{ subject, detail string }{
		{"alice", "too many failed SIP REGISTERs: user locked"},
		{"bob", "too many failed SIP REGISTERs: address banned"},
	} {
		recs := auditTrail(t, m.app, identity.AuditFilter{Action: identity.ActionLockout, Subject: w.subject})
		if len(recs) != 1 {
			t.Fatalf("%d lockout events for %s, want 1: %+v", len(recs), w.subject, recs)
		}
		r := recs[0]
		if r.Actor != w.subject || r.Source != "127.0.0.1" || r.Outcome != identity.OutcomeSuccess || r.Detail != w.detail {
			t.Errorf("lockout of %s: %+v, want detail %q from 127.0.0.1", w.subject, r, w.detail)
		}
	}
	fams := scrape(t, m)
	wantSample(t, fams, 2, "users_core_lockouts_total", "protocol", "sip")
	wantSample(t, fams, 0, "users_core_lockouts_total", "protocol", "http")
}

func TestHTTPErrorsAreJSONWithSecurityHeaders(t *testing.T) {
	m := startMain(t, t.TempDir())
	addUser(t, m, "alice")
	base := "http://" + m.HTTPAddr()
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown route", "GET", "/no/such/route", "", 404, "NOT_FOUND"},
		{"wrong method", "DELETE", "/auth/login", "", 405, "METHOD_NOT_ALLOWED"},
		{"oversized body", "POST", "/auth/login", `{"username":"` + strings.Repeat("a", 70<<10) + `","password":"x"}`, 413, "PAYLOAD_TOO_LARGE"},
		{"wrong password", "POST", "/auth/login", `{"username":"alice","password":"wrong password here"}`, 401, "INVALID_CREDENTIALS"},
		{"no credentials", "GET", "/users", "", 401, "UNAUTHORIZED"},
		{"a token answer", "POST", "/auth/login", `{"username":"alice","password":"` + alicePassword + `"}`, 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, raw, c.status)
			}
			h := resp.Header
			for name, want := range map[string]string{
				"Content-Type":            "application/json",
				"Cache-Control":           "no-store",
				"X-Content-Type-Options":  "nosniff",
				"X-Frame-Options":         "DENY",
				"Referrer-Policy":         "no-referrer",
				"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
			} {
				if got := h.Get(name); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			if c.code == "" {
				if h.Get("Pragma") != "no-cache" {
					t.Errorf("token answer without Pragma: no-cache")
				}
				return
			}
			var body struct {
				Error *struct {
					Code    *string `json:"code"`
					Message *string `json:"message"`
				} `json:"error"`
			}
			if err := jsonStrict(raw, &body); err != nil || body.Error == nil || body.Error.Code == nil || body.Error.Message == nil {
				t.Fatalf("body %s is not {\"error\":{\"code\",\"message\"}}: %v", raw, err)
			}
			if *body.Error.Code != c.code || *body.Error.Message == "" {
				t.Fatalf("error %s, want code %s", raw, c.code)
			}
		})
	}
	t.Run("headers over MaxHeaderBytes get 431 and the server goes on", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/health", nil)
		req.Header.Set("X-Pad", strings.Repeat("a", 64<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%d, want 431", resp.StatusCode)
		}
		if status, _ := getJSON(t, m, "/health"); status != 200 {
			t.Fatalf("then /health: %d", status)
		}
	})
	t.Run("the listener has every timeout and a header limit", func(t *testing.T) {
		s := m.httpSrv
		if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 || s.MaxHeaderBytes > 64<<10 {
			t.Fatalf("ReadHeaderTimeout %v, ReadTimeout %v, WriteTimeout %v, IdleTimeout %v, MaxHeaderBytes %d",
				s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout, s.MaxHeaderBytes)
		}
	})
}

// jsonStrict decodes raw into v refusing unknown fields.
func jsonStrict(raw []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func TestDatabaseURLPasswordsAreRedacted(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:s3cret@db:5432/users":                    "postgres://u:xxxxx@db:5432/users",
		"postgres://db/users?user=u&password=s3cret&sslmode=x": "postgres://db/users?user=u&password=xxxxx&sslmode=x",
		"postgres://db/users?sslpassword=s3cret":               "postgres://db/users?sslpassword=xxxxx",
		"sqlite:///var/lib/users-core/users.db":                "sqlite:///var/lib/users-core/users.db",
		"postgres://u:s3cret@db/users?PASSWORD=s3cret#frag":    "postgres://u:xxxxx@db/users?PASSWORD=xxxxx#frag",
	} {
		if got := redactURL(in); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
	cfg := defaultConfig()
	cfg.UsersCore.DataDir = t.TempDir()
	cfg.UsersCore.DatabaseURL = "nosuch://u:s3cret@db/users?password=s3cret"
	if err := cfg.finish(); err != nil {
		t.Fatal(err)
	}
	_, err := OpenApp(context.Background(), cfg, zerolog.Nop())
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("OpenApp error %v: want a failure without the password", err)
	}
}
