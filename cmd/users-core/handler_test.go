package main

// Registrar cases as files: every testdata/sip/*.sip file is one case, run
// against a fresh Main (the real configuration, SQLite store and
// *sip.Server). REGISTER steps drive Server.HandleRegister through a
// siptest recorder, without sockets; other methods go over the real UDP
// listener. testdata/sip/README.md describes the file format.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/emiago/sipgo/siptest"

	"github.com/rvoip/users-core/identity"
	usip "github.com/rvoip/users-core/sip"
)

// sipCaseDir holds the case files, relative to this package.
const sipCaseDir = "../../testdata/sip"

// handlerSource is the peer address a REGISTER driven through the
// recorder appears to come from.
const handlerSource = "127.0.0.1:5099"

// knownSIPBugs maps a case file (without .sip) to the bug that makes it
// fail today; the case is skipped with that text until the bug is fixed.
var knownSIPBugs = map[string]string{}

// sipCase is one file of testdata/sip.
type sipCase struct {
	name  string
	file  string
	steps []*sipStep
}

// sipStep is one message of a case, with what it needs and expects.
type sipStep struct {
	line     int    // line of the step's first line in the file
	send     string // "handler" or "udp"
	users    []sipUserSpec
	auth     *sipAuthSpec
	status   int
	reason   string // expected reason phrase; "" for any
	dropped  bool   // sipgo's parser refuses the message: no response at all
	checks   []sipHeaderCheck
	message  []string // message lines, LF stripped
	hasAuthz bool
}

type sipUserSpec struct {
	name                string
	disabled, tokenOnly bool
}

// sipAuthSpec is an "auth: digest ..." directive.
type sipAuthSpec struct {
	line           int
	alg            identity.DigestAlgorithm
	user, password string
	uri, realm     string // "" means the Request-URI and sipDomain
	nonce          string // fresh, stale, forged, challenge, previous, from-alg:<ALG>
	nc             uint32
	reuse          bool
}

// sipHeaderCheck is one expect-header* directive.
type sipHeaderCheck struct {
	line   int
	kind   string // "expect-header", "expect-no-header", "expect-header-count", "expect-each-header"
	name   string
	index  int // 1-based header index for expect-header Name[i]; 0 for any
	substr string
	count  int
}

var (
	directiveRE = regexp.MustCompile(`^#\s*([a-z][a-z-]*):\s*(.*?)\s*$`)
	indexRE     = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*)\[(\d+)\]$`)
	nameRE      = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)
	namedRE     = regexp.MustCompile(`\{\{(callid|tag)(?::([A-Za-z0-9_-]+))?\}\}`)
	leftoverRE  = regexp.MustCompile(`\{\{[^}]*\}\}`)
	nonceRE     = regexp.MustCompile(`nonce="([^"]*)"`)
)

// loadSIPCase parses one case file.
func loadSIPCase(t testing.TB, path string) *sipCase {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &sipCase{name: strings.TrimSuffix(filepath.Base(path), ".sip"), file: filepath.Base(path)}
	fail := func(line int, format string, args ...any) {
		t.Helper()
		t.Fatalf("%s:%d: %s", c.file, line, fmt.Sprintf(format, args...))
	}
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	st := &sipStep{line: 1, send: "handler"}
	inMessage := false
	finish := func() {
		for len(st.message) > 0 && strings.TrimSpace(st.message[len(st.message)-1]) == "" {
			st.message = st.message[:len(st.message)-1]
		}
		if len(st.message) == 0 {
			fail(st.line, "step has no message")
		}
		if st.status == 0 && !st.dropped {
			fail(st.line, "step has no expect: directive")
		}
		if st.auth != nil && st.hasAuthz {
			fail(st.line, "step has both auth: and its own Authorization header")
		}
		c.steps = append(c.steps, st)
	}
	for i, l := range lines {
		n := i + 1
		if l == "%%" {
			finish()
			st = &sipStep{line: n + 1, send: "handler"}
			inMessage = false
			continue
		}
		if !inMessage {
			if strings.TrimSpace(l) == "" {
				continue
			}
			if strings.HasPrefix(l, "#") {
				if m := directiveRE.FindStringSubmatch(l); m != nil {
					if err := st.directive(n, m[1], m[2]); err != nil {
						fail(n, "%v", err)
					}
				}
				continue // any other # line is a comment
			}
			inMessage = true
		}
		st.message = append(st.message, l)
		if strings.HasPrefix(strings.ToLower(l), "authorization:") {
			st.hasAuthz = true
		}
	}
	finish()
	return c
}

// directive applies one "# key: value" line to st.
func (st *sipStep) directive(line int, key, value string) error {
	switch key {
	case "expect":
		if value == "dropped" {
			st.dropped = true
			return nil
		}
		code, reason, _ := strings.Cut(value, " ")
		n, err := strconv.Atoi(code)
		if err != nil || n < 100 || n > 699 {
			return fmt.Errorf("expect: %q is not a status code", value)
		}
		st.status, st.reason = n, strings.TrimSpace(reason)
	case "expect-header", "expect-no-header", "expect-header-count", "expect-each-header":
		name, substr, _ := strings.Cut(value, ":")
		hc := sipHeaderCheck{line: line, kind: key, name: strings.TrimSpace(name), substr: strings.TrimSpace(substr)}
		if m := indexRE.FindStringSubmatch(hc.name); m != nil && key == "expect-header" {
			hc.name = m[1]
			hc.index, _ = strconv.Atoi(m[2])
			if hc.index < 1 {
				return fmt.Errorf("%s: header index starts at 1", key)
			}
		}
		if !nameRE.MatchString(hc.name) {
			return fmt.Errorf("%s: %q is not a header name", key, hc.name)
		}
		switch key {
		case "expect-header-count":
			n, err := strconv.Atoi(hc.substr)
			if err != nil || n < 0 {
				return fmt.Errorf("expect-header-count: want Name: <count>, got %q", value)
			}
			hc.count = n
		case "expect-each-header":
			if hc.substr == "" {
				return errors.New("expect-each-header: want Name: substring")
			}
		}
		st.checks = append(st.checks, hc)
	case "send":
		if value != "handler" && value != "udp" {
			return fmt.Errorf("send: want handler or udp, got %q", value)
		}
		st.send = value
	case "user":
		f := strings.Fields(value)
		if len(f) == 0 {
			return errors.New("user: want a name")
		}
		u := sipUserSpec{name: f[0]}
		for _, flag := range f[1:] {
			switch flag {
			case "disabled":
				u.disabled = true
			case "token-only":
				u.tokenOnly = true
			default:
				return fmt.Errorf("user: unknown flag %q (disabled, token-only)", flag)
			}
		}
		st.users = append(st.users, u)
	case "auth":
		a, err := parseSIPAuth(line, value)
		if err != nil {
			return err
		}
		st.auth = a
	default:
		return fmt.Errorf("unknown directive %q", key)
	}
	return nil
}

// parseSIPAuth reads "digest alg=SHA-256 [key=value...]".
func parseSIPAuth(line int, value string) (*sipAuthSpec, error) {
	f := strings.Fields(value)
	if len(f) == 0 || !strings.EqualFold(f[0], "digest") {
		return nil, fmt.Errorf("auth: only digest is supported, got %q", value)
	}
	a := &sipAuthSpec{line: line, user: "alice", password: alicePassword, nonce: "fresh", nc: 1}
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("auth: %q is not key=value", kv)
		}
		switch k {
		case "alg":
			algs, err := usip.ParseAlgorithms(v)
			if err != nil || len(algs) != 1 {
				return nil, fmt.Errorf("auth: alg=%s: %v", v, err)
			}
			a.alg = algs[0]
		case "user":
			a.user = v
		case "password":
			a.password = v
		case "uri":
			a.uri = v
		case "realm":
			a.realm = v
		case "nonce":
			switch {
			case v == "fresh", v == "stale", v == "forged", v == "challenge", v == "previous":
			case strings.HasPrefix(v, "from-alg:"):
				if _, err := usip.ParseAlgorithms(strings.TrimPrefix(v, "from-alg:")); err != nil {
					return nil, fmt.Errorf("auth: nonce=%s: %v", v, err)
				}
			default:
				return nil, fmt.Errorf("auth: nonce=%s: want fresh, stale, forged, challenge, previous or from-alg:<ALG>", v)
			}
			a.nonce = v
		case "nc":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("auth: nc=%s: %v", v, err)
			}
			a.nc = uint32(n)
		case "reuse":
			if v != "previous" {
				return nil, fmt.Errorf("auth: reuse=%s: only reuse=previous exists", v)
			}
			a.reuse = true
		default:
			return nil, fmt.Errorf("auth: unknown key %q", k)
		}
	}
	if a.alg == "" && !a.reuse {
		return nil, errors.New("auth: alg= is required")
	}
	return a, nil
}

// sipCaseRunner runs the steps of one case against one Main.
type sipCaseRunner struct {
	t      testing.TB
	file   string
	m      *Main
	fresh  *usip.NonceKeeper // the server's secret, the real clock
	stale  *usip.NonceKeeper // the server's secret, a clock 10 minutes behind
	names  map[string]string // placeholder values kept for the whole case
	udp    *net.UDPConn
	server string // the real UDP listener

	prevAuth  string // Authorization line of the previous authenticated step
	prevNonce string
}

func newSIPCaseRunner(t testing.TB, file string) *sipCaseRunner {
	t.Helper()
	m := sipMain(t, t.TempDir())
	addUser(t, m, "alice")
	secret, err := m.app.Store.Secret(context.Background(), "sip_nonce_key", func() ([]byte, error) {
		return nil, errors.New("the SIP nonce key should exist once Main runs")
	})
	if err != nil {
		t.Fatal(err)
	}
	behind := func() time.Time { return time.Now().Add(-10 * time.Minute) }
	return &sipCaseRunner{
		t: t, file: file, m: m,
		fresh:  usip.NewNonceKeeper(secret, 5*time.Minute, nil),
		stale:  usip.NewNonceKeeper(secret, 5*time.Minute, behind),
		names:  map[string]string{},
		server: sipAddr(t, m, "udp"),
	}
}

// run sends one step and checks its answer.
func (r *sipCaseRunner) run(st *sipStep) {
	t := r.t
	t.Helper()
	for _, u := range st.users {
		_, err := r.m.app.Users.CreateUser(context.Background(), identity.NewUser{
			Username: u.name, Password: alicePassword, Disabled: u.disabled, TokenOnly: u.tokenOnly,
		})
		if err != nil {
			t.Fatalf("%s:%d: creating %s: %v", r.file, st.line, u.name, err)
		}
	}
	local := handlerSource
	if st.send == "udp" {
		local = r.udpConn().LocalAddr().String()
	}
	lines := r.expand(st.message, local)
	for i, l := range lines {
		for _, p := range leftoverRE.FindAllString(l, -1) {
			if p != "{{CR}}" && p != "{{LF}}" {
				t.Fatalf("%s: unknown placeholder %s in message line %d of the step at line %d", r.file, p, i+1, st.line)
			}
		}
	}
	var extra []string
	if st.auth != nil {
		extra = append(extra, r.authorization(st, lines))
	}
	raw := assembleSIP(lines, extra)
	if st.dropped {
		r.expectDropped(st, raw)
		return
	}
	res := r.send(st, raw)
	r.check(st, raw, res)
}

// expectDropped checks that sipgo refuses raw before any handler sees it:
// the parser fails on it, and the UDP listener sends nothing back.
func (r *sipCaseRunner) expectDropped(st *sipStep, raw []byte) {
	t := r.t
	t.Helper()
	if st.send == "handler" {
		if msg, err := sip.ParseMessage(raw); err == nil {
			t.Fatalf("%s:%d: sipgo parses the message, want it refused:\n%s", r.file, st.line, msg)
		}
		return
	}
	c := r.udpConn()
	to, err := net.ResolveUDPAddr("udp", r.server)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToUDP(raw, to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	c.SetReadDeadline(time.Now().Add(time.Second))
	if n, _, err := c.ReadFromUDP(buf); err == nil {
		t.Fatalf("%s:%d: got an answer, want none:\n%s", r.file, st.line, buf[:n])
	}
}

// expand fills the placeholders of the message lines: {{local}}, a fresh
// {{branch}}, and {{callid}}, {{callid:NAME}}, {{tag}}, {{tag:NAME}} kept
// for the whole case. {{CR}} and {{LF}} become raw bytes in assembleSIP.
func (r *sipCaseRunner) expand(lines []string, local string) []string {
	branch := "z9hG4bK-" + randHex(8)
	out := make([]string, len(lines))
	for i, l := range lines {
		l = strings.ReplaceAll(l, "{{local}}", local)
		l = strings.ReplaceAll(l, "{{branch}}", branch)
		l = namedRE.ReplaceAllStringFunc(l, func(s string) string {
			m := namedRE.FindStringSubmatch(s)
			key := m[1] + ":" + m[2]
			if _, ok := r.names[key]; !ok {
				v := randHex(8)
				if m[1] == "callid" {
					v += "@users-core.test"
				}
				r.names[key] = v
			}
			return r.names[key]
		})
		out[i] = l
	}
	return out
}

// assembleSIP joins the message lines with CRLF, appends extra header
// lines to the header section, adds Content-Length when the file has none,
// then turns {{CR}} and {{LF}} into bare CR and LF bytes.
func assembleSIP(lines, extra []string) []byte {
	head, body := lines, []string(nil)
	for i, l := range lines {
		if strings.TrimSpace(l) == "" {
			head, body = lines[:i], lines[i+1:]
			break
		}
	}
	bodyText := strings.Join(body, "\r\n")
	if len(body) > 0 {
		bodyText += "\r\n"
	}
	hasLength := false
	for _, h := range head {
		name, _, _ := strings.Cut(h, ":")
		if n := strings.ToLower(strings.TrimSpace(name)); n == "content-length" || n == "l" {
			hasLength = true
		}
	}
	hdrs := append(append([]string(nil), head...), extra...)
	if !hasLength {
		hdrs = append(hdrs, "Content-Length: "+strconv.Itoa(len(bodyText)))
	}
	s := strings.Join(hdrs, "\r\n") + "\r\n\r\n" + bodyText
	s = strings.ReplaceAll(s, "{{CR}}", "\r")
	s = strings.ReplaceAll(s, "{{LF}}", "\n")
	return []byte(s)
}

// authorization builds the Authorization line of st.
func (r *sipCaseRunner) authorization(st *sipStep, lines []string) string {
	t := r.t
	t.Helper()
	a := st.auth
	if a.reuse {
		if r.prevAuth == "" {
			t.Fatalf("%s:%d: reuse=previous, but no earlier step carried Authorization", r.file, a.line)
		}
		return r.prevAuth
	}
	uri := a.uri
	if uri == "" {
		if f := strings.Fields(lines[0]); len(f) == 3 {
			uri = f[1]
		}
	}
	realm := a.realm
	if realm == "" {
		realm = sipDomain
	}
	var nonce string
	switch {
	case a.nonce == "fresh":
		nonce = r.fresh.New(sipDomain, a.alg)
	case a.nonce == "stale":
		nonce = r.stale.New(sipDomain, a.alg)
	case a.nonce == "forged":
		nonce = r.fresh.New(sipDomain, a.alg)
		last := byte('A')
		if nonce[len(nonce)-1] == 'A' {
			last = 'B'
		}
		nonce = nonce[:len(nonce)-1] + string(last)
	case a.nonce == "previous":
		if r.prevNonce == "" {
			t.Fatalf("%s:%d: nonce=previous, but no earlier step carried a nonce", r.file, a.line)
		}
		nonce = r.prevNonce
	case a.nonce == "challenge":
		nonce = r.challengeNonce(st, lines, a.alg)
	default:
		algs, _ := usip.ParseAlgorithms(strings.TrimPrefix(a.nonce, "from-alg:"))
		nonce = r.fresh.New(sipDomain, algs[0])
	}
	ha1, err := identity.HA1(a.alg, a.user, realm, a.password)
	if err != nil {
		t.Fatal(err)
	}
	method := strings.Fields(lines[0])[0]
	nc := fmt.Sprintf("%08x", a.nc)
	cnonce := randHex(8)
	resp := usip.DigestResponse(a.alg, ha1, nonce, nc, cnonce, "auth", method, uri)
	line := fmt.Sprintf(`Authorization: Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, cnonce="%s", qop=auth, nc=%s`,
		a.user, realm, nonce, uri, resp, a.alg, cnonce, nc)
	r.prevAuth, r.prevNonce = line, nonce
	return line
}

// challengeNonce sends the step's message without credentials and returns
// the nonce the server offers for alg.
func (r *sipCaseRunner) challengeNonce(st *sipStep, lines []string, alg identity.DigestAlgorithm) string {
	t := r.t
	t.Helper()
	if st.hasAuthz {
		t.Fatalf("%s:%d: nonce=challenge needs a message without its own Authorization", r.file, st.auth.line)
	}
	res := r.send(st, assembleSIP(lines, nil))
	if res.StatusCode != 401 {
		t.Fatalf("%s:%d: asking for a challenge: %d %s, want 401", r.file, st.auth.line, res.StatusCode, res.Reason)
	}
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		if strings.Contains(h.Value(), "algorithm="+string(alg)+",") {
			if m := nonceRE.FindStringSubmatch(h.Value()); m != nil {
				return m[1]
			}
		}
	}
	t.Fatalf("%s:%d: no %s challenge in\n%s", r.file, st.auth.line, alg, res)
	return ""
}

// send delivers raw as st says and returns the final response.
func (r *sipCaseRunner) send(st *sipStep, raw []byte) *sip.Response {
	t := r.t
	t.Helper()
	if st.send == "udp" {
		return r.sendUDP(st, raw)
	}
	msg, err := sip.ParseMessage(raw)
	if err != nil {
		t.Fatalf("%s:%d: sipgo cannot parse the message: %v\n%s", r.file, st.line, err, raw)
	}
	req, ok := msg.(*sip.Request)
	if !ok || req.Method != sip.REGISTER {
		t.Fatalf("%s:%d: only REGISTER requests go to the handler; use \"# send: udp\" for others", r.file, st.line)
	}
	req.SetSource(handlerSource)
	req.SetTransport("UDP")
	rec := siptest.NewServerTxRecorder(req)
	r.m.SIPServer().HandleRegister(req, rec)
	out := rec.Result()
	if len(out) != 1 {
		t.Fatalf("%s:%d: the handler sent %d responses, want 1", r.file, st.line, len(out))
	}
	return out[0]
}

func (r *sipCaseRunner) udpConn() *net.UDPConn {
	if r.udp == nil {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			r.t.Fatal(err)
		}
		r.t.Cleanup(func() { c.Close() })
		r.udp = c
	}
	return r.udp
}

// sendUDP writes raw to the real UDP listener and waits for the first
// final response.
func (r *sipCaseRunner) sendUDP(st *sipStep, raw []byte) *sip.Response {
	t := r.t
	t.Helper()
	c := r.udpConn()
	to, err := net.ResolveUDPAddr("udp", r.server)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToUDP(raw, to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.SetReadDeadline(deadline)
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("%s:%d: no final response over UDP: %v", r.file, st.line, err)
		}
		msg, err := sip.ParseMessage(buf[:n])
		if err != nil {
			t.Fatalf("%s:%d: unparseable response: %v\n%s", r.file, st.line, err, buf[:n])
		}
		if res, ok := msg.(*sip.Response); ok && res.StatusCode >= 200 {
			return res
		}
	}
}

// check compares res with what st expects.
func (r *sipCaseRunner) check(st *sipStep, raw []byte, res *sip.Response) {
	t := r.t
	t.Helper()
	show := func() string { return fmt.Sprintf("request:\n%s\nresponse:\n%s", raw, res) }
	if res.StatusCode != st.status || (st.reason != "" && res.Reason != st.reason) {
		want := strconv.Itoa(st.status)
		if st.reason != "" {
			want += " " + st.reason
		}
		t.Fatalf("%s:%d: got %d %s, want %s\n%s", r.file, st.line, res.StatusCode, res.Reason, want, show())
	}
	for _, c := range st.checks {
		var vals []string
		for _, h := range res.GetHeaders(c.name) {
			vals = append(vals, h.Value())
		}
		contains := func(v string) bool { return strings.Contains(v, c.substr) }
		var bad string
		switch c.kind {
		case "expect-header":
			switch {
			case c.index > 0 && len(vals) < c.index:
				bad = fmt.Sprintf("%s[%d] is missing", c.name, c.index)
			case c.index > 0 && !contains(vals[c.index-1]):
				bad = fmt.Sprintf("%s[%d] %q does not contain %q", c.name, c.index, vals[c.index-1], c.substr)
			case c.index == 0 && len(vals) == 0:
				bad = fmt.Sprintf("no %s header", c.name)
			case c.index == 0 && !anyOf(vals, contains):
				bad = fmt.Sprintf("no %s header contains %q", c.name, c.substr)
			}
		case "expect-no-header":
			if anyOf(vals, contains) {
				bad = fmt.Sprintf("a %s header contains %q", c.name, c.substr)
			}
		case "expect-header-count":
			if len(vals) != c.count {
				bad = fmt.Sprintf("%d %s headers, want %d", len(vals), c.name, c.count)
			}
		case "expect-each-header":
			if len(vals) == 0 {
				bad = fmt.Sprintf("no %s header", c.name)
			}
			for i, v := range vals {
				if !contains(v) {
					bad = fmt.Sprintf("%s[%d] %q does not contain %q", c.name, i+1, v, c.substr)
					break
				}
			}
		}
		if bad != "" {
			t.Errorf("%s:%d: %s", r.file, c.line, bad)
		}
	}
	if t.Failed() {
		t.Fatalf("%s:%d: step failed\n%s", r.file, st.line, show())
	}
}

func anyOf(vals []string, f func(string) bool) bool {
	for _, v := range vals {
		if f(v) {
			return true
		}
	}
	return false
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestRegisterHandlerCases runs every case file of testdata/sip, each
// against its own Main.
func TestRegisterHandlerCases(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(sipCaseDir, "*.sip"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no case files in %s (%v)", sipCaseDir, err)
	}
	// Glob returns the files sorted.
	for _, f := range files {
		c := loadSIPCase(t, f)
		t.Run(c.name, func(t *testing.T) {
			if bug, ok := knownSIPBugs[c.name]; ok {
				t.Skip("known bug: " + bug)
			}
			r := newSIPCaseRunner(t, c.file)
			for _, st := range c.steps {
				r.run(st)
			}
		})
	}
	for name := range knownSIPBugs {
		if _, err := os.Stat(filepath.Join(sipCaseDir, name+".sip")); err != nil {
			t.Errorf("knownSIPBugs names %s, which has no case file", name)
		}
	}
}

// TestChallengesAreIdenticalForRealAndUnknownUsers checks that a 401 tells
// nothing about the user: for a real user, an unknown name, a disabled
// user and a token-only user, the challenge to a REGISTER without
// credentials, and the answer to a wrong password (and, for the disabled
// and token-only users, to their right password), are byte for byte the
// same once the values that differ on every response are masked.
func TestChallengesAreIdenticalForRealAndUnknownUsers(t *testing.T) {
	r := newSIPCaseRunner(t, "TestChallengesAreIdenticalForRealAndUnknownUsers")
	ctx := context.Background()
	for _, nu := range []identity.NewUser{
		{Username: "carol", Password: alicePassword, Disabled: true},
		{Username: "dave", Password: alicePassword, TokenOnly: true},
	} {
		if _, err := r.m.app.Users.CreateUser(ctx, nu); err != nil {
			t.Fatal(err)
		}
	}
	users := []string{"alice", "u" + randHex(6), "carol", "dave"}

	const template = "REGISTER sip:example.test SIP/2.0\n" +
		"Via: SIP/2.0/UDP {{local}};rport;branch={{branch}}\n" +
		"Max-Forwards: 70\n" +
		"From: <sip:USER@example.test>;tag=7a3f09c2\n" +
		"To: <sip:USER@example.test>\n" +
		"Call-ID: {{callid:CALL}}\n" +
		"CSeq: 1 REGISTER\n" +
		"Contact: <sip:USER@192.0.2.1:5060>\n" +
		"Expires: 600"
	// Every response carries its own To-tag, Via branch, Call-ID and
	// nonces; the user name is the request's, echoed in From and To.
	masks := []struct {
		re   *regexp.Regexp
		with string
	}{
		{regexp.MustCompile(`(?m)^(To:.*;tag=)[^;\r\n]+`), "${1}TAG"},
		{regexp.MustCompile(`branch=[^;\r\n]+`), "branch=BRANCH"},
		{regexp.MustCompile(`(?m)^(Call-ID: ).*`), "${1}CALLID"},
		{regexp.MustCompile(`nonce="[^"]*"`), `nonce="NONCE"`},
	}
	normalize := func(res *sip.Response, user string) string {
		s := res.String()
		for _, m := range masks {
			s = m.re.ReplaceAllString(s, m.with)
		}
		return strings.ReplaceAll(s, "sip:"+user+"@", "sip:USER@")
	}
	step := &sipStep{line: 1, send: "handler", status: 401}
	message := func(user, call string) []string {
		msg := strings.ReplaceAll(strings.ReplaceAll(template, "USER", user), "CALL", call)
		return r.expand(strings.Split(msg, "\n"), handlerSource)
	}
	answer := func(user, password string, alg identity.DigestAlgorithm) *sip.Response {
		t.Helper()
		lines := message(user, "c"+randHex(4))
		step.auth = &sipAuthSpec{alg: alg, user: user, password: password, nonce: "challenge", nc: 1}
		raw := assembleSIP(lines, []string{r.authorization(step, lines)})
		return r.send(step, raw)
	}

	type kind struct {
		name string
		get  func(user string) *sip.Response
	}
	kinds := []kind{{"no credentials", func(user string) *sip.Response {
		return r.send(step, assembleSIP(message(user, "c"+randHex(4)), nil))
	}}}
	for _, alg := range []identity.DigestAlgorithm{identity.SHA512256, identity.SHA256, identity.MD5} {
		kinds = append(kinds, kind{"wrong password " + string(alg), func(user string) *sip.Response {
			return answer(user, "not the password at all", alg)
		}})
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			want := normalize(k.get("alice"), "alice")
			if !strings.HasPrefix(want, "SIP/2.0 401 ") || strings.Count(want, "WWW-Authenticate:") != 3 {
				t.Fatalf("alice's answer is not a full challenge:\n%s", want)
			}
			for _, u := range users[1:] {
				if got := normalize(k.get(u), u); got != want {
					t.Errorf("%s's answer differs from alice's:\n%s\nalice:\n%s", u, got, want)
				}
			}
		})
	}
	t.Run("right password of a disabled or token-only user", func(t *testing.T) {
		want := normalize(answer("alice", "not the password at all", identity.SHA256), "alice")
		for _, u := range []string{"carol", "dave"} {
			if got := normalize(answer(u, alicePassword, identity.SHA256), u); got != want {
				t.Errorf("%s's answer differs from alice's wrong password:\n%s\nalice:\n%s", u, got, want)
			}
		}
	})
}
