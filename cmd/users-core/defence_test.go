package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/rvoip/users-core/identity"
)

// normalize masks what legitimately differs between two answers: the
// echoed request headers (Via, From, To, Call-ID, CSeq) and nonces.
func normalize(res *sip.Response) string {
	var out []string
	for _, line := range strings.Split(res.String(), "\r\n") {
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(name) {
		case "via", "from", "to", "call-id", "cseq":
			out = append(out, name+": <echo>")
			continue
		}
		out = append(out, line)
	}
	return nonceParamRE.ReplaceAllString(strings.Join(out, "\n"), `nonce="<nonce>"`)
}

var nonceParamRE = regexp.MustCompile(`nonce="[^"]*"`)

func TestEnumerationAnswersAreIdenticalOverUDPAndTCP(t *testing.T) {
	m := sipMain(t, t.TempDir())
	addUser(t, m, "alice")
	ctx := context.Background()
	if _, err := m.app.Users.CreateUser(ctx, identity.NewUser{Username: "dora", Password: alicePassword, Disabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.app.Users.CreateUser(ctx, identity.NewUser{Username: "tess", Password: alicePassword, TokenOnly: true}); err != nil {
		t.Fatal(err)
	}
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			var challenges, failures []string
			for _, user := range []string{"alice", "x7f3k2q9", "dora", "tess"} {
				p := newPhone(t, m, transport, user)
				res := p.do(p.request(600))
				challenges = append(challenges, normalize(res))
				// A wrong password for every user, and the right one for
				// the disabled and token-only users: all must fail alike.
				pw := "wrong password entirely"
				if user == "dora" || user == "tess" {
					pw = alicePassword
				}
				bad := p.do(p.request(600, digestFor(t, res, identity.SHA256, user, pw)))
				failures = append(failures, normalize(bad))
			}
			for i := 1; i < len(challenges); i++ {
				if challenges[i] != challenges[0] {
					t.Errorf("challenge %d differs:\n%s\n---\n%s", i, challenges[0], challenges[i])
				}
				if failures[i] != failures[0] {
					t.Errorf("failure %d differs:\n%s\n---\n%s", i, failures[0], failures[i])
				}
			}
		})
	}
}

func TestGuessingLocksTheUserAndTheLockEnds(t *testing.T) {
	m := sipMain(t, t.TempDir(), func(c *Config) {
		l := &c.UsersCore.Lockout
		l.UserLockSeconds, l.AddrLockSeconds = 2, 2
	})
	addUser(t, m, "alice")
	p := newPhone(t, m, "UDP", "alice")
	locked := false
	for i := 0; i < 50; i++ {
		res := p.do(p.request(600))
		if res.StatusCode == 403 {
			locked = true
			continue
		}
		if bad := p.do(p.request(600, digestFor(t, res, identity.MD5, "alice", "guess number "+string(rune('a'+i%26))))); bad.StatusCode == 403 {
			locked = true
		}
	}
	if !locked {
		t.Fatal("50 wrong passwords did not end in a lock")
	}
	res := p.do(p.request(600))
	if res.StatusCode == 401 {
		res = p.do(p.request(600, digestFor(t, res, identity.MD5, "alice", alicePassword)))
	}
	if res.StatusCode != 403 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("the right password during the lock: %d", res.StatusCode)
	}
	time.Sleep(2100 * time.Millisecond)
	if ok := p.registerDigest(identity.MD5, alicePassword, 600); ok.StatusCode != 200 {
		t.Fatalf("after the lock: %d", ok.StatusCode)
	}
}

func TestReplayedAuthorizationIsRefused(t *testing.T) {
	m := sipMain(t, t.TempDir())
	addUser(t, m, "alice")
	p := newPhone(t, m, "UDP", "alice")
	res := p.do(p.request(600))
	auth := digestFor(t, res, identity.SHA256, "alice", alicePassword)
	if ok := p.do(p.request(600, auth)); ok.StatusCode != 200 {
		t.Fatalf("first use: %d", ok.StatusCode)
	}
	if again := p.do(p.request(600, auth)); again.StatusCode != 401 {
		t.Fatalf("the same Authorization (same nc) again: %d", again.StatusCode)
	}
	other := newPhone(t, m, "TCP", "alice")
	other.callID = p.callID
	other.cseq = p.cseq + 10
	if stolen := other.do(other.request(600, auth)); stolen.StatusCode != 401 {
		t.Fatalf("the captured Authorization from another source: %d", stolen.StatusCode)
	}
}
