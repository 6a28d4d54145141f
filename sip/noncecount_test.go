package sip

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/emiago/sipgo/siptest"

	"github.com/rvoip/users-core/identity"
)

// Two registrars on one nonce secret and one NonceCountStore behave as two
// nodes on one database: these tests drive their handlers without sockets.

const (
	ncTestRealm    = "example.com"
	ncTestPassword = "correct horse battery staple"
)

// memNonceCounts is a NonceCountStore in memory; err, when set, fails
// every call.
type memNonceCounts struct {
	mu   sync.Mutex
	nc   map[string]uint32
	err  error
	uses int
}

func (m *memNonceCounts) UseNonceCount(_ context.Context, nonce string, nc uint32, _ time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.uses++
	if m.err != nil {
		return false, m.err
	}
	if nc == 0 || nc <= m.nc[nonce] {
		return false, nil
	}
	m.nc[nonce] = nc
	return true, nil
}

func (m *memNonceCounts) DeleteExpiredNonceCounts(context.Context, time.Time) (int, error) {
	return 0, nil
}

// ncTestCreds knows alice, whose HA1 is derived from ncTestPassword.
type ncTestCreds struct{}

func (ncTestCreds) DigestHA1(_ context.Context, username, realm string, alg identity.DigestAlgorithm, qualified bool) (*identity.User, string, bool, error) {
	if username != "alice" || qualified {
		return nil, "", false, nil
	}
	ha1, err := identity.HA1(alg, username, realm, ncTestPassword)
	if err != nil {
		return nil, "", false, err
	}
	return &identity.User{ID: "u-alice", Username: "alice", Active: true}, ha1, true, nil
}

// ncTestBindings keeps bindings in memory.
type ncTestBindings struct {
	mu sync.Mutex
	m  map[string][]Binding
}

func (b *ncTestBindings) UpdateBindings(_ context.Context, aor string, _ time.Time, fn func([]Binding) ([]Binding, error)) ([]Binding, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	next, err := fn(append([]Binding(nil), b.m[aor]...))
	if err != nil {
		return nil, err
	}
	b.m[aor] = next
	return next, nil
}

func (b *ncTestBindings) Bindings(_ context.Context, aor string, _ time.Time) ([]Binding, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Binding(nil), b.m[aor]...), nil
}

func (b *ncTestBindings) BindingByID(context.Context, string) (*Binding, error) {
	return nil, identity.ErrNotFound
}

func (b *ncTestBindings) DeleteExpiredBindings(context.Context, time.Time) (int, error) {
	return 0, nil
}

func (b *ncTestBindings) CountBindings(context.Context, time.Time) (int, error) { return 0, nil }

// ncTestRegulator never throttles.
type ncTestRegulator struct{}

func (ncTestRegulator) Check(context.Context, string, string) error           { return nil }
func (ncTestRegulator) Failure(context.Context, string, string) (bool, error) { return false, nil }
func (ncTestRegulator) Success(context.Context, string) error                 { return nil }

// ncTestNode returns a registrar sharing secret, bindings and counts
// (nil: none) with the other nodes of a test.
func ncTestNode(t *testing.T, secret []byte, bindings *ncTestBindings, counts NonceCountStore) *Server {
	t.Helper()
	s, err := NewServer(Config{
		Domains:     []string{ncTestRealm},
		Algorithms:  []identity.DigestAlgorithm{identity.SHA256},
		NonceSecret: secret,
		Credentials: ncTestCreds{},
		Regulator:   ncTestRegulator{},
		Bindings:    bindings,
		NonceCounts: counts,
		NewID:       func() string { return fmt.Sprint(time.Now().UnixNano()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

// ncTestRegister returns a REGISTER of alice, with authorization when it
// is not "".
func ncTestRegister(t *testing.T, cseq int, authorization string) *sip.Request {
	t.Helper()
	raw := "REGISTER sip:" + ncTestRealm + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK-nc" + fmt.Sprint(cseq) + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:alice@" + ncTestRealm + ">;tag=nc-test\r\n" +
		"To: <sip:alice@" + ncTestRealm + ">\r\n" +
		"Call-ID: nc-test@192.0.2.1\r\n" +
		fmt.Sprintf("CSeq: %d REGISTER\r\n", cseq) +
		"Contact: <sip:alice@192.0.2.1:5060>\r\n" +
		"Expires: 600\r\n"
	if authorization != "" {
		raw += "Authorization: " + authorization + "\r\n"
	}
	raw += "Content-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatalf("parsing the test REGISTER: %v", err)
	}
	req := msg.(*sip.Request)
	req.SetSource("192.0.2.1:5060")
	req.SetTransport("UDP")
	return req
}

// ncTestSend hands req to s and returns its one response.
func ncTestSend(t *testing.T, s *Server, req *sip.Request) *sip.Response {
	t.Helper()
	rec := siptest.NewServerTxRecorder(req)
	s.HandleRegister(req, rec)
	out := rec.Result()
	if len(out) != 1 {
		t.Fatalf("%d responses, want 1", len(out))
	}
	return out[0]
}

var ncTestNonceRE = regexp.MustCompile(`nonce="([^"]+)"`)

// ncTestAnswer gets a challenge from s and returns alice's Authorization
// for it, nc 1.
func ncTestAnswer(t *testing.T, s *Server) string {
	t.Helper()
	res := ncTestSend(t, s, ncTestRegister(t, 1, ""))
	h := res.GetHeader("WWW-Authenticate")
	if res.StatusCode != 401 || h == nil {
		t.Fatalf("challenge: %d %v", res.StatusCode, h)
	}
	m := ncTestNonceRE.FindStringSubmatch(h.Value())
	if m == nil {
		t.Fatalf("no nonce in %q", h.Value())
	}
	ha1, _ := identity.HA1(identity.SHA256, "alice", ncTestRealm, ncTestPassword)
	uri := "sip:" + ncTestRealm
	resp := DigestResponse(identity.SHA256, ha1, m[1], "00000001", "0a4f113b", "auth", "REGISTER", uri)
	return fmt.Sprintf(`Digest username="alice", realm=%q, nonce=%q, uri=%q, algorithm=SHA-256, qop=auth, nc=00000001, cnonce="0a4f113b", response=%q`,
		ncTestRealm, m[1], uri, resp)
}

func TestSharedNonceCountRefusesAReplayAtAnotherNode(t *testing.T) {
	secret := testNonceSecret(t, 7)
	bindings := &ncTestBindings{m: map[string][]Binding{}}
	counts := &memNonceCounts{nc: map[string]uint32{}}
	a := ncTestNode(t, secret, bindings, counts)
	b := ncTestNode(t, secret, bindings, counts)

	auth := ncTestAnswer(t, a)
	if res := ncTestSend(t, b, ncTestRegister(t, 2, auth)); res.StatusCode != 200 {
		t.Fatalf("A's challenge answered at B: %d, want 200", res.StatusCode)
	}
	for name, s := range map[string]*Server{"A (never saw the answer)": a, "B (saw it)": b} {
		res := ncTestSend(t, s, ncTestRegister(t, 3, auth))
		if res.StatusCode != 401 {
			t.Errorf("the same Authorization replayed at %s: %d, want 401", name, res.StatusCode)
		}
	}
	// B refused its own replay from memory, A asked the store: 2 uses.
	if counts.uses != 2 {
		t.Errorf("%d uses of the shared counter, want 2 (a replay to the node that saw it costs no database write)", counts.uses)
	}
}

func TestNonceCountWithoutASharedStoreIsPerNode(t *testing.T) {
	// What the NonceCountStore is for: without it, a node accepts an
	// Authorization another node already accepted.
	secret := testNonceSecret(t, 8)
	bindings := &ncTestBindings{m: map[string][]Binding{}}
	a := ncTestNode(t, secret, bindings, nil)
	b := ncTestNode(t, secret, bindings, nil)
	auth := ncTestAnswer(t, a)
	if res := ncTestSend(t, b, ncTestRegister(t, 2, auth)); res.StatusCode != 200 {
		t.Fatalf("at B: %d", res.StatusCode)
	}
	if res := ncTestSend(t, a, ncTestRegister(t, 3, auth)); res.StatusCode != 200 {
		t.Fatalf("at A without a shared store: %d, want 200 (per-node guard only)", res.StatusCode)
	}
}

func TestSharedNonceCountStoreErrorIs503(t *testing.T) {
	secret := testNonceSecret(t, 9)
	bindings := &ncTestBindings{m: map[string][]Binding{}}
	for _, c := range []struct {
		name string
		err  error
	}{
		{"a broken store", identity.Internal("test.UseNonceCount", errors.New("connection refused"))},
		{"an overloaded store", &identity.Error{Op: "test.UseNonceCount", Code: identity.CodeUnavailable, Message: "busy"}},
		{"a store past the deadline", context.DeadlineExceeded},
	} {
		t.Run(c.name, func(t *testing.T) {
			counts := &memNonceCounts{nc: map[string]uint32{}, err: c.err}
			s := ncTestNode(t, secret, bindings, counts)
			res := ncTestSend(t, s, ncTestRegister(t, 2, ncTestAnswer(t, s)))
			if res.StatusCode != 503 {
				t.Fatalf("REGISTER with the nonce-count store failing: %d, want 503", res.StatusCode)
			}
			if ra := res.GetHeader("Retry-After"); ra == nil || ra.Value() != overloadRetryAfter {
				t.Fatalf("Retry-After %v, want %s", ra, overloadRetryAfter)
			}
			if bs, _ := bindings.Bindings(context.Background(), "sip:alice@"+ncTestRealm, time.Now()); len(bs) != 0 {
				t.Fatalf("a REGISTER answered 503 changed the bindings: %v", bs)
			}
		})
	}
}
