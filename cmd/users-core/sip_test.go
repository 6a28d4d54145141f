package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
)

const sipDomain = "example.test"

// sipMain starts Main with every SIP transport but TLS/WSS on port 0 and
// all three Digest algorithms enabled.
func sipMain(t testing.TB, dir string, mutate ...func(*Config)) *Main {
	t.Helper()
	return startMain(t, dir, append([]func(*Config){func(c *Config) {
		c.UsersCore.Domains = []string{sipDomain}
		sc := &c.UsersCore.SIP
		sc.UDP, sc.TCP, sc.WS = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		sc.DigestAlgorithms = []string{"SHA-512-256", "SHA-256", "MD5"}
	}}, mutate...)...)
}

// sipAddr returns the bound address of transport ("udp", "tcp", "ws").
func sipAddr(t testing.TB, m *Main, transport string) string {
	t.Helper()
	b := m.Addrs()
	a := b["sip_"+transport]
	if a == "" {
		t.Fatalf("no %s listener: %v", transport, b)
	}
	return a
}

// phone is a sipgo client registering one user.
type phone struct {
	t         testing.TB
	ua        *sipgo.UserAgent
	cli       *sipgo.Client
	transport string // UDP, TCP, WS
	server    string
	user      string
	callID    string
	cseq      uint32
	contact   sip.Uri
}

func newPhone(t testing.TB, m *Main, transport, user string) *phone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("users-core-test"))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	return &phone{
		t: t, ua: ua, cli: cli, transport: transport, server: sipAddr(t, m, strings.ToLower(transport)),
		user: user, callID: fmt.Sprintf("%s-%d@test", user, time.Now().UnixNano()), cseq: 1,
		contact: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: 5099 + int(time.Now().UnixNano()%500)},
	}
}

// request builds the next REGISTER of p with the given extra headers.
func (p *phone) request(expires int, headers ...sip.Header) *sip.Request {
	aor := sip.Uri{Scheme: "sip", User: p.user, Host: sipDomain}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: sipDomain})
	req.SetDestination(p.server)
	req.SetTransport(p.transport)
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	cid := sip.CallIDHeader(p.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: p.cseq, MethodName: sip.REGISTER})
	p.cseq++
	req.AppendHeader(&sip.ContactHeader{Address: p.contact, Params: sip.NewParams()})
	exp := sip.ExpiresHeader(expires)
	req.AppendHeader(&exp)
	for _, h := range headers {
		req.AppendHeader(h)
	}
	return req
}

func (p *phone) do(req *sip.Request) *sip.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		p.t.Fatalf("%s REGISTER: %v", p.transport, err)
	}
	return res
}

// digestFor answers the challenge of alg in res with password.
func digestFor(t testing.TB, res *sip.Response, alg identity.DigestAlgorithm, user, password string) sip.Header {
	t.Helper()
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		if !strings.HasPrefix(h.Value(), "Digest") {
			continue
		}
		chal, err := digest.ParseChallenge(h.Value())
		if err != nil {
			t.Fatalf("challenge %q: %v", h.Value(), err)
		}
		if !strings.EqualFold(chal.Algorithm, string(alg)) {
			continue
		}
		cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:" + sipDomain, Username: user, Password: password, Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		return sip.NewHeader("Authorization", cred.String())
	}
	t.Fatalf("no %s challenge in %v", alg, res.GetHeaders("WWW-Authenticate"))
	return nil
}

// registerDigest runs REGISTER, 401, REGISTER with Digest and returns the
// final answer.
func (p *phone) registerDigest(alg identity.DigestAlgorithm, password string, expires int) *sip.Response {
	p.t.Helper()
	res := p.do(p.request(expires))
	if res.StatusCode != 401 {
		p.t.Fatalf("first REGISTER: %d, want 401", res.StatusCode)
	}
	return p.do(p.request(expires, digestFor(p.t, res, alg, p.user, password)))
}

func TestSIPRegisterDigestEveryTransportAndAlgorithm(t *testing.T) {
	m := sipMain(t, t.TempDir())
	addUser(t, m, "alice")
	for _, transport := range []string{"UDP", "TCP", "WS"} {
		for _, alg := range []identity.DigestAlgorithm{identity.SHA512256, identity.SHA256, identity.MD5} {
			t.Run(transport+"/"+string(alg), func(t *testing.T) {
				p := newPhone(t, m, transport, "alice")
				res := p.registerDigest(alg, alicePassword, 600)
				if res.StatusCode != 200 {
					t.Fatalf("%d %s", res.StatusCode, res.Reason)
				}
				if res.GetHeader("Date") == nil || !hasContact(res, p.contact) {
					t.Fatalf("200 lacks Date or our Contact:\n%s", res)
				}
				if bad := p.registerDigest(alg, "wrong password entirely", 600); bad.StatusCode != 401 {
					t.Fatalf("wrong password: %d", bad.StatusCode)
				}
			})
		}
	}
}

func hasContact(res *sip.Response, u sip.Uri) bool {
	for _, h := range res.GetHeaders("Contact") {
		if strings.Contains(h.Value(), u.Host+":"+fmt.Sprint(u.Port)) && strings.Contains(h.Value(), "expires=") {
			return true
		}
	}
	return false
}

func TestSIPChallengeOffersAlgorithmsInOrderAndFitsUDP(t *testing.T) {
	m := sipMain(t, t.TempDir(), func(c *Config) { c.UsersCore.SIP.BearerChallenge = []string{"UDP"} })
	p := newPhone(t, m, "UDP", "nobody")
	res := p.do(p.request(600))
	var algs []string
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		v := h.Value()
		if strings.HasPrefix(v, "Bearer") {
			algs = append(algs, "Bearer")
			continue
		}
		chal, err := digest.ParseChallenge(v)
		if err != nil || chal.Realm != sipDomain || len(chal.QOP) != 1 || chal.QOP[0] != "auth" {
			t.Fatalf("challenge %q", v)
		}
		algs = append(algs, chal.Algorithm)
	}
	if got := strings.Join(algs, ","); got != "SHA-512-256,SHA-256,MD5,Bearer" {
		t.Fatalf("challenges %s", got)
	}
	if size := len(res.String()); size > 1300 {
		t.Fatalf("the 401 with every challenge is %d bytes, over sipgo's UDP limit of 1300", size)
	} else {
		t.Logf("401 with three Digest challenges and Bearer: %d bytes", size)
	}
}

func TestSIPBearerOverWebSocket(t *testing.T) {
	m := sipMain(t, t.TempDir())
	addUser(t, m, "alice")
	addUser(t, m, "bob")
	_, _, body := login(t, m, "alice", alicePassword)
	token := body["access_token"].(string)

	p := newPhone(t, m, "WS", "alice")
	res := p.do(p.request(600, sip.NewHeader("Authorization", "Bearer "+token)))
	if res.StatusCode != 200 {
		t.Fatalf("Bearer REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	t.Run("a binding does not outlive its token", func(t *testing.T) {
		for _, h := range res.GetHeaders("Contact") {
			var secs int
			if i := strings.Index(h.Value(), "expires="); i >= 0 {
				fmt.Sscan(h.Value()[i+len("expires="):], &secs)
			}
			if secs > 900 {
				t.Fatalf("binding expires in %d s, past the 900 s token", secs)
			}
		}
	})
	t.Run("a token for another AoR is 403", func(t *testing.T) {
		q := newPhone(t, m, "WS", "bob")
		if res := q.do(q.request(600, sip.NewHeader("Authorization", "Bearer "+token))); res.StatusCode != 403 {
			t.Fatalf("%d", res.StatusCode)
		}
	})
	t.Run("a bad token is 401 invalid_token", func(t *testing.T) {
		q := newPhone(t, m, "UDP", "alice")
		res := q.do(q.request(600, sip.NewHeader("Authorization", "Bearer "+token[:len(token)-4]+"AAAA")))
		h := res.GetHeader("WWW-Authenticate")
		if res.StatusCode != 401 || h == nil || !strings.Contains(h.Value(), `error="invalid_token"`) {
			t.Fatalf("%d %v", res.StatusCode, h)
		}
	})
}

func TestSIPBindingsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	m := sipMain(t, dir)
	addUser(t, m, "alice")
	p := newPhone(t, m, "TCP", "alice")
	if res := p.registerDigest(identity.SHA256, alicePassword, 3600); res.StatusCode != 200 {
		t.Fatalf("%d", res.StatusCode)
	}
	m.Close()
	m = sipMain(t, dir)
	bs, err := m.app.Store.Bindings(context.Background(), "sip:alice@"+sipDomain, time.Now())
	if err != nil || len(bs) != 1 || bs[0].Transport != "TCP" {
		t.Fatalf("after restart: %v %+v", err, bs)
	}
}

func TestSIPConcurrentRegistersLoseNoUpdate(t *testing.T) {
	m := sipMain(t, t.TempDir())
	addUser(t, m, "alice")
	const n = 8
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			p := newPhone(t, m, []string{"UDP", "TCP"}[i%2], "alice")
			p.contact.Port = 6000 + i
			if res := p.registerDigest(identity.MD5, alicePassword, 600); res.StatusCode != 200 {
				t.Errorf("phone %d: %d", i, res.StatusCode)
			}
		}(i)
	}
	wg.Wait()
	bs, err := m.app.Store.Bindings(context.Background(), "sip:alice@"+sipDomain, time.Now())
	if err != nil || len(bs) != n {
		t.Fatalf("%d bindings after %d concurrent REGISTERs (err %v)", len(bs), n, err)
	}
}

func TestSIPKeepalivesAndRetransmissions(t *testing.T) {
	m := sipMain(t, t.TempDir())
	addUser(t, m, "alice")

	t.Run("a double-CRLF ping on TCP gets a CRLF pong", func(t *testing.T) {
		c, err := net.Dial("tcp", sipAddr(t, m, "tcp"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "\r\n" {
			t.Fatalf("pong %q, %v", buf[:n], err)
		}
	})

	t.Run("a retransmitted UDP REGISTER is answered again, not applied twice", func(t *testing.T) {
		p := newPhone(t, m, "UDP", "alice")
		res := p.do(p.request(600))
		req := p.request(600, digestFor(t, res, identity.SHA256, "alice", alicePassword))
		u := newUDPPeer(t, m)
		raw := u.frame(req)
		first := u.exchange(raw)
		if !strings.HasPrefix(first, "SIP/2.0 200 ") {
			t.Fatalf("first send: %q", strings.SplitN(first, "\r\n", 2)[0])
		}
		// The same transaction (same branch) gets the same answer, byte
		// for byte: the To tag and the Date of the first.
		for i := 2; i <= 3; i++ {
			if again := u.exchange(raw); again != first {
				t.Fatalf("send %d answered differently:\n%s\nthen\n%s", i, first, again)
			}
		}
		if n := m.SIPServer().FilterStats().UDPTransactions; n < 1 {
			t.Errorf("%d UDP transactions kept, want this one at least", n)
		}
		// The same credentials in a new transaction are a replay.
		req.RemoveHeader("Via")
		req.RemoveHeader("Max-Forwards")
		req.RemoveHeader("Content-Length")
		if replay := u.exchange(u.frame(req)); !strings.HasPrefix(replay, "SIP/2.0 401 ") {
			t.Fatalf("replayed Authorization in a new transaction: %q", strings.SplitN(replay, "\r\n", 2)[0])
		}
	})

	t.Run("a retransmitted UDP REGISTER without credentials gets the same challenge", func(t *testing.T) {
		p := newPhone(t, m, "UDP", "alice")
		u := newUDPPeer(t, m)
		raw := u.frame(p.request(600))
		first, again := u.exchange(raw), u.exchange(raw)
		if !strings.HasPrefix(first, "SIP/2.0 401 ") {
			t.Fatalf("first send: %q", strings.SplitN(first, "\r\n", 2)[0])
		}
		// A client that sent its REGISTER again before the 401 reached
		// it must not see two different challenges (SIPp aborts the
		// registration when it does).
		if again != first {
			t.Fatalf("the retransmission got another challenge:\n%s\nthen\n%s", first, again)
		}
	})
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths.
func selfSigned(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

func TestSIPRegisterOverTLSAndWSS(t *testing.T) {
	cert, key := selfSigned(t)
	m := sipMain(t, t.TempDir(), func(c *Config) {
		sc := &c.UsersCore.SIP
		sc.TLS, sc.WSS, sc.TLSCert, sc.TLSKey = "127.0.0.1:0", "127.0.0.1:0", cert, key
	})
	addUser(t, m, "alice")
	for _, transport := range []string{"TLS", "WSS"} {
		t.Run(transport, func(t *testing.T) {
			ua, err := sipgo.NewUA(sipgo.WithUserAgent("users-core-test"),
				sipgo.WithUserAgenTLSConfig(&tls.Config{InsecureSkipVerify: true})) // test certificate
			if err != nil {
				t.Fatal(err)
			}
			defer ua.Close()
			cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
			if err != nil {
				t.Fatal(err)
			}
			p := newPhone(t, m, transport, "alice")
			p.ua, p.cli = ua, cli
			if res := p.registerDigest(identity.SHA256, alicePassword, 600); res.StatusCode != 200 {
				t.Fatalf("%d", res.StatusCode)
			}
		})
	}
}

func TestSIPDigestUsernameWithDomain(t *testing.T) {
	m := sipMain(t, t.TempDir())
	addUser(t, m, "alice")
	p := newPhone(t, m, "UDP", "alice")
	res := p.do(p.request(600))
	for _, alg := range []identity.DigestAlgorithm{identity.SHA256, identity.MD5} {
		auth := digestFor(t, res, alg, "alice@"+sipDomain, alicePassword)
		if got := p.do(p.request(600, auth)); got.StatusCode != 200 {
			t.Fatalf("%s with username alice@%s: %d", alg, sipDomain, got.StatusCode)
		}
	}
	other := digestFor(t, res, identity.SHA256, "alice@other.test", alicePassword)
	if got := p.do(p.request(600, other)); got.StatusCode != 401 {
		t.Fatalf("username in a foreign domain: %d", got.StatusCode)
	}
}

func TestSIPFallbackOffersMD5FirstToAClientThatCouldNotAnswer(t *testing.T) {
	m := sipMain(t, t.TempDir(), func(c *Config) { c.UsersCore.SIP.DigestAlgorithms = []string{"SHA-256", "MD5"} })
	p := newPhone(t, m, "UDP", "alice")
	first := p.do(p.request(600, sip.NewHeader("User-Agent", "OldPhone/1.0")))
	again := p.do(p.request(600, sip.NewHeader("User-Agent", "OldPhone/1.0")))
	order := func(res *sip.Response) string {
		var algs []string
		for _, h := range res.GetHeaders("WWW-Authenticate") {
			c, err := digest.ParseChallenge(h.Value())
			if err == nil {
				algs = append(algs, c.Algorithm)
			}
		}
		return strings.Join(algs, ",")
	}
	if got := order(first); got != "SHA-256,MD5" {
		t.Fatalf("first challenge %s", got)
	}
	if got := order(again); got != "MD5,SHA-256" {
		t.Fatalf("a client back without credentials on the same Call-ID got %s, want MD5 first", got)
	}
}

func TestSIPBearerFromATrustedIssuer(t *testing.T) {
	// An outside issuer with its own keys, published over HTTP.
	ks := jwks.NewMemoryKeyStore()
	sealer, err := jwks.NewMemorySealer()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := jwks.NewKeyring(context.Background(), jwks.KeyringConfig{Store: ks, Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(jwks.Handler(kr))
	defer srv.Close()
	const issuer = "https://idp.example.test/realms/voip"
	m := sipMain(t, t.TempDir(), func(c *Config) {
		c.Auth.TrustedIssuers = map[string]TrustedIssuer{"idp": {Issuer: issuer, JWKSURI: srv.URL, Audience: "voip-sip"}}
	})
	sign := func(user, scope string) string {
		now := time.Now()
		tok, err := kr.SignJWT("at+jwt", map[string]any{"iss": issuer, "sub": "ext-42", "aud": []string{"voip-sip"},
			"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
			"preferred_username": user, "scope": scope})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	p := newPhone(t, m, "TCP", "erin")
	if res := p.do(p.request(600, sip.NewHeader("Authorization", "Bearer "+sign("erin", "openid sip.register")))); res.StatusCode != 200 {
		t.Fatalf("trusted issuer's token: %d", res.StatusCode)
	}
	bs, _ := m.app.Store.Bindings(context.Background(), "sip:erin@"+sipDomain, time.Now())
	if len(bs) != 1 || bs[0].UserID != "idp:ext-42" {
		t.Fatalf("bindings %+v", bs)
	}
	if res := p.do(p.request(600, sip.NewHeader("Authorization", "Bearer "+sign("erin", "openid")))); res.StatusCode != 403 {
		t.Fatalf("a token without sip.register: %d", res.StatusCode)
	}
	if res := p.do(p.request(600, sip.NewHeader("Authorization", "Bearer "+sign("mallory", "sip.register")))); res.StatusCode != 403 {
		t.Fatalf("a token for another user: %d", res.StatusCode)
	}
}

// TestSIPLargeOKOverUDP: a 200 listing every binding of an AoR is sent
// over UDP even when it outgrows 1,300 bytes (RFC 3261 section 10.3 step 8
// requires all of them; the datagram is fragmented, as other registrars'
// are). It used to be dropped by the send-size cap, so the phone, already
// registered, retransmitted into a replay refusal.
func TestSIPLargeOKOverUDP(t *testing.T) {
	m := sipMain(t, t.TempDir())
	addUser(t, m, "alice")
	var last *sip.Response
	for i := range 10 {
		p := newPhone(t, m, "UDP", "alice")
		p.contact.User = fmt.Sprintf("alice-%02d-%s", i, strings.Repeat("x", 120))
		p.contact.Port = 7000 + i
		last = p.registerDigest(identity.MD5, alicePassword, 600)
		if last.StatusCode != 200 {
			t.Fatalf("phone %d: %d", i, last.StatusCode)
		}
	}
	if n := len(last.GetHeaders("Contact")); n != 10 {
		t.Fatalf("200 lists %d contacts, want 10", n)
	}
	if size := len(last.String()); size <= 1300 {
		t.Fatalf("the last 200 is only %d bytes; the test needs one above 1,300", size)
	}
}
