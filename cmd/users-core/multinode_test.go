package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/store/postgres/pgtest"
)

// The multi-node test runs two `users-core serve` processes on one
// PostgreSQL database, as behind a SIP load balancer, each with its own
// ports and node_id, and checks that what must be shared is: Digest nonces
// and their counts, brute-force locks, signing keys (across a rotation),
// bindings and their updates. It needs a PostgreSQL server (pgtest: skipped
// without one, failed under CI=true).

// multiNode is one serve process of the multi-node test.
type multiNode struct {
	*server
	name   string // its node_id
	config string // its config file
}

// multiNodeConfig writes node's TOML file: the shared database and data
// key, cheap Argon2id, three failures lock a username (no address bans:
// every request here comes from 127.0.0.1), and room for the concurrent
// test's contacts. The cache check interval is the default (250 ms).
func multiNodeConfig(t *testing.T, dbURL, dataKey, node string) string {
	t.Helper()
	return writeFile(t, t.TempDir(), node+".toml", fmt.Sprintf(`[users_core]
database_url = %q
data_key = %q
node_id = %q
domains = [%q]

[users_core.password]
argon2_memory_cost = 1024
argon2_time_cost = 1
argon2_parallelism = 1

[users_core.lockout]
user_max_failures = 3
addr_max_failures = 0

[users_core.sip]
max_contacts = 100
`, dbURL, dataKey, node, sipDomain))
}

func startMultiNode(t *testing.T, name, config string) *multiNode {
	t.Helper()
	n := &multiNode{server: startServe(t, t.TempDir(), "--config", config), name: name, config: config}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, n.stderr)
		}
	})
	return n
}

// phoneAt is newPhone for a serve process: a sipgo client registering user
// through the listener at addr.
func phoneAt(t testing.TB, addr, transport, user string, port int) *phone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("users-core-multinode-test"))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	return &phone{
		t: t, ua: ua, cli: cli, transport: transport, server: addr, user: user,
		callID: fmt.Sprintf("%s-%d-%d@multinode.test", user, port, time.Now().UnixNano()), cseq: 1,
		contact: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: port},
	}
}

// loginAt logs user in at addr and returns the access token.
func loginAt(t testing.TB, addr, user, password string) string {
	t.Helper()
	st, _, body := callAt(t, addr, "POST", "/auth/login", map[string]string{"username": user, "password": password})
	tok, _ := body["access_token"].(string)
	if st != 200 || tok == "" {
		t.Fatalf("login %s at %s: %d %v", user, addr, st, body)
	}
	return tok
}

// registrationsAt returns the registrations of aor as the HTTP API at addr
// lists them.
func registrationsAt(t testing.TB, addr, token, aor string) []map[string]any {
	t.Helper()
	st, _, body := callAt(t, addr, "GET", "/registrations?aor="+aor, nil, "Authorization", "Bearer "+token)
	if st != 200 {
		t.Fatalf("GET /registrations at %s: %d %v", addr, st, body)
	}
	var out []map[string]any
	list, _ := body["registrations"].([]any)
	for _, r := range list {
		out = append(out, r.(map[string]any))
	}
	return out
}

// tokenKID returns the kid in a JWT's header.
func tokenKID(t testing.TB, token string) string {
	t.Helper()
	hdr, _, ok := strings.Cut(token, ".")
	if !ok {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(hdr)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil || h.KID == "" {
		t.Fatalf("token header %s: %v", raw, err)
	}
	return h.KID
}

func TestMultiNodeOnOnePostgreSQL(t *testing.T) {
	began := time.Now()
	dbURL := pgtest.NewDatabase(t)
	key := make([]byte, 32)
	rand.Read(key)
	dataKey := hex.EncodeToString(key) // every node must hold the same data key
	cfgA := multiNodeConfig(t, dbURL, dataKey, "node-a")
	cfgB := multiNodeConfig(t, dbURL, dataKey, "node-b")

	cliDir := t.TempDir()
	runCLI(t, cliDir, alicePassword+"\n", "user", "add", "root", "--role", "admin", "--password-stdin", "--config", cfgA).want(t, 0, "")
	users := writeFile(t, t.TempDir(), "users.csv", fmt.Sprintf("alice,%s\nmallory,%s\ncarol,%s\n", alicePassword, alicePassword, alicePassword))
	runCLI(t, cliDir, "", "user", "import", users, "--config", cfgA).want(t, 0, "")

	a := startMultiNode(t, "node-a", cfgA)
	b := startMultiNode(t, "node-b", cfgB)
	t.Logf("two nodes up on one database in %v", time.Since(began).Round(time.Millisecond))
	rootAtB := loginAt(t, b.ready["http"], "root", alicePassword)

	t.Run("a Digest challenge from A is answered at B, and its replay is refused at A", func(t *testing.T) {
		p := phoneAt(t, a.ready["sip_udp"], "UDP", "alice", 5201)
		res := p.do(p.request(600))
		if res.StatusCode != 401 {
			t.Fatalf("REGISTER without credentials at A: %d", res.StatusCode)
		}
		auth := digestFor(t, res, identity.SHA256, "alice", alicePassword)
		p.server = b.ready["sip_udp"]
		if res := p.do(p.request(600, auth)); res.StatusCode != 200 {
			t.Fatalf("A's challenge answered at B: %d %s", res.StatusCode, res.Reason)
		}
		// The same Authorization (same nonce, same nc) at A, which never
		// saw it, and at B, which did.
		for _, n := range []*multiNode{a, b} {
			p.server = n.ready["sip_udp"]
			if res := p.do(p.request(600, auth)); res.StatusCode != 401 {
				t.Errorf("the replayed Authorization at %s: %d, want 401", n.name, res.StatusCode)
			}
		}
	})

	t.Run("a registration made at A is listed by B with A's node and flow", func(t *testing.T) {
		p := phoneAt(t, a.ready["sip_tcp"], "TCP", "alice", 5202)
		if res := p.registerDigest(identity.SHA256, alicePassword, 600); res.StatusCode != 200 {
			t.Fatalf("REGISTER at A: %d", res.StatusCode)
		}
		var found map[string]any
		for _, r := range registrationsAt(t, b.ready["http"], rootAtB, "sip:alice@"+sipDomain) {
			if strings.Contains(fmt.Sprint(r["contact"]), ":5202") {
				found = r
			}
		}
		if found == nil {
			t.Fatal("B does not list the binding made at A")
		}
		if found["node"] != "node-a" || found["transport"] != "TCP" || found["local_addr"] != a.ready["sip_tcp"] ||
			!strings.HasPrefix(fmt.Sprint(found["source"]), "127.0.0.1:") {
			t.Fatalf("B lists the binding as node %v, transport %v, local_addr %v, source %v; want node-a, TCP, %s, 127.0.0.1:port",
				found["node"], found["transport"], found["local_addr"], found["source"], a.ready["sip_tcp"])
		}
	})

	t.Run("a lock earned at A holds at B", func(t *testing.T) {
		p := phoneAt(t, a.ready["sip_udp"], "UDP", "mallory", 5203)
		for i := range 3 {
			if res := p.registerDigest(identity.SHA256, "not mallory's password", 600); res.StatusCode != 401 {
				t.Fatalf("wrong password %d at A: %d", i+1, res.StatusCode)
			}
		}
		if res := p.registerDigest(identity.SHA256, alicePassword, 600); res.StatusCode != 403 {
			t.Fatalf("the right password at A after 3 failures: %d, want 403", res.StatusCode)
		}
		// B learns of the lock at its next look at the database's lock
		// stamp: within cache.check_interval_ms (250 ms). Until then it may
		// still let mallory in.
		locked := time.Now()
		q := phoneAt(t, b.ready["sip_udp"], "UDP", "mallory", 5204)
		for deadline := locked.Add(5 * time.Second); ; {
			res := q.registerDigest(identity.SHA256, alicePassword, 600)
			if res.StatusCode == 403 {
				break
			}
			if res.StatusCode != 200 || time.Now().After(deadline) {
				t.Fatalf("the right password at B %v after the lock: %d, want 403 within the check interval", time.Since(locked), res.StatusCode)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("B refused the locked user %v after A locked it", time.Since(locked).Round(time.Millisecond))
		st, hdr, body := callAt(t, b.ready["http"], "POST", "/auth/login", map[string]string{"username": "mallory", "password": alicePassword})
		if st != 429 || errCode(body) != "ACCOUNT_LOCKED" || hdr.Get("Retry-After") == "" {
			t.Fatalf("HTTP login of the locked user at B: %d %v", st, body)
		}
	})

	t.Run("concurrent REGISTERs for one AoR through both nodes lose no update", func(t *testing.T) {
		const perNode = 10
		var wg sync.WaitGroup
		for i := range 2 * perNode {
			n := []*multiNode{a, b}[i%2]
			// Stream transports: the 200 lists every binding of the AoR,
			// and with 20 of them it outgrows a UDP datagram.
			transport := []string{"TCP", "WS"}[(i/2)%2]
			p := phoneAt(t, n.ready["sip_"+strings.ToLower(transport)], transport, "carol", 7000+i)
			wg.Go(func() {
				if res := p.registerDigest(identity.SHA256, alicePassword, 600); res.StatusCode != 200 {
					t.Errorf("phone %d through %s over %s: %d", i, n.name, transport, res.StatusCode)
				}
			})
		}
		wg.Wait()
		regs := registrationsAt(t, b.ready["http"], rootAtB, "sip:carol@"+sipDomain)
		byNode := map[string]int{}
		for _, r := range regs {
			byNode[fmt.Sprint(r["node"])]++
		}
		if len(regs) != 2*perNode || byNode["node-a"] != perNode || byNode["node-b"] != perNode {
			t.Fatalf("%d bindings after %d concurrent REGISTERs (by node: %v), want %d from each node", len(regs), 2*perNode, byNode, perNode)
		}
	})

	t.Run("a token issued by A verifies at B, also after the keys rotate", func(t *testing.T) {
		before := loginAt(t, a.ready["http"], "alice", alicePassword)
		p := phoneAt(t, b.ready["sip_tcp"], "TCP", "alice", 5205)
		bearerAuth := func(tok string) sip.Header { return sip.NewHeader("Authorization", "Bearer "+tok) }
		if res := p.do(p.request(600, bearerAuth(before))); res.StatusCode != 200 {
			t.Fatalf("Bearer REGISTER at B with A's token: %d", res.StatusCode)
		}
		// An emergency rotation from the CLI on the shared database: the
		// new key signs at once, the old one is retired but still verifies.
		runCLI(t, cliDir, "", "keys", "rotate", "--now", "--config", cfgB).want(t, 0, "")
		if res := p.do(p.request(600, bearerAuth(before))); res.StatusCode != 200 {
			t.Fatalf("Bearer REGISTER at B with A's token of the retired key: %d", res.StatusCode)
		}
		// A restarted (or A at its next key reload, within a minute) signs
		// with the new key; B has not reloaded yet and must still accept it.
		// Last of the checks: the restarted A lives only in this subtest.
		a.stop(t)
		a2 := startMultiNode(t, "node-a", cfgA)
		after := loginAt(t, a2.ready["http"], "alice", alicePassword)
		if tokenKID(t, after) == tokenKID(t, before) {
			t.Fatalf("A still signs with kid %s after the rotation", tokenKID(t, before))
		}
		if res := p.do(p.request(600, bearerAuth(after))); res.StatusCode != 200 {
			t.Fatalf("Bearer REGISTER at B with A's token of the new key: %d", res.StatusCode)
		}
		st, _, _ := callAt(t, b.ready["http"], "GET", "/registrations?aor=sip:alice@"+sipDomain, nil, "Authorization", "Bearer "+after)
		if st != 200 {
			t.Fatalf("B's HTTP API with A's new-key token: %d", st)
		}
		a2.stop(t)
	})

	b.stop(t)
	t.Logf("multi-node test: %v in all", time.Since(began).Round(time.Millisecond))
}
