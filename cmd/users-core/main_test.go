package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rvoip/users-core/identity"
)

// binary is the users-core command built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "users-core-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "users-core")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building users-core:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one finished command.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the built binary with args, stdin and the data dir dataDir,
// in an environment without USERS_CORE_* variables from the caller.
func runCLI(t testing.TB, dataDir, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = cleanEnv("USERS_CORE_DATA_DIR="+dataDir, "USERS_CORE_LOG_FORMAT=json")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "USERS_CORE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func (r result) want(t testing.TB, code int, stderrPart string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	if stderrPart != "" && !strings.Contains(r.stderr, stderrPart) {
		t.Fatalf("stderr %q does not contain %q", r.stderr, stderrPart)
	}
}

// openTestApp opens the data dir in-process, to check what the CLI wrote.
func openTestApp(t testing.TB, dataDir string) *App {
	t.Helper()
	cfg := defaultConfig()
	cfg.UsersCore.DataDir = dataDir
	if err := cfg.finish(); err != nil {
		t.Fatal(err)
	}
	app, err := OpenApp(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	return app
}

const alicePassword = "correct horse battery staple"

func TestCLIUserLifecycle(t *testing.T) {
	data := t.TempDir()
	runCLI(t, data, alicePassword+"\n", "user", "add", "alice", "--password-stdin",
		"--email", "alice@example.com", "--display-name", "Alice A").want(t, 0, "")

	t.Run("a duplicate username in another case exits 1 with already exists", func(t *testing.T) {
		runCLI(t, data, alicePassword+"\n", "user", "add", "ALICE", "--password-stdin").want(t, 1, "already exists")
	})
	t.Run("a weak password exits 1 naming the rule", func(t *testing.T) {
		runCLI(t, data, "short\n", "user", "add", "bob", "--password-stdin").want(t, 1, "at least 12 characters")
		runCLI(t, data, "bobbobbobbob\n", "user", "add", "bobbobbobbob", "--password-stdin").want(t, 1, "must not equal the username")
	})
	t.Run("a username not valid in a SIP URI exits 1", func(t *testing.T) {
		runCLI(t, data, alicePassword+"\n", "user", "add", "bad name", "--password-stdin").want(t, 1, "SIP URI user part")
	})
	t.Run("bad usage exits 2", func(t *testing.T) {
		runCLI(t, data, "", "user", "add").want(t, 2, "exactly one argument")
		runCLI(t, data, "", "user", "frobnicate", "x").want(t, 2, "unknown subcommand")
		runCLI(t, data, "", "user", "list", "--no-such-flag").want(t, 2, "unknown flag")
		runCLI(t, data, "").want(t, 2, "missing command")
		runCLI(t, data, "", "user", "add", "carol").want(t, 2, "--password-stdin")
	})
	t.Run("list shows the user without secrets", func(t *testing.T) {
		r := runCLI(t, data, "", "user", "list")
		r.want(t, 0, "")
		if !strings.Contains(r.stdout, "alice") || strings.Contains(r.stdout, "argon2") {
			t.Fatalf("list output: %s", r.stdout)
		}
		r = runCLI(t, data, "", "user", "list", "--json")
		r.want(t, 0, "")
		var users []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &users); err != nil || len(users) != 1 || users[0]["username"] != "alice" {
			t.Fatalf("list --json: %v %s", err, r.stdout)
		}
	})

	const newPassword = "a much better passphrase 2026"
	runCLI(t, data, newPassword+"\n", "user", "passwd", "alice", "--password-stdin").want(t, 0, "")
	runCLI(t, data, "", "user", "disable", "Alice").want(t, 0, "")
	r := runCLI(t, data, "", "user", "show", "alice", "--json")
	r.want(t, 0, "")
	var shown map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil {
		t.Fatal(err)
	}
	if shown["active"] != false || shown["email"] != "alice@example.com" {
		t.Fatalf("after disable: %v", shown)
	}

	app := openTestApp(t, data)
	ctx := context.Background()
	if _, ok, err := app.Users.VerifyPassword(ctx, "alice", newPassword); err != nil || ok {
		t.Fatalf("a disabled user must not verify: ok=%v err=%v", ok, err)
	}
	app.Close()
	runCLI(t, data, "", "user", "enable", "alice").want(t, 0, "")
	app = openTestApp(t, data)
	if u, ok, err := app.Users.VerifyPassword(ctx, "alice", newPassword); err != nil || !ok || u.Username != "alice" {
		t.Fatalf("new password after passwd: ok=%v err=%v", ok, err)
	}
	if _, ok, _ := app.Users.VerifyPassword(ctx, "alice", alicePassword); ok {
		t.Fatal("old password still verifies after passwd")
	}
	app.Close()

	t.Run("HA1 values are not readable in the database files", func(t *testing.T) {
		raw := databaseBytes(t, data)
		for _, h := range []string{
			md5hex("alice:localhost:" + newPassword), sha256hex("alice:localhost:" + newPassword),
			md5hex("alice:localhost:" + alicePassword),
		} {
			if bytes.Contains(raw, []byte(h)) {
				t.Fatalf("HA1 %s found in plaintext in the database", h[:8])
			}
		}
		if bytes.Contains(raw, []byte(newPassword)) {
			t.Fatal("password found in plaintext in the database")
		}
	})

	runCLI(t, data, "", "user", "delete", "alice").want(t, 0, "")
	runCLI(t, data, "", "user", "show", "alice").want(t, 1, "not found")
}

// databaseBytes returns the SQLite database file and its WAL, concatenated.
func databaseBytes(t testing.TB, dataDir string) []byte {
	t.Helper()
	var all []byte
	for _, name := range []string{"users.db", "users.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dataDir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if len(all) == 0 {
		t.Fatal("no database files")
	}
	return all
}

func md5hex(s string) string    { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
func sha256hex(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func TestCLIImportIsAllOrNothing(t *testing.T) {
	data := t.TempDir()
	good := writeFile(t, t.TempDir(), "good.csv", "username,password\nuser01,secret-password-01,u1@example.com,User One\nuser02,secret-password-02\n")
	bad := writeFile(t, t.TempDir(), "bad.csv", "user03,secret-password-03\nuser04,short\n")
	runCLI(t, data, "", "user", "import", bad).want(t, 1, "entry 2")
	runCLI(t, data, "", "user", "import", good).want(t, 0, "")
	r := runCLI(t, data, "", "user", "list", "--json")
	var users []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &users); err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0]["username"] != "user01" || users[0]["display_name"] != "User One" {
		t.Fatalf("after imports: %s", r.stdout)
	}
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls buf until re matches (or 5 s pass) and returns the match.
func (s *syncBuffer) waitFor(re *regexp.Regexp) []string {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(s.String()); m != nil {
			return m
		}
	}
	return nil
}

// server is a users-core serve process.
type server struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	ready  map[string]string
	done   chan error
}

func startServe(t testing.TB, dataDir string, extra ...string) *server {
	t.Helper()
	readyFile := filepath.Join(t.TempDir(), "ready.json")
	args := append([]string{"serve", "--http", "127.0.0.1:0", "--ready-file", readyFile,
		"--sip-udp", "127.0.0.1:0", "--sip-tcp", "127.0.0.1:0", "--sip-ws", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = cleanEnv("USERS_CORE_DATA_DIR="+dataDir, "USERS_CORE_LOG_FORMAT=json")
	s := &server{cmd: cmd, stdout: new(syncBuffer), stderr: new(syncBuffer), done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-s.done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(readyFile); err == nil && json.Unmarshal(b, &s.ready) == nil {
			return s
		}
		select {
		case err := <-s.done:
			t.Fatalf("serve exited before ready: %v\nstderr: %s", err, s.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready in 20 s\nstderr: %s", s.stderr)
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t testing.TB) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM\nstderr: %s", err, s.stderr)
		}
	case <-time.After(6 * time.Second):
		t.Fatalf("serve did not stop within 5 s of SIGTERM")
	}
}

var adminPasswordRE = regexp.MustCompile(`created user "admin" with password (\S+)`)

func TestServeEndToEnd(t *testing.T) {
	data := t.TempDir()
	s := startServe(t, data)
	m := s.stdout.waitFor(adminPasswordRE)
	if m == nil {
		t.Fatalf("first start did not print the admin password; stdout: %s", s.stdout)
	}
	adminPassword := m[1]
	if strings.Contains(s.stderr.String(), adminPassword) {
		t.Fatal("the admin password reached the log")
	}

	resp, err := http.Get("http://" + s.ready["http"] + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var health map[string]any
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(body, &health); err != nil || resp.StatusCode != 200 || health["status"] != "ok" || health["version"] == "" {
		t.Fatalf("health: %d %s", resp.StatusCode, body)
	}
	if _, ok := health["uptime_seconds"]; !ok {
		t.Fatalf("health has no uptime: %s", body)
	}
	for _, k := range []string{"sip_udp", "sip_tcp", "sip_ws"} {
		if !strings.HasPrefix(s.ready[k], "127.0.0.1:") {
			t.Fatalf("ready file lacks %s: %v", k, s.ready)
		}
	}
	resp, err = http.Get("http://" + s.ready["http"] + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), `"code":"NOT_FOUND"`) {
		t.Fatalf("unknown route: %d %s", resp.StatusCode, body)
	}
	s.stop(t)

	runCLI(t, data, alicePassword+"\n", "user", "add", "alice", "--password-stdin").want(t, 0, "")
	s = startServe(t, data)
	s.stop(t) // Wait has copied all output once stop returns
	if adminPasswordRE.MatchString(s.stdout.String()) {
		t.Fatal("a restart created the admin again")
	}

	app := openTestApp(t, data)
	ctx := context.Background()
	for name, pw := range map[string]string{"admin": adminPassword, "alice": alicePassword} {
		u, ok, err := app.Users.VerifyPassword(ctx, name, pw)
		if err != nil || !ok {
			t.Fatalf("%s after restart: ok=%v err=%v", name, ok, err)
		}
		if name == "admin" && !u.HasRole(identity.RoleAdmin) {
			t.Fatal("first admin is not an admin")
		}
	}
}

func TestServeUnwritableDataDirFailsCleanly(t *testing.T) {
	parent := t.TempDir()
	blocker := writeFile(t, parent, "not-a-dir", "x")
	cmd := exec.Command(binary, "serve", "--http", "127.0.0.1:0", "--data-dir", filepath.Join(blocker, "data"))
	cmd.Env = cleanEnv()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	if !strings.Contains(errb.String(), "cannot create data directory") {
		t.Fatalf("stderr %q lacks a clear message", errb.String())
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Fatalf("failed start left files behind: %v", entries)
	}
}

func TestDataKeyMismatchIsRefused(t *testing.T) {
	data := t.TempDir()
	runCLI(t, data, alicePassword+"\n", "user", "add", "alice", "--password-stdin").want(t, 0, "")
	if err := os.Remove(filepath.Join(data, "data.key")); err != nil {
		t.Fatal(err)
	}
	runCLI(t, data, "", "user", "list").want(t, 1, "not the key this database was created with")
	if _, err := os.Stat(filepath.Join(data, "data.key")); !os.IsNotExist(err) {
		t.Fatal("a refused start left a new data key behind")
	}
}

func TestDataKeyFileIsPrivate(t *testing.T) {
	data := t.TempDir()
	runCLI(t, data, "", "user", "list").want(t, 0, "")
	fi, err := os.Stat(filepath.Join(data, "data.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("data key mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestMainRunInProcess runs the real Main on port 0, as other packages'
// end-to-end tests will.
func TestMainRunInProcess(t *testing.T) {
	cfg := defaultConfig()
	cfg.UsersCore.DataDir = t.TempDir()
	cfg.UsersCore.APIBindAddress = "127.0.0.1:0"
	cfg.UsersCore.SIP.UDP, cfg.UsersCore.SIP.TCP, cfg.UsersCore.SIP.WS = "127.0.0.1:0", "127.0.0.1:0", "off"
	if err := cfg.finish(); err != nil {
		t.Fatal(err)
	}
	var notice bytes.Buffer
	m := &Main{Config: cfg, Logger: zerolog.Nop(), Notice: &notice}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	resp, err := http.Get("http://" + m.HTTPAddr() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health %d", resp.StatusCode)
	}
	if !adminPasswordRE.MatchString(notice.String()) {
		t.Fatalf("notice: %q", notice.String())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestVersionCommand(t *testing.T) {
	r := runCLI(t, t.TempDir(), "", "version")
	r.want(t, 0, "")
	if !strings.HasPrefix(r.stdout, "users-core ") {
		t.Fatalf("version: %q", r.stdout)
	}
}
