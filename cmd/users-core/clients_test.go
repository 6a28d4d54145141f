package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
)

// requireTool returns the path of an outside program, skipping the test
// when it is missing, except under CI=true, where it fails.
func requireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (Debian package %s); CI must install it", name, pkg)
	}
	t.Skipf("%s is not installed (Debian package %s); skipping", name, pkg)
	return ""
}

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func TestSIPpRegistersAThousandUsers(t *testing.T) {
	sipp := requireTool(t, "sipp", "sip-tester")
	m := sipMain(t, t.TempDir(), func(c *Config) {
		// The defaults: SHA-256 first, MD5 second; SIPp gets MD5 by its
		// client rule.
		c.UsersCore.SIP.DigestAlgorithms = []string{"SHA-256", "MD5"}
	})
	const n = 1000
	var list []identity.NewUser
	csv := "SEQUENTIAL\n"
	for i := 0; i < n; i++ {
		u := identity.NewUser{Username: fmt.Sprintf("sipp%04d", i), Password: fmt.Sprintf("sipp-password-%04d", i)}
		list = append(list, u)
		csv += u.Username + ";" + u.Password + ";\n"
	}
	if _, err := m.app.Users.ImportUsers(context.Background(), list, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	users := writeFile(t, dir, "users.csv", csv)
	stat := filepath.Join(dir, "stat.csv")
	scenario, _ := filepath.Abs("../../testdata/sipp/register_digest.xml")
	cmd := exec.Command(sipp, sipAddr(t, m, "udp"),
		"-sf", scenario, "-inf", users, "-key", "domain", sipDomain, "-auth_uri", sipDomain,
		"-i", "127.0.0.1", "-p", fmt.Sprint(freeUDPPort(t)), "-t", "u1",
		"-m", fmt.Sprint(n), "-r", "50", "-l", "200", "-timeout", "90s", "-recv_timeout", "10000",
		"-nostdin", "-trace_stat", "-stf", stat, "-fd", "1")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sipp: %v\n%s", err, tail(string(out), 2000))
	}
	ok, failed, maxRetrans, retrans := sippCounters(t, stat)
	if ok != n || failed != 0 || maxRetrans != 0 {
		t.Fatalf("sipp: %d successful, %d failed, %d failed after too many retransmissions; want %d, 0, 0", ok, failed, maxRetrans, n)
	}
	// Retransmissions that still got their answer are not errors (the
	// machine may be busy with other tests), but say how many there were.
	t.Logf("sipp: %d registrations, %d retransmissions", ok, retrans)
	count, err := m.app.Store.CountBindings(context.Background(), time.Now())
	if err != nil || count != n {
		t.Fatalf("%d bindings after sipp (err %v), want %d", count, err, n)
	}
}

// sippCounters reads the cumulative counters of the last line of a SIPp
// statistics file.
func sippCounters(t testing.TB, path string) (ok, failed, maxRetrans, retrans int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 {
		t.Fatalf("sipp statistics too short: %q", data)
	}
	head := strings.Split(lines[0], ";")
	last := strings.Split(lines[len(lines)-1], ";")
	get := func(name string) int {
		for i, h := range head {
			if h == name && i < len(last) {
				var v int
				fmt.Sscan(last[i], &v)
				return v
			}
		}
		t.Fatalf("no column %s in sipp statistics", name)
		return 0
	}
	return get("SuccessfulCall(C)"), get("FailedCall(C)"), get("FailedMaxUDPRetrans(C)"), get("Retransmissions(C)")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestSipsakRegistersOneUser(t *testing.T) {
	sipsak := requireTool(t, "sipsak", "sipsak")
	// sipsak resolves the domain of its target URI, so it registers at
	// localhost.
	m := sipMain(t, t.TempDir(), func(c *Config) {
		c.UsersCore.Domains = []string{"localhost"}
		c.UsersCore.SIP.DigestAlgorithms = []string{"SHA-256", "MD5"}
	})
	addUser(t, m, "alice")
	_, port, _ := net.SplitHostPort(sipAddr(t, m, "udp"))
	cmd := exec.Command(sipsak, "-U", "-C", fmt.Sprintf("sip:alice@127.0.0.1:%d", freeUDPPort(t)),
		"-s", "sip:alice@localhost", "-p", "127.0.0.1", "-r", port, "-a", alicePassword,
		"-u", "alice", "-x", "600", "-H", "127.0.0.1", "-vv")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sipsak: %v\n%s", err, tail(string(out), 2000))
	}
	bs, err := m.app.Store.Bindings(context.Background(), "sip:alice@localhost", time.Now())
	if err != nil || len(bs) != 1 || !strings.HasPrefix(bs[0].UserAgent, "sipsak") {
		t.Fatalf("after sipsak: %v %+v\n%s", err, bs, tail(string(out), 1000))
	}
}
