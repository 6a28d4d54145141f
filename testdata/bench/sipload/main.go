// Command sipload is an open-loop SIP REGISTER load generator for the
// users-core bench: SIPp has no WebSocket transport, this does UDP, TCP,
// TLS, WS and WSS (RFC 7118, subprotocol "sip").
//
// One registration is REGISTER -> 401 -> REGISTER with Digest -> 200
// (-auth digest; MD5, SHA-256 or SHA-512-256, qop=auth, computed here per
// RFC 7616), or one REGISTER with "Authorization: Bearer <token>" -> 200
// (-auth bearer, tokens from -tokens). Registrations start at -rate per
// second for -duration whatever the answers do (open loop); at most
// -max-outstanding are in progress at once, and a registration due while
// that many are outstanding is skipped and counted. Latency is per
// registration: first REGISTER sent -> 200 received.
//
// With -idle N it opens N connections instead (TCP, TLS, WS or WSS), sends
// one OPTIONS on each (unless -idle-options=false), writes -ready-file and
// holds them until -hold ends or SIGTERM, for memory-per-connection
// measurements.
//
// It prints ONE summary line on stdout (key=value); diagnostics go to
// stderr. Every loop is bounded by a count or a deadline, and it only talks
// to loopback addresses. It is not part of users-core (testdata is outside
// ./...): run it as `go run ./testdata/bench/sipload` or build it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

const userAgent = "users-core-sipload/1"

type config struct {
	target      string
	transport   string // udp, tcp, tls, ws, wss
	rate        float64
	duration    time.Duration
	conns       int
	users       int
	userBase    int
	userFmt     string
	passFmt     string
	pick        string // random or seq
	domain      string
	auth        string // digest or bearer
	alg         string // MD5, SHA-256, SHA-512-256 or first
	tokens      string
	expires     int
	maxOut      int
	timeout     time.Duration
	seed        uint64
	label       string
	latFile     string
	idle        int
	hold        time.Duration
	readyFile   string
	idleOptions bool
	openRate    float64
	dialTimeout time.Duration
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var c config
	fs := flag.NewFlagSet("sipload", flag.ContinueOnError)
	fs.StringVar(&c.target, "target", "127.0.0.1:5066", "registrar host:port (loopback only)")
	fs.StringVar(&c.transport, "transport", "ws", "udp, tcp, tls, ws or wss")
	fs.Float64Var(&c.rate, "rate", 100, "registrations started per second")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long registrations are started")
	fs.IntVar(&c.conns, "conns", 1, "connections (UDP: sockets); a user always uses connection user%conns")
	fs.IntVar(&c.users, "users", 10000, "number of users (digest)")
	fs.IntVar(&c.userBase, "user-base", 0, "index of the first user")
	fs.StringVar(&c.userFmt, "user-fmt", "user%04d", "username format of user index")
	fs.StringVar(&c.passFmt, "pass-fmt", "secret-%04d", "password format of user index")
	fs.StringVar(&c.pick, "pick", "random", "user order: random (uniform, -seed) or seq")
	fs.StringVar(&c.domain, "domain", "bench.local", "SIP domain (AoR domain, Request-URI, Digest realm)")
	fs.StringVar(&c.auth, "auth", "digest", "digest or bearer")
	fs.StringVar(&c.alg, "alg", "MD5", "Digest algorithm to answer: MD5, SHA-256, SHA-512-256, or first (the first offered)")
	fs.StringVar(&c.tokens, "tokens", "", "bearer: file of user;token; lines (SIPp injection format; a header line without ';' is skipped)")
	fs.IntVar(&c.expires, "expires", 3600, "Expires of each REGISTER")
	fs.IntVar(&c.maxOut, "max-outstanding", 0, "most registrations in progress at once (0: max(100, 2*rate))")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "wait for each final response (UDP retransmits meanwhile)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the random user order")
	fs.StringVar(&c.label, "label", "sipload", "first word of the summary line")
	fs.StringVar(&c.latFile, "lat-file", "", "write each registration's latency (ms) to this file")
	fs.IntVar(&c.idle, "idle", 0, "open this many idle connections instead of running load")
	fs.DurationVar(&c.hold, "hold", 60*time.Second, "idle: how long to hold the connections (SIGTERM ends it earlier)")
	fs.StringVar(&c.readyFile, "ready-file", "", "idle: written once every connection is open")
	fs.BoolVar(&c.idleOptions, "idle-options", true, "idle: send one OPTIONS on each connection and wait for its answer")
	fs.Float64Var(&c.openRate, "open-rate", 1000, "idle: connections opened per second")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", 5*time.Second, "timeout of each connect and handshake")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := c.check(); err != nil {
		fmt.Fprintln(os.Stderr, "sipload:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.idle > 0 {
		return runIdle(ctx, c)
	}
	return runLoad(ctx, c)
}

func (c *config) check() error {
	host, _, err := net.SplitHostPort(c.target)
	if err != nil {
		return fmt.Errorf("-target: %v", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-target %s: only loopback addresses are allowed", c.target)
	}
	switch c.transport {
	case "udp", "tcp", "tls", "ws", "wss":
	default:
		return fmt.Errorf("-transport %q: want udp, tcp, tls, ws or wss", c.transport)
	}
	if c.idle > 0 {
		if c.transport == "udp" {
			return errors.New("-idle needs a connection transport (tcp, tls, ws, wss)")
		}
		if c.idle > 100000 || c.hold <= 0 || c.openRate <= 0 {
			return errors.New("-idle at most 100000, -hold and -open-rate positive")
		}
		return nil
	}
	switch {
	case c.rate <= 0 || c.duration <= 0:
		return errors.New("-rate and -duration must be positive")
	case c.rate*c.duration.Seconds() > 50e6:
		return errors.New("-rate x -duration above 50 million registrations")
	case c.conns < 1 || c.conns > 10000:
		return errors.New("-conns must be 1..10000")
	case c.pick != "random" && c.pick != "seq":
		return errors.New("-pick must be random or seq")
	case c.timeout <= 0:
		return errors.New("-timeout must be positive")
	}
	switch c.auth {
	case "digest":
		if c.users < 1 {
			return errors.New("-users must be at least 1")
		}
		switch c.alg {
		case "MD5", "SHA-256", "SHA-512-256", "first":
		default:
			return fmt.Errorf("-alg %q: want MD5, SHA-256, SHA-512-256 or first", c.alg)
		}
	case "bearer":
		if c.tokens == "" {
			return errors.New("-auth bearer needs -tokens FILE")
		}
	default:
		return fmt.Errorf("-auth %q: want digest or bearer", c.auth)
	}
	if c.maxOut <= 0 {
		c.maxOut = max(100, int(2*c.rate))
	}
	return nil
}

// ---- SIP responses -----------------------------------------------------------

// response is what sipload reads from a SIP response.
type response struct {
	status int
	branch string   // top Via's branch
	auth   []string // WWW-Authenticate values in order
}

// parseResponse reads the start line and the headers sipload needs. A
// request (the server never sends one here) or garbage is an error.
func parseResponse(b []byte) (*response, error) {
	line, rest, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimRight(line, "\r")
	if !bytes.HasPrefix(line, []byte("SIP/2.0 ")) || len(line) < 11 {
		return nil, fmt.Errorf("not a SIP response: %.40q", line)
	}
	st, err := strconv.Atoi(string(line[8:11]))
	if err != nil {
		return nil, fmt.Errorf("bad status line %.40q", line)
	}
	r := &response{status: st}
	viaSeen := false
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break
		}
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		n := strings.ToLower(string(bytes.TrimSpace(name)))
		v := string(bytes.TrimSpace(val))
		switch n {
		case "via", "v":
			if !viaSeen {
				viaSeen = true
				first, _, _ := strings.Cut(v, ",")
				r.branch = viaParam(first, "branch")
			}
		case "www-authenticate":
			r.auth = append(r.auth, v)
		}
	}
	return r, nil
}

// viaParam returns the value of parameter name in one Via value.
func viaParam(via, name string) string {
	for _, p := range strings.Split(via, ";")[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ---- connections ---------------------------------------------------------------

// sipConn is one socket or connection to the registrar with the
// transactions waiting for answers on it.
type sipConn struct {
	transport string
	via       string // sent-by of our Via
	contact   string // host[:port] of our Contact
	write     func([]byte) error
	closeFn   func() error
	lost      atomic.Bool // the connection ended while the load ran

	mu      sync.Mutex
	waiters map[string]chan *response
}

// wait registers a transaction; on a connection already gone its channel
// holds nil at once.
func (c *sipConn) wait(branch string) chan *response {
	ch := make(chan *response, 4)
	c.mu.Lock()
	if c.lost.Load() {
		ch <- nil
	} else {
		c.waiters[branch] = ch
	}
	c.mu.Unlock()
	return ch
}

func (c *sipConn) done(branch string) {
	c.mu.Lock()
	delete(c.waiters, branch)
	c.mu.Unlock()
}

// deliver hands r to the transaction waiting for its branch; a response
// nobody waits for (a late retransmission) is dropped.
func (c *sipConn) deliver(r *response) {
	c.mu.Lock()
	ch := c.waiters[r.branch]
	c.mu.Unlock()
	if ch != nil {
		select {
		case ch <- r:
		default:
		}
	}
}

// fail wakes every waiting transaction with nil: the connection is gone.
func (c *sipConn) fail() {
	c.mu.Lock()
	c.lost.Store(true)
	for b, ch := range c.waiters {
		select {
		case ch <- nil:
		default:
		}
		delete(c.waiters, b)
	}
	c.mu.Unlock()
}

var errClosedByPeer = errors.New("connection closed")

// dial opens one connection of c.transport and starts its reader, which
// calls onEnd with the reason when the connection ends.
func dial(ctx context.Context, c config, onEnd func(error)) (*sipConn, error) {
	sc := &sipConn{transport: c.transport, waiters: map[string]chan *response{}}
	tlsConf := &tls.Config{InsecureSkipVerify: true} // bench against 127.0.0.1 with a throwaway certificate
	ctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	var reader func() error
	switch c.transport {
	case "udp":
		raddr, err := net.ResolveUDPAddr("udp", c.target)
		if err != nil {
			return nil, err
		}
		uc, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			return nil, err
		}
		_ = uc.SetReadBuffer(4 << 20)
		sc.via = uc.LocalAddr().String()
		sc.contact = sc.via
		sc.write = func(b []byte) error { _, err := uc.Write(b); return err }
		sc.closeFn = uc.Close
		reader = func() error {
			buf := make([]byte, 65536)
			for {
				n, err := uc.Read(buf)
				if err != nil {
					return err
				}
				if r, err := parseResponse(buf[:n]); err == nil {
					sc.deliver(r)
				}
			}
		}
	case "tcp", "tls":
		d := net.Dialer{}
		nc, err := d.DialContext(ctx, "tcp", c.target)
		if err != nil {
			return nil, err
		}
		if c.transport == "tls" {
			tc := tls.Client(nc, tlsConf)
			if err := tc.HandshakeContext(ctx); err != nil {
				nc.Close()
				return nil, err
			}
			nc = tc
		}
		sc.via = nc.LocalAddr().String()
		sc.contact = sc.via
		var wmu sync.Mutex
		sc.write = func(b []byte) error {
			wmu.Lock()
			defer wmu.Unlock()
			_, err := nc.Write(b)
			return err
		}
		sc.closeFn = nc.Close
		reader = func() error { return readStream(bufio.NewReaderSize(nc, 16<<10), sc) }
	case "ws", "wss":
		d := ws.Dialer{Protocols: []string{"sip"}, TLSConfig: tlsConf}
		nc, br, hs, err := d.Dial(ctx, c.transport+"://"+c.target)
		if err != nil {
			return nil, err
		}
		if hs.Protocol != "sip" {
			nc.Close()
			return nil, fmt.Errorf("websocket handshake: subprotocol %q, want sip", hs.Protocol)
		}
		var r io.Reader = nc
		if br != nil {
			r = br
		}
		var wmu sync.Mutex
		lw := writerFunc(func(b []byte) (int, error) { // control-frame answers from the reader
			wmu.Lock()
			defer wmu.Unlock()
			return nc.Write(b)
		})
		sc.write = func(b []byte) error {
			wmu.Lock()
			defer wmu.Unlock()
			return wsutil.WriteClientMessage(nc, ws.OpText, b)
		}
		sc.closeFn = nc.Close
		// RFC 7118 section 5.2: a client without a reachable address uses a
		// random .invalid host in Via and Contact.
		sc.via = randHex(6) + ".invalid"
		sc.contact = sc.via
		rw := struct {
			io.Reader
			io.Writer
		}{r, lw}
		reader = func() error {
			for {
				data, _, err := wsutil.ReadServerData(rw)
				if err != nil {
					return err
				}
				if r, err := parseResponse(data); err == nil {
					sc.deliver(r)
				}
			}
		}
	}
	go func() {
		err := reader()
		sc.fail()
		if onEnd != nil {
			onEnd(err)
		}
	}()
	return sc, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// readStream reads SIP messages framed by Content-Length from a stream
// (RFC 3261 section 18.3), skipping CRLF keep-alives, until it fails.
func readStream(br *bufio.Reader, sc *sipConn) error {
	var msg []byte
	for {
		msg = msg[:0]
		clen := 0
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				if errors.Is(err, bufio.ErrBufferFull) {
					return errors.New("header line too long")
				}
				if errors.Is(err, io.EOF) {
					return errClosedByPeer
				}
				return err
			}
			trimmed := bytes.TrimRight(line, "\r\n")
			if len(trimmed) == 0 {
				if len(msg) == 0 {
					continue // keep-alive CRLF before a message
				}
				msg = append(msg, line...)
				break
			}
			msg = append(msg, line...)
			if name, val, ok := bytes.Cut(trimmed, []byte(":")); ok {
				n := strings.ToLower(string(bytes.TrimSpace(name)))
				if n == "content-length" || n == "l" {
					clen, _ = strconv.Atoi(string(bytes.TrimSpace(val)))
				}
			}
			if len(msg) > 64<<10 {
				return errors.New("headers above 64 KiB")
			}
		}
		if clen > 0 {
			if clen > 1<<20 {
				return errors.New("body above 1 MiB")
			}
			if _, err := io.CopyN(io.Discard, br, int64(clen)); err != nil {
				return err
			}
		}
		if r, err := parseResponse(msg); err == nil {
			sc.deliver(r)
		}
	}
}

// ---- one registration ------------------------------------------------------------

// user is one registering identity.
type user struct {
	idx      int // position in the user list: chooses the connection
	name     string
	password string
	token    string
}

type outcome struct {
	ok      bool
	reason  string // failure reason: timeout, conn_lost, status_403, no_challenge, ...
	latency time.Duration
	retrans int
}

type registrar struct {
	c      config
	transp string // Via transport token: UDP, TCP, TLS, WS, WSS
}

// register runs one registration for u over sc.
func (g *registrar) register(ctx context.Context, sc *sipConn, u user) outcome {
	callID := randHex(12) + "@sipload"
	tag := randHex(6)
	start := time.Now()
	var auth string
	if g.c.auth == "bearer" {
		auth = "Bearer " + u.token
	}
	branch, req := g.request(sc, u, callID, tag, 1, auth)
	r, retr, reason := g.transaction(ctx, sc, branch, req)
	if r == nil {
		return outcome{reason: reason, retrans: retr}
	}
	if g.c.auth == "digest" {
		if r.status != 401 {
			return outcome{reason: "first_status_" + strconv.Itoa(r.status), retrans: retr}
		}
		ch, ok := pickChallenge(r.auth, g.c.alg)
		if !ok {
			return outcome{reason: "no_challenge_" + g.c.alg, retrans: retr}
		}
		auth, ok = digestAuthorization(ch, u.name, u.password, "REGISTER", "sip:"+g.c.domain)
		if !ok {
			return outcome{reason: "bad_challenge", retrans: retr}
		}
		var retr2 int
		branch, req = g.request(sc, u, callID, tag, 2, auth)
		r, retr2, reason = g.transaction(ctx, sc, branch, req)
		retr += retr2
		if r == nil {
			return outcome{reason: reason, retrans: retr}
		}
	}
	if r.status != 200 {
		return outcome{reason: "status_" + strconv.Itoa(r.status), retrans: retr}
	}
	return outcome{ok: true, latency: time.Since(start), retrans: retr}
}

// request builds a REGISTER; its branch is the first return value.
func (g *registrar) request(sc *sipConn, u user, callID, tag string, cseq int, auth string) (string, []byte) {
	branch := "z9hG4bK" + randHex(10)
	var b bytes.Buffer
	b.Grow(600)
	d := g.c.domain
	fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\n", d)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=%s;rport\r\n", g.transp, sc.via, branch)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=%s\r\n", u.name, d, tag)
	fmt.Fprintf(&b, "To: <sip:%s@%s>\r\n", u.name, d)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", callID)
	fmt.Fprintf(&b, "CSeq: %d REGISTER\r\n", cseq)
	// One contact per user and connection: a repeated registration of a
	// user replaces its binding instead of adding one.
	fmt.Fprintf(&b, "Contact: <sip:%s@%s;transport=%s>\r\n", u.name, sc.contact, strings.ToLower(g.transp))
	fmt.Fprintf(&b, "Expires: %d\r\n", g.c.expires)
	if auth != "" {
		fmt.Fprintf(&b, "Authorization: %s\r\n", auth)
	}
	b.WriteString("User-Agent: " + userAgent + "\r\n")
	b.WriteString("Content-Length: 0\r\n\r\n")
	return branch, b.Bytes()
}

// transaction sends req and waits for its final response, retransmitting
// over UDP (RFC 3261 timer A: T1 = 500 ms doubling, at most T2 = 4 s)
// until the timeout. A nil response comes with a failure reason.
func (g *registrar) transaction(ctx context.Context, sc *sipConn, branch string, req []byte) (*response, int, string) {
	ch := sc.wait(branch)
	defer sc.done(branch)
	if err := sc.write(req); err != nil {
		return nil, 0, "send_error"
	}
	deadline := time.NewTimer(g.c.timeout)
	defer deadline.Stop()
	var retrans <-chan time.Time
	interval := 500 * time.Millisecond
	var rt *time.Timer
	if sc.transport == "udp" {
		rt = time.NewTimer(interval)
		defer rt.Stop()
		retrans = rt.C
	}
	n := 0
	for {
		select {
		case r := <-ch:
			if r == nil {
				return nil, n, "conn_lost"
			}
			if r.status >= 200 {
				return r, n, ""
			}
			retrans = nil // a provisional answer stops retransmissions (timer E rules aside)
		case <-retrans:
			n++
			if err := sc.write(req); err != nil {
				return nil, n, "send_error"
			}
			interval = min(2*interval, 4*time.Second)
			rt.Reset(interval)
		case <-deadline.C:
			return nil, n, "timeout"
		case <-ctx.Done():
			return nil, n, "interrupted"
		}
	}
}

// ---- Digest (RFC 7616 with qop=auth) ---------------------------------------------

// pickChallenge returns the parameters of the Digest challenge for alg
// (missing algorithm means MD5); "first" takes the first Digest one.
func pickChallenge(values []string, alg string) (map[string]string, bool) {
	for _, v := range values {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
		if !strings.EqualFold(scheme, "Digest") {
			continue
		}
		p := authParams(rest)
		a := p["algorithm"]
		if a == "" {
			a = "MD5"
		}
		if alg == "first" || strings.EqualFold(a, alg) {
			p["algorithm"] = a
			return p, true
		}
	}
	return nil, false
}

// authParams splits name=value pairs separated by commas; values may be
// quoted (backslash escapes honoured).
func authParams(s string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(s); {
		for i < len(s) && (s[i] == ' ' || s[i] == ',' || s[i] == '\t') {
			i++
		}
		j := i
		for j < len(s) && s[j] != '=' && s[j] != ',' {
			j++
		}
		name := strings.ToLower(strings.TrimSpace(s[i:j]))
		if j >= len(s) || s[j] != '=' {
			i = j + 1
			continue
		}
		j++
		for j < len(s) && s[j] == ' ' {
			j++
		}
		var val strings.Builder
		if j < len(s) && s[j] == '"' {
			j++
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				val.WriteByte(s[j])
				j++
			}
			j++ // closing quote
		} else {
			for j < len(s) && s[j] != ',' {
				val.WriteByte(s[j])
				j++
			}
		}
		if name != "" {
			out[name] = strings.TrimSpace(val.String())
		}
		i = j
	}
	return out
}

func digestHash(alg string) func() hash.Hash {
	switch strings.ToUpper(alg) {
	case "MD5":
		return md5.New
	case "SHA-256":
		return sha256.New
	case "SHA-512-256":
		return sha512.New512_256
	}
	return nil
}

func hexHash(newHash func() hash.Hash, s string) string {
	h := newHash()
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

// digestAuthorization answers challenge ch for one fresh nonce (nc=1):
// HA1 = H(user:realm:password), HA2 = H(method:uri), response =
// H(HA1:nonce:nc:cnonce:auth:HA2) with qop=auth, or H(HA1:nonce:HA2) when
// the challenge offers no qop.
func digestAuthorization(ch map[string]string, username, password, method, uri string) (string, bool) {
	newHash := digestHash(ch["algorithm"])
	realm, nonce := ch["realm"], ch["nonce"]
	if newHash == nil || nonce == "" {
		return "", false
	}
	ha1 := hexHash(newHash, username+":"+realm+":"+password)
	ha2 := hexHash(newHash, method+":"+uri)
	qopAuth := false
	for _, q := range strings.Split(ch["qop"], ",") {
		if strings.TrimSpace(q) == "auth" {
			qopAuth = true
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=%s`, username, realm, nonce, uri, ch["algorithm"])
	if qopAuth {
		const nc = "00000001"
		cnonce := randHex(8)
		resp := hexHash(newHash, ha1+":"+nonce+":"+nc+":"+cnonce+":auth:"+ha2)
		fmt.Fprintf(&b, `, response="%s", qop=auth, nc=%s, cnonce="%s"`, resp, nc, cnonce)
	} else {
		fmt.Fprintf(&b, `, response="%s"`, hexHash(newHash, ha1+":"+nonce+":"+ha2))
	}
	if op, ok := ch["opaque"]; ok {
		fmt.Fprintf(&b, `, opaque="%s"`, op)
	}
	return b.String(), true
}

// randHex returns 2n hex digits for branches, tags, Call-IDs and cnonces:
// unique, not secret, so math/rand's per-thread generator is enough.
func randHex(n int) string {
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], mrand.Uint64())
	}
	return hex.EncodeToString(b[:n])
}

// ---- users -------------------------------------------------------------------------

// userSource returns user i of the configured list.
type userSource struct {
	n     int
	get   func(i int) user
	names string // description for the summary
}

func newUsers(c config) (*userSource, error) {
	if c.auth == "digest" {
		return &userSource{n: c.users, names: fmt.Sprintf(c.userFmt, c.userBase) + ".." + fmt.Sprintf(c.userFmt, c.userBase+c.users-1),
			get: func(i int) user {
				k := c.userBase + i
				return user{idx: i, name: fmt.Sprintf(c.userFmt, k), password: fmt.Sprintf(c.passFmt, k)}
			}}, nil
	}
	data, err := os.ReadFile(c.tokens)
	if err != nil {
		return nil, err
	}
	var list []user
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ';' || r == ',' || r == ' ' || r == '\t' })
		if len(f) < 2 {
			continue // SIPp's SEQUENTIAL header, blank lines
		}
		list = append(list, user{idx: len(list), name: f[0], token: f[1]})
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s: no user;token lines", c.tokens)
	}
	return &userSource{n: len(list), names: c.tokens, get: func(i int) user { return list[i] }}, nil
}

// ---- load ----------------------------------------------------------------------------

type tally struct {
	mu       sync.Mutex
	ok       int
	failed   int
	reasons  map[string]int
	lat      []time.Duration
	retrans  int
	lastDone time.Time
}

func (t *tally) add(o outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.retrans += o.retrans
	if o.ok {
		t.ok++
		t.lat = append(t.lat, o.latency)
		t.lastDone = time.Now()
		return
	}
	t.failed++
	t.reasons[o.reason]++
}

func runLoad(ctx context.Context, c config) int {
	users, err := newUsers(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sipload:", err)
		return 1
	}
	var lost atomic.Int64
	var closing atomic.Bool // connections ending from here on are ours
	conns := make([]*sipConn, c.conns)
	for i := range conns {
		conns[i], err = dial(ctx, c, func(err error) {
			if !closing.Load() {
				lost.Add(1)
				fmt.Fprintf(os.Stderr, "sipload: connection lost: %v\n", err)
			}
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "sipload: connection %d to %s over %s: %v\n", i, c.target, c.transport, err)
			closing.Store(true)
			for _, sc := range conns[:i] {
				sc.closeFn()
			}
			return 1
		}
	}
	g := &registrar{c: c, transp: strings.ToUpper(c.transport)}
	planned := int(c.rate*c.duration.Seconds() + 0.5)
	t := &tally{reasons: map[string]int{}, lat: make([]time.Duration, 0, planned)}
	rng := mrand.New(mrand.NewPCG(c.seed, 0x5eed))
	sem := make(chan struct{}, c.maxOut)
	var wg sync.WaitGroup
	var skipped, late, peak int
	ru0 := cpuTime()
	start := time.Now()
	interval := time.Duration(float64(time.Second) / c.rate)
	started := 0
schedule:
	for i := 0; i < planned; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				break schedule
			}
		} else if -d > 10*time.Millisecond {
			late++ // the generator itself fell behind
		}
		if ctx.Err() != nil {
			break
		}
		k := i % users.n
		if c.pick == "random" {
			k = rng.IntN(users.n)
		}
		u := users.get(k)
		select {
		case sem <- struct{}{}:
		default:
			skipped++
			continue
		}
		peak = max(peak, len(sem))
		started++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t.add(g.register(ctx, conns[u.idx%len(conns)], u))
		}()
	}
	sendEnd := time.Now()
	// Bounded drain: a registration has at most two transactions.
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2*c.timeout + time.Second):
		fmt.Fprintln(os.Stderr, "sipload: registrations still outstanding after the drain deadline")
	}
	end := time.Now()
	cpu := cpuTime() - ru0
	closing.Store(true)
	for _, sc := range conns {
		sc.closeFn()
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	lat := append([]time.Duration(nil), t.lat...)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	el := end.Sub(start)
	if !t.lastDone.IsZero() {
		el = t.lastDone.Sub(start)
	}
	failed := t.failed
	failPct := 0.0
	if planned > 0 {
		failPct = 100 * float64(failed+skipped) / float64(planned)
	}
	var reasons []string
	for r, n := range t.reasons {
		reasons = append(reasons, r+":"+strconv.Itoa(n))
	}
	sort.Strings(reasons)
	alg := c.alg
	if c.auth == "bearer" {
		alg = "none"
	}
	f := fields{}
	f.add("transport", c.transport)
	f.add("target", c.target)
	f.add("auth", c.auth)
	f.add("alg", alg)
	f.add("conns", c.conns)
	f.add("rate", trimFloat(c.rate))
	f.add("duration_s", trimFloat(c.duration.Seconds()))
	f.add("users", users.n)
	f.add("pick", c.pick)
	f.add("planned", planned)
	f.add("started", started)
	f.add("skipped", skipped)
	f.add("ok", t.ok)
	f.add("failed", failed)
	f.add("fail_pct", fmt.Sprintf("%.3f", failPct))
	f.add("timeouts", t.reasons["timeout"])
	f.add("conn_lost", lost.Load())
	f.add("retrans", t.retrans)
	f.add("elapsed_s", fmt.Sprintf("%.2f", el.Seconds()))
	f.add("send_rate", fmt.Sprintf("%.1f", float64(started)/max(sendEnd.Sub(start).Seconds(), 1e-9)))
	f.add("ok_per_s", fmt.Sprintf("%.1f", float64(t.ok)/max(el.Seconds(), 1e-9)))
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50_ms", 0.50}, {"p90_ms", 0.90}, {"p99_ms", 0.99}, {"p999_ms", 0.999}} {
		f.add(q.name, ms(quantile(lat, q.q)))
	}
	f.add("max_ms", ms(quantile(lat, 1)))
	f.add("lat_samples", len(lat))
	f.add("max_outstanding", c.maxOut)
	f.add("peak_outstanding", peak)
	f.add("sched_late", late)
	f.add("gen_cpu_pct", fmt.Sprintf("%.1f", 100*cpu.Seconds()/max(end.Sub(start).Seconds(), 1e-9)))
	if len(reasons) == 0 {
		reasons = []string{"none"}
	}
	f.add("fail_reasons", strings.Join(reasons, ","))
	fmt.Println(c.label + " " + f.String())
	if c.latFile != "" {
		var b strings.Builder
		for _, d := range t.lat { // completion order
			b.WriteString(ms(d) + "\n")
		}
		if err := os.WriteFile(c.latFile, []byte(b.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "sipload:", err)
		}
	}
	return 0
}

// quantile returns the q-quantile of sorted (nearest rank), or -1 when
// empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return -1
	}
	k := int(q*float64(len(sorted)) + 0.999999)
	k = min(max(k, 1), len(sorted))
	return sorted[k-1]
}

func ms(d time.Duration) string {
	if d < 0 {
		return "na"
	}
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 3, 64)
}

func trimFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// cpuTime is this process's user+system CPU so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fields builds the key=value summary line in insertion order.
type fields []string

func (f *fields) add(k string, v any) { *f = append(*f, fmt.Sprintf("%s=%v", k, v)) }
func (f fields) String() string       { return strings.Join(f, " ") }

// ---- idle connections ----------------------------------------------------------------

func runIdle(ctx context.Context, c config) int {
	var closed atomic.Int64
	holding := atomic.Bool{}
	conns := make([]*sipConn, 0, c.idle)
	failures := map[string]int{}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / c.openRate)
	g := &registrar{c: c, transp: strings.ToUpper(c.transport)}
	optionsOK := 0
	for i := 0; i < c.idle && ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		sc, err := dial(ctx, c, func(error) {
			if holding.Load() {
				closed.Add(1)
			}
		})
		if err != nil {
			failures[errKind(err)]++
			continue
		}
		conns = append(conns, sc)
	}
	if c.idleOptions {
		// One OPTIONS per connection, a few at a time, so that the server
		// has read from every connection (its per-connection read state
		// exists) before the measurement.
		var wg sync.WaitGroup
		var ok atomic.Int64
		sem := make(chan struct{}, 64)
		for _, sc := range conns {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				branch, req := g.options(sc)
				if r, _, _ := g.transaction(ctx, sc, branch, req); r != nil && r.status == 200 {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		optionsOK = int(ok.Load())
	}
	openS := time.Since(start).Seconds()
	holding.Store(true)
	alive := 0
	for _, sc := range conns {
		if !sc.lost.Load() {
			alive++
		}
	}
	var reasons []string
	for r, n := range failures {
		reasons = append(reasons, r+":"+strconv.Itoa(n))
	}
	sort.Strings(reasons)
	if len(reasons) == 0 {
		reasons = []string{"none"}
	}
	if c.readyFile != "" {
		line := fmt.Sprintf("opened=%d alive=%d failed=%d options_ok=%d open_s=%.2f\n", len(conns), alive, c.idle-len(conns), optionsOK, openS)
		if err := os.WriteFile(c.readyFile+".tmp", []byte(line), 0o644); err == nil {
			_ = os.Rename(c.readyFile+".tmp", c.readyFile)
		}
	}
	held := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(c.hold):
	}
	heldS := time.Since(held).Seconds()
	holding.Store(false)
	for _, sc := range conns {
		sc.closeFn()
	}
	f := fields{}
	f.add("mode", "idle")
	f.add("transport", c.transport)
	f.add("target", c.target)
	f.add("wanted", c.idle)
	f.add("opened", len(conns))
	f.add("alive_at_ready", alive)
	f.add("failed", c.idle-len(conns))
	f.add("options_ok", optionsOK)
	f.add("open_s", fmt.Sprintf("%.2f", openS))
	f.add("held_s", fmt.Sprintf("%.1f", heldS))
	f.add("closed_by_server", closed.Load())
	f.add("fail_reasons", strings.Join(reasons, ","))
	fmt.Println(c.label + " " + f.String())
	return 0
}

// options builds an OPTIONS request (idle mode).
func (g *registrar) options(sc *sipConn) (string, []byte) {
	branch := "z9hG4bK" + randHex(10)
	d := g.c.domain
	msg := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=%s;rport\r\nMax-Forwards: 70\r\n"+
		"From: <sip:sipload@%s>;tag=%s\r\nTo: <sip:%s>\r\nCall-ID: %s@sipload\r\nCSeq: 1 OPTIONS\r\n"+
		"User-Agent: %s\r\nContent-Length: 0\r\n\r\n",
		d, g.transp, sc.via, branch, d, randHex(6), d, randHex(12), userAgent)
	return branch, []byte(msg)
}

// errKind shortens a dial error for the summary.
func errKind(err error) string {
	s := err.Error()
	for _, k := range []string{"connection refused", "connection reset", "timeout", "too many open files", "handshake", "EOF"} {
		if strings.Contains(s, k) {
			return strings.ReplaceAll(k, " ", "_")
		}
	}
	return "other"
}
