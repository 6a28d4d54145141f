package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	_ "modernc.org/sqlite"
)

// The crash test runs the real binary under load and kills it with SIGKILL
// at random moments. Every REGISTER answered 200 (with the new contact) and
// every POST /users answered 201 must be in the database afterwards, and
// the database must pass PRAGMA integrity_check. Requests in flight at the
// kill may or may not have landed.

const (
	crashCycles    = 24
	crashSIPUsers  = 20
	crashDomain    = "localhost" // the default domain (Digest realm)
	crashRootPass  = "crash test root passphrase"
	crashSIPPrefix = "sipuser"
)

// crashEnv is the environment of every process of the crash test: cheap
// Argon2id (the same for every start), and room for the many contacts
// each AoR collects over the cycles.
func crashEnv(dataDir string) []string {
	return cleanEnv(
		"USERS_CORE_DATA_DIR="+dataDir,
		"USERS_CORE_LOG_FORMAT=json",
		"USERS_CORE_PASSWORD_ARGON2_MEMORY_COST=1024",
		"USERS_CORE_PASSWORD_ARGON2_TIME_COST=1",
		"USERS_CORE_PASSWORD_ARGON2_PARALLELISM=1",
		"USERS_CORE_SIP_MAX_CONTACTS=100000",
	)
}

func crashCLI(t *testing.T, dataDir, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = crashEnv(dataDir)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out.String())
	}
}

// crashServer is one serve process of the crash test.
type crashServer struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	ready  map[string]string
	done   chan error
}

func startCrashServer(t *testing.T, dataDir string) *crashServer {
	t.Helper()
	readyFile := filepath.Join(t.TempDir(), "ready.json")
	cmd := exec.Command(binary, "serve", "--http", "127.0.0.1:0", "--ready-file", readyFile,
		"--sip-udp", "127.0.0.1:0", "--sip-tcp", "127.0.0.1:0", "--sip-ws", "off")
	cmd.Env = crashEnv(dataDir)
	s := &crashServer{cmd: cmd, stderr: new(syncBuffer), done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = io.Discard, s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(s.kill)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(readyFile); err == nil && json.Unmarshal(b, &s.ready) == nil {
			return s
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("serve exited before ready: %v\nstderr: %s", err, s.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready in 20 s\nstderr: %s", s.stderr)
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone. It is
// idempotent.
func (s *crashServer) kill() {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Kill()
	err := <-s.done
	s.done <- err
}

// crashAcks are the acknowledged writes, checked after every kill.
type crashAcks struct {
	mu       sync.Mutex
	bindings map[string]string // contact token -> AoR
	users    map[string]string // user id -> username
}

func (a *crashAcks) binding(token, aor string) {
	a.mu.Lock()
	a.bindings[token] = aor
	a.mu.Unlock()
}

func (a *crashAcks) user(id, name string) {
	a.mu.Lock()
	a.users[id] = name
	a.mu.Unlock()
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: SIGKILLs the server under load")
	}
	start := time.Now()
	data := t.TempDir()
	crashCLI(t, data, crashRootPass+"\n", "user", "add", "root", "--role", "admin", "--password-stdin")
	var csv strings.Builder
	for i := 0; i < crashSIPUsers; i++ {
		fmt.Fprintf(&csv, "%s%02d,%s\n", crashSIPPrefix, i, crashSIPPassword(i))
	}
	crashCLI(t, data, "", "user", "import", writeFile(t, t.TempDir(), "users.csv", csv.String()))

	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	acks := &crashAcks{bindings: map[string]string{}, users: map[string]string{}}
	var attempts, sipAcks, userAcks atomic.Int64
	for cycle := 0; cycle < crashCycles; cycle++ {
		s := startCrashServer(t, data)
		token := crashLogin(t, s.ready["http"])

		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := 0; w < 6; w++ {
			transport := "TCP"
			if w%3 == 2 {
				transport = "UDP"
			}
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				crashSIPLoad(ctx, s.ready["sip_"+strings.ToLower(transport)], transport, cycle, w, acks, &attempts, &sipAcks)
			}(w)
		}
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				crashUserLoad(ctx, s.ready["http"], token, cycle, w, acks, &attempts, &userAcks)
			}(w)
		}
		time.Sleep(time.Duration(100+rng.Intn(700)) * time.Millisecond)
		s.kill() // SIGKILL: no shutdown, no checkpoint, no close
		cancel()
		wg.Wait()
		if err := <-s.done; err == nil {
			t.Fatalf("cycle %d: serve exited cleanly before the kill", cycle)
		} else {
			s.done <- err
		}
		crashCheck(t, cycle, data, acks)
	}

	// A last clean start proves the killed database also opens and recovers
	// in the server itself; then the check runs once more after it.
	s := startCrashServer(t, data)
	crashLogin(t, s.ready["http"])
	s.kill()
	crashCheck(t, crashCycles, data, acks)

	t.Logf("%d kill cycles, %d attempts, %d acknowledged REGISTERs and %d acknowledged user creates all present, integrity ok, in %v",
		crashCycles, attempts.Load(), sipAcks.Load(), userAcks.Load(), time.Since(start).Round(time.Millisecond))
	if sipAcks.Load() < crashCycles || userAcks.Load() < crashCycles {
		t.Fatalf("too little load was acknowledged to mean anything: %d REGISTERs, %d users", sipAcks.Load(), userAcks.Load())
	}
}

func crashSIPPassword(i int) string { return fmt.Sprintf("sip-user-password-%02d", i) }

func crashLogin(t *testing.T, httpAddr string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": "root", "password": crashRootPass})
	resp, err := http.Post("http://"+httpAddr+"/auth/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, raw)
	}
	tok, _ := body["access_token"].(string)
	if tok == "" {
		t.Fatalf("login: no access token in %s", raw)
	}
	return tok
}

// crashSIPLoad registers fresh contacts (a new Call-ID and contact per
// attempt, expires 3600) over transport until ctx ends, recording every 200
// that lists the new contact.
func crashSIPLoad(ctx context.Context, addr, transport string, cycle, worker int, acks *crashAcks, attempts, acked *atomic.Int64) {
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("users-core-crash-test"))
	if err != nil {
		return
	}
	defer ua.Close()
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		return
	}
	for n := 0; ctx.Err() == nil; n++ {
		i := (worker*7 + n) % crashSIPUsers
		user := fmt.Sprintf("%s%02d", crashSIPPrefix, i)
		token := fmt.Sprintf("c%d-w%d-n%d", cycle, worker, n)
		attempts.Add(1)
		ok := crashRegister(ctx, cli, addr, transport, user, crashSIPPassword(i), token)
		if ok {
			acks.binding(token, "sip:"+user+"@"+crashDomain)
			acked.Add(1)
		}
	}
}

// crashRegister runs REGISTER, 401, REGISTER with SHA-256 Digest for the
// contact sip:token@127.0.0.1:5999 and reports whether it was answered 200
// with that contact listed.
func crashRegister(ctx context.Context, cli *sipgo.Client, addr, transport, user, password, token string) bool {
	aor := sip.Uri{Scheme: "sip", User: user, Host: crashDomain}
	callID := token + "@crash.test"
	contact := sip.Uri{Scheme: "sip", User: token, Host: "127.0.0.1", Port: 5999}
	build := func(cseq uint32, auth sip.Header) *sip.Request {
		req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: crashDomain})
		req.SetDestination(addr)
		req.SetTransport(transport)
		from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
		from.Params.Add("tag", sip.GenerateTagN(10))
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
		cid := sip.CallIDHeader(callID)
		req.AppendHeader(&cid)
		req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.REGISTER})
		req.AppendHeader(&sip.ContactHeader{Address: contact, Params: sip.NewParams()})
		exp := sip.ExpiresHeader(3600)
		req.AppendHeader(&exp)
		if auth != nil {
			req.AppendHeader(auth)
		}
		return req
	}
	do := func(req *sip.Request) *sip.Response {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		res, err := cli.Do(rctx, req)
		if err != nil {
			return nil
		}
		return res
	}
	res := do(build(1, nil))
	if res == nil || res.StatusCode != 401 {
		return false
	}
	var auth sip.Header
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		chal, err := digest.ParseChallenge(h.Value())
		if err != nil || !strings.EqualFold(chal.Algorithm, "SHA-256") {
			continue
		}
		cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:" + crashDomain, Username: user, Password: password, Count: 1})
		if err != nil {
			return false
		}
		auth = sip.NewHeader("Authorization", cred.String())
		break
	}
	if auth == nil {
		return false
	}
	res = do(build(2, auth))
	if res == nil || res.StatusCode != 200 {
		return false
	}
	for _, h := range res.GetHeaders("Contact") {
		if strings.Contains(h.Value(), token+"@127.0.0.1:5999") {
			return true
		}
	}
	return false
}

// crashUserLoad creates users with unique names over HTTP until ctx ends,
// recording the id of every 201.
func crashUserLoad(ctx context.Context, httpAddr, token string, cycle, worker int, acks *crashAcks, attempts, acked *atomic.Int64) {
	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	for n := 0; ctx.Err() == nil; n++ {
		name := fmt.Sprintf("web-c%d-w%d-n%d", cycle, worker, n)
		b, _ := json.Marshal(map[string]any{"username": name, "password": "crash created passphrase"})
		req, err := http.NewRequestWithContext(ctx, "POST", "http://"+httpAddr+"/users", bytes.NewReader(b))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		attempts.Add(1)
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 201 {
			continue
		}
		var body map[string]any
		if json.Unmarshal(raw, &body) != nil {
			continue
		}
		if id, _ := body["id"].(string); id != "" {
			acks.user(id, name)
			acked.Add(1)
		}
	}
}

// crashCheck opens the database of the killed server read-only, as it was
// left, and checks its integrity and that every acknowledged binding and
// user is there.
func crashCheck(t *testing.T, cycle int, dataDir string, acks *crashAcks) {
	t.Helper()
	path := filepath.Join(dataDir, "users.db")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.ToSlash(path)}).EscapedPath()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	var integrity []string
	rows, err := db.Query(`PRAGMA integrity_check`)
	if err != nil {
		t.Fatalf("cycle %d: integrity_check: %v", cycle, err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		integrity = append(integrity, s)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		t.Fatal(err)
	}
	if len(integrity) != 1 || integrity[0] != "ok" {
		t.Fatalf("cycle %d: integrity_check: %v", cycle, integrity)
	}

	have := map[string]string{} // contact token -> AoR
	rows, err = db.Query(`SELECT aor, contact FROM bindings`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var aor, contact string
		if err := rows.Scan(&aor, &contact); err != nil {
			t.Fatal(err)
		}
		if i := strings.Index(contact, "sip:"); i >= 0 {
			rest := contact[i+4:]
			if j := strings.IndexByte(rest, '@'); j >= 0 {
				have[rest[:j]] = aor
			}
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		t.Fatal(err)
	}
	users := map[string]bool{}
	rows, err = db.Query(`SELECT id FROM users`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		users[id] = true
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		t.Fatal(err)
	}

	acks.mu.Lock()
	defer acks.mu.Unlock()
	var lost []string
	for token, aor := range acks.bindings {
		if have[token] != aor {
			lost = append(lost, fmt.Sprintf("binding %s of %s (found under %q)", token, aor, have[token]))
		}
	}
	for id, name := range acks.users {
		if !users[id] {
			lost = append(lost, fmt.Sprintf("user %s (%s)", name, id))
		}
	}
	if len(lost) > 0 {
		t.Fatalf("cycle %d: %d acknowledged records lost (of %d bindings, %d users): %v",
			cycle, len(lost), len(acks.bindings), len(acks.users), lost)
	}
}
