package identity

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

// smallParams are cheap Argon2id parameters for tests (about a millisecond
// a hash); the code paths do not depend on the cost.
func smallParams(memoryKiB uint32) Argon2Params {
	return Argon2Params{Memory: memoryKiB, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
}

func newTestHasher(t testing.TB, p Argon2Params, maxConcurrent int) *Hasher {
	t.Helper()
	h, err := NewHasher(p, maxConcurrent)
	if err != nil {
		t.Fatalf("NewHasher(%+v, %d): %v", p, maxConcurrent, err)
	}
	return h
}

type cliVector struct {
	line                    int
	password, salt, encoded string
}

// readCLIVectors reads testdata/phc/argon2_cli_vectors.txt, produced by the
// reference argon2 CLI (commands in the file).
func readCLIVectors(t testing.TB) []cliVector {
	t.Helper()
	f, err := os.Open("../testdata/phc/argon2_cli_vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []cliVector
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, "\t")
		if len(parts) != 3 {
			t.Fatalf("vectors line %d: want 3 tab-separated fields, got %d", n, len(parts))
		}
		vs = append(vs, cliVector{n, parts[0], parts[1], parts[2]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 5 {
		t.Fatalf("only %d vectors", len(vs))
	}
	return vs
}

func TestArgon2CLIVectorsReproduce(t *testing.T) {
	h := newTestHasher(t, smallParams(256), 2)
	sawDefault := false
	for _, v := range readCLIVectors(t) {
		p, salt, key, err := ParsePHC(v.encoded)
		if err != nil {
			t.Fatalf("line %d: ParsePHC: %v", v.line, err)
		}
		if p == DefaultArgon2Params() {
			sawDefault = true
		}
		if string(salt) != v.salt {
			t.Errorf("line %d: salt = %q, want %q", v.line, salt, v.salt)
		}
		if got := argon2.IDKey([]byte(v.password), []byte(v.salt), p.Time, p.Memory, p.Threads, p.KeyLen); !bytes.Equal(got, key) {
			t.Errorf("line %d: argon2.IDKey = %x, want %x (from the CLI)", v.line, got, key)
		}
		if got := EncodePHC(p, salt, key); got != v.encoded {
			t.Errorf("line %d: EncodePHC = %q, want %q", v.line, got, v.encoded)
		}
		ok, _, err := h.Verify(context.Background(), v.encoded, v.password)
		if !ok || err != nil {
			t.Errorf("line %d: Verify(right password) = %v, %v; want true, nil", v.line, ok, err)
		}
		ok, _, err = h.Verify(context.Background(), v.encoded, v.password+"x")
		if ok || err != nil {
			t.Errorf("line %d: Verify(wrong password) = %v, %v; want false, nil", v.line, ok, err)
		}
	}
	if !sawDefault {
		t.Error("no vector uses the default parameters m=65536,t=3,p=4")
	}
}

// TestArgon2CLILive runs the reference CLI on a fresh random password and
// salt. Without the CLI it skips, except on CI (CI=true) where it fails.
func TestArgon2CLILive(t *testing.T) {
	cli, err := exec.LookPath("argon2")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("reference argon2 CLI not found on CI (install the Debian package argon2): %v", err)
		}
		t.Skipf("reference argon2 CLI not found (install the Debian package argon2 to run this test): %v", err)
	}
	for _, tc := range []struct {
		p    Argon2Params
		args []string
	}{
		{Argon2Params{Memory: 256, Time: 2, Threads: 2, SaltLen: 12, KeyLen: 32}, []string{"-t", "2", "-k", "256", "-p", "2", "-l", "32"}},
		{Argon2Params{Memory: 4096, Time: 3, Threads: 4, SaltLen: 12, KeyLen: 32}, []string{"-t", "3", "-m", "12", "-p", "4", "-l", "32"}},
	} {
		pw := "pw-" + randomHex(t, 12) + "-é✓"
		saltStr := randomHex(t, 6) // the CLI takes the salt as a string argument
		args := append([]string{saltStr, "-id"}, tc.args...)
		args = append(args, "-e")
		cmd := exec.Command(cli, args...)
		cmd.Stdin = strings.NewReader(pw) // no trailing newline: the CLI hashes stdin as is
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("argon2 %s: %v", strings.Join(args, " "), err)
		}
		want := strings.TrimSpace(string(out))
		key := argon2.IDKey([]byte(pw), []byte(saltStr), tc.p.Time, tc.p.Memory, tc.p.Threads, tc.p.KeyLen)
		if got := EncodePHC(tc.p, []byte(saltStr), key); got != want {
			t.Errorf("argon2 %s:\n ours %s\n CLI  %s", strings.Join(args, " "), got, want)
		}
		h := newTestHasher(t, tc.p, 2)
		ok, rehash, err := h.Verify(context.Background(), want, pw)
		if !ok || rehash || err != nil {
			t.Errorf("Verify(CLI output) = %v, %v, %v; want true, false, nil", ok, rehash, err)
		}
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestHashVerifyRoundTrip(t *testing.T) {
	ctx := context.Background()
	p := smallParams(512)
	h := newTestHasher(t, p, 2)
	const pw = "correct horse battery staple"
	phc1, err := h.Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	phc2, err := h.Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	if phc1 == phc2 {
		t.Error("two hashes of one password are equal: salt not random")
	}
	if !strings.HasPrefix(phc1, "$argon2id$v=19$m=512,t=1,p=1$") {
		t.Errorf("PHC %q lacks the expected prefix", phc1)
	}
	if strings.Contains(phc1, pw) {
		t.Error("PHC contains the password")
	}
	got, salt, key, err := ParsePHC(phc1)
	if err != nil {
		t.Fatal(err)
	}
	if got != p {
		t.Errorf("parsed params %+v, want %+v", got, p)
	}
	if EncodePHC(got, salt, key) != phc1 {
		t.Error("EncodePHC(ParsePHC(x)) != x")
	}
	for _, tc := range []struct {
		name     string
		password string
		want     bool
	}{
		{"the right password matches", pw, true},
		{"a wrong password does not match", "correct horse battery stapler", false},
		{"a different case does not match", strings.ToUpper(pw), false},
		{"the empty password does not match", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(ctx, phc1, tc.password)
			if ok != tc.want || rehash || err != nil {
				t.Errorf("Verify = %v, %v, %v; want %v, false, nil", ok, rehash, err, tc.want)
			}
		})
	}
}

func TestParsePHCRefusesMalformed(t *testing.T) {
	const salt, key = "c29tZXNhbHQ", "Ak7Awaxl0I2V8eRvzDOAHcXc7gRUcOdHZbf3OBtQ7NU"
	valid := "$argon2id$v=19$m=256,t=1,p=1$" + salt + "$" + key
	if _, _, _, err := ParsePHC(valid); err != nil {
		t.Fatalf("base case refused: %v", err)
	}
	for _, tc := range []struct{ name, phc string }{
		{"empty string", ""},
		{"argon2i", "$argon2i$v=19$m=256,t=1,p=1$" + salt + "$" + key},
		{"argon2d", "$argon2d$v=19$m=256,t=1,p=1$" + salt + "$" + key},
		{"upper-case algorithm", "$ARGON2ID$v=19$m=256,t=1,p=1$" + salt + "$" + key},
		{"version 16", "$argon2id$v=16$m=256,t=1,p=1$" + salt + "$" + key},
		{"no version", "$argon2id$m=256,t=1,p=1$" + salt + "$" + key},
		{"missing p", "$argon2id$v=19$m=256,t=1$" + salt + "$" + key},
		{"missing all params", "$argon2id$v=19$$" + salt + "$" + key},
		{"params out of order", "$argon2id$v=19$t=1,m=256,p=1$" + salt + "$" + key},
		{"extra param", "$argon2id$v=19$m=256,t=1,p=1,keyid=x$" + salt + "$" + key},
		{"empty param value", "$argon2id$v=19$m=,t=1,p=1$" + salt + "$" + key},
		{"leading zero", "$argon2id$v=19$m=0256,t=1,p=1$" + salt + "$" + key},
		{"plus sign", "$argon2id$v=19$m=+256,t=1,p=1$" + salt + "$" + key},
		{"space in params", "$argon2id$v=19$m=256, t=1,p=1$" + salt + "$" + key},
		{"huge m", "$argon2id$v=19$m=4194305,t=1,p=1$" + salt + "$" + key},
		{"m beyond uint32", "$argon2id$v=19$m=99999999999,t=1,p=1$" + salt + "$" + key},
		{"huge t", "$argon2id$v=19$m=256,t=1000000,p=1$" + salt + "$" + key},
		{"t zero", "$argon2id$v=19$m=256,t=0,p=1$" + salt + "$" + key},
		{"p zero", "$argon2id$v=19$m=256,t=1,p=0$" + salt + "$" + key},
		{"p beyond 255", "$argon2id$v=19$m=4096,t=1,p=256$" + salt + "$" + key},
		{"m below 8 KiB per lane", "$argon2id$v=19$m=31,t=1,p=4$" + salt + "$" + key},
		{"bad base64 in salt", "$argon2id$v=19$m=256,t=1,p=1$c29tZ*NhbHQ$" + key},
		{"bad base64 in hash", "$argon2id$v=19$m=256,t=1,p=1$" + salt + "$Ak7Awaxl0I2V8eRvzDOAHcXc7gRUcOdHZbf3OBtQ7N!"},
		{"url-safe base64", "$argon2id$v=19$m=256,t=1,p=1$" + salt + "$" + strings.NewReplacer("+", "-", "/", "_").Replace("Zh/vvW8pvLyPRkarwyqdekZFu1wFlTf4pVh/Ma2+zM0")},
		{"padded base64", "$argon2id$v=19$m=256,t=1,p=1$" + salt + "=$" + key},
		{"non-canonical trailing bits", "$argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHR$" + key},
		{"newline inside base64", "$argon2id$v=19$m=256,t=1,p=1$c29tZX\nNhbHQ$" + key},
		{"salt shorter than 8 bytes", "$argon2id$v=19$m=256,t=1,p=1$c2FsdA$" + key},
		{"hash shorter than 16 bytes", "$argon2id$v=19$m=256,t=1,p=1$" + salt + "$AAAAAAAAAAAAAAAAAAAA"},
		{"hash longer than 64 bytes", "$argon2id$v=19$m=256,t=1,p=1$" + salt + "$" + strings.Repeat("A", 88)},
		{"empty hash", "$argon2id$v=19$m=256,t=1,p=1$" + salt + "$"},
		{"trailing field", valid + "$x"},
		{"trailing dollar", valid + "$"},
		{"trailing newline", valid + "\n"},
		{"leading space", " " + valid},
		{"no leading dollar", valid[1:]},
		{"absurdly long", valid + strings.Repeat("A", 1<<16)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := ParsePHC(tc.phc)
			if err == nil {
				t.Fatalf("ParsePHC(%q) accepted", tc.phc)
			}
			if !errors.Is(err, ErrInvalid) || ErrorField(err) != "password_hash" {
				t.Errorf("error %v: want ErrInvalid with field password_hash", err)
			}
			if strings.Contains(err.Error(), key[:20]) {
				t.Errorf("error %q echoes the hash", err)
			}
		})
	}
}

func TestVerifyMalformedPHCIsAnError(t *testing.T) {
	h := newTestHasher(t, smallParams(256), 1)
	ok, rehash, err := h.Verify(context.Background(), "$argon2i$v=19$m=256,t=1,p=1$c29tZXNhbHQ$Ak7Awaxl0I2V8eRvzDOAHcXc7gRUcOdHZbf3OBtQ7NU", "password")
	if ok || rehash || err == nil {
		t.Fatalf("Verify = %v, %v, %v; want false, false, error", ok, rehash, err)
	}
	if ErrorCode(err) != CodeInternal {
		t.Errorf("code %s, want %s: a corrupt stored hash is the server's problem", ErrorCode(err), CodeInternal)
	}
	if h.Stats().Peak != 0 {
		t.Error("a malformed PHC string was hashed")
	}
}

func TestVerifyReportsRehashWhenParamsChange(t *testing.T) {
	ctx := context.Background()
	a := smallParams(256)
	const pw = "a long enough passphrase"
	phcA, err := newTestHasher(t, a, 1).Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	change := func(f func(*Argon2Params)) Argon2Params { p := a; f(&p); return p }
	for _, tc := range []struct {
		name   string
		b      Argon2Params
		rehash bool
	}{
		{"same parameters need no rehash", a, false},
		{"more memory needs a rehash", change(func(p *Argon2Params) { p.Memory = 512 }), true},
		{"less memory needs a rehash", change(func(p *Argon2Params) { p.Memory = 128 }), true},
		{"more passes need a rehash", change(func(p *Argon2Params) { p.Time = 2 }), true},
		{"more lanes need a rehash", change(func(p *Argon2Params) { p.Threads = 2 }), true},
		{"a longer key needs a rehash", change(func(p *Argon2Params) { p.KeyLen = 64 }), true},
		{"a longer salt needs a rehash", change(func(p *Argon2Params) { p.SaltLen = 32 }), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hb := newTestHasher(t, tc.b, 1)
			ok, rehash, err := hb.Verify(ctx, phcA, pw)
			if !ok || rehash != tc.rehash || err != nil {
				t.Errorf("Verify = %v, %v, %v; want true, %v, nil", ok, rehash, err, tc.rehash)
			}
			ok, rehash, err = hb.Verify(ctx, phcA, "wrong")
			if ok || rehash || err != nil {
				t.Errorf("Verify(wrong) = %v, %v, %v; want false, false, nil (no rehash without a match)", ok, rehash, err)
			}
			if tc.rehash {
				phcB, err := hb.Hash(ctx, pw)
				if err != nil {
					t.Fatal(err)
				}
				if ok, rehash, _ := hb.Verify(ctx, phcB, pw); !ok || rehash {
					t.Errorf("after rehash: Verify = %v, %v; want true, false", ok, rehash)
				}
			}
		})
	}
}

func TestHasherBoundsConcurrency(t *testing.T) {
	// With one P a hash runs to completion before another caller is
	// scheduled, and the bound could not be reached; two Ps show it.
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	ctx := context.Background()
	h := newTestHasher(t, smallParams(1024), 2)
	const pw = "concurrency test password"
	phc, err := h.Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Go(func() {
			if ok, _, err := h.Verify(ctx, phc, pw); !ok || err != nil {
				errs <- errors.New("verify failed")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := h.Stats()
	if s.Peak != 2 {
		t.Errorf("Peak = %d, want 2 (at most the bound, and the bound reached)", s.Peak)
	}
	if s.InFlight != 0 || s.Queued != 0 {
		t.Errorf("after the run: InFlight %d, Queued %d; want 0, 0", s.InFlight, s.Queued)
	}
	if s.QueueWait <= 0 {
		t.Errorf("QueueWait = %v; 48 callers must have waited", s.QueueWait)
	}
}

func TestNewHasherDefaultsToNumCPU(t *testing.T) {
	for _, n := range []int{0, -1} {
		if got := newTestHasher(t, smallParams(256), n).MaxConcurrent(); got != runtime.NumCPU() {
			t.Errorf("maxConcurrent %d: MaxConcurrent() = %d, want NumCPU = %d", n, got, runtime.NumCPU())
		}
	}
	if got := newTestHasher(t, smallParams(256), 3).MaxConcurrent(); got != 3 {
		t.Errorf("MaxConcurrent() = %d, want 3", got)
	}
}

func TestNewHasherRefusesBadParams(t *testing.T) {
	if _, err := NewHasher(Argon2Params{Memory: 256, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32}, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("t=0: err = %v, want ErrInvalid", err)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDummyVerifyTakesASlot(t *testing.T) {
	h := newTestHasher(t, smallParams(512), 1)
	h.sem <- struct{}{} // occupy the only slot
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.DummyVerify(ctx, "whatever") }()
	waitFor(t, "DummyVerify to queue", func() bool { return h.Stats().Queued == 1 })
	select {
	case err := <-done:
		t.Fatalf("DummyVerify returned %v while the only slot was taken", err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || ErrorCode(err) != CodeUnavailable {
		t.Errorf("err = %v; want CodeUnavailable wrapping context.Canceled", err)
	}
	<-h.sem
	if err := h.DummyVerify(context.Background(), "whatever"); err != nil {
		t.Fatal(err)
	}
	if s := h.Stats(); s.Peak != 1 || s.Queued != 0 || s.QueueWait < 20*time.Millisecond {
		t.Errorf("Stats = %+v; want Peak 1, Queued 0, QueueWait >= 20ms", s)
	}
}

func TestDummyVerifyUsesConfiguredParams(t *testing.T) {
	for _, p := range []Argon2Params{smallParams(256), {Memory: 2048, Time: 2, Threads: 2, SaltLen: 24, KeyLen: 48}} {
		h := newTestHasher(t, p, 1)
		got, _, _, err := ParsePHC(h.dummy)
		if err != nil {
			t.Fatal(err)
		}
		if got != p {
			t.Errorf("dummy PHC params %+v, want the configured %+v", got, p)
		}
		if err := h.DummyVerify(context.Background(), "x"); err != nil {
			t.Errorf("DummyVerify: %v", err)
		}
	}
}

func TestHashHonoursContextWhileQueued(t *testing.T) {
	h := newTestHasher(t, smallParams(256), 1)
	h.sem <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	phc, err := h.Hash(ctx, "queued password")
	if phc != "" || !errors.Is(err, context.DeadlineExceeded) || ErrorCode(err) != CodeUnavailable {
		t.Errorf("Hash = %q, %v; want \"\", CodeUnavailable wrapping DeadlineExceeded", phc, err)
	}
	if strings.Contains(err.Error(), "queued password") {
		t.Error("error contains the password")
	}
	<-h.sem
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := h.Hash(done, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash with a cancelled context and a free slot: err = %v, want context.Canceled", err)
	}
	if s := h.Stats(); s.Peak != 0 || s.Queued != 0 {
		t.Errorf("Stats = %+v; nothing should have run or stayed queued", s)
	}
}

// A hash stored with more memory than configured takes several slots, so
// memory stays bounded by MaxConcurrent*Memory; mixing weights must not
// deadlock.
func TestHeavierHashTakesMoreSlots(t *testing.T) {
	ctx := context.Background()
	heavy, err := newTestHasher(t, smallParams(1024), 1).Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}
	h := newTestHasher(t, smallParams(512), 2) // heavy needs both slots
	light, err := h.Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if w := h.weight(1024); w != 2 {
		t.Fatalf("weight(1024) = %d, want 2", w)
	}
	if w := h.weight(1 << 20); w != 2 {
		t.Fatalf("weight(1 GiB) = %d, want 2 (capped: runs alone)", w)
	}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Go(func() { h.Verify(ctx, heavy, "pw") })
	}
	wg.Wait()
	if p := h.Stats().Peak; p != 1 {
		t.Errorf("heavy-only Peak = %d, want 1", p)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i := 0; i < 40; i++ {
		phc := light
		if i%3 == 0 {
			phc = heavy
		}
		wg.Go(func() {
			if ok, _, err := h.Verify(ctx, phc, "pw"); !ok || err != nil {
				t.Errorf("mixed Verify = %v, %v (deadlock?)", ok, err)
			}
		})
	}
	wg.Wait()
	if p := h.Stats().Peak; p > 2 {
		t.Errorf("Peak = %d, want <= 2", p)
	}
}

func TestArgon2ParamsValidate(t *testing.T) {
	if err := DefaultArgon2Params().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	d := DefaultArgon2Params()
	if d.Memory != 65536 || d.Time != 3 || d.Threads != 4 || d.SaltLen != 16 || d.KeyLen != 32 {
		t.Errorf("defaults %+v are not RFC 9106's second recommended option", d)
	}
	change := func(f func(*Argon2Params)) Argon2Params { p := d; f(&p); return p }
	for _, tc := range []struct {
		name string
		p    Argon2Params
		ok   bool
	}{
		{"the minimum memory for the lanes is valid", change(func(p *Argon2Params) { p.Memory = 32 }), true},
		{"memory below 8 KiB per lane is refused", change(func(p *Argon2Params) { p.Memory = 31 }), false},
		{"4 GiB is valid", change(func(p *Argon2Params) { p.Memory = 4 << 20 }), true},
		{"more than 4 GiB is refused", change(func(p *Argon2Params) { p.Memory = 4<<20 + 1 }), false},
		{"zero passes are refused", change(func(p *Argon2Params) { p.Time = 0 }), false},
		{"absurd passes are refused", change(func(p *Argon2Params) { p.Time = 65 }), false},
		{"zero threads are refused", change(func(p *Argon2Params) { p.Threads = 0 }), false},
		{"a 7-byte salt is refused", change(func(p *Argon2Params) { p.SaltLen = 7 }), false},
		{"an 8-byte salt is valid", change(func(p *Argon2Params) { p.SaltLen = 8 }), true},
		{"a 15-byte key is refused", change(func(p *Argon2Params) { p.KeyLen = 15 }), false},
		{"a 16-byte key is valid", change(func(p *Argon2Params) { p.KeyLen = 16 }), true},
		{"a 65-byte key is refused", change(func(p *Argon2Params) { p.KeyLen = 65 }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if tc.ok != (err == nil) {
				t.Errorf("Validate(%+v) = %v", tc.p, err)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
		})
	}
}

// FuzzParsePHC checks that ParsePHC never panics and accepts only the
// canonical spelling: whatever it accepts, EncodePHC writes back unchanged.
func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$Zh/vvW8pvLyPRkarwyqdekZFu1wFlTf4pVh/Ma2+zM0")
	f.Add("$argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHQ$Ak7Awaxl0I2V8eRvzDOAHcXc7gRUcOdHZbf3OBtQ7NU")
	f.Add("$argon2i$v=19$m=4096,t=3,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=0256,t=1,p=1$c29tZXNhbHQ=$AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := ParsePHC(s)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted %q with invalid params: %v", s, err)
		}
		if got := EncodePHC(p, salt, key); got != s {
			t.Fatalf("accepted non-canonical %q (re-encodes as %q)", s, got)
		}
	})
}

// BenchmarkPasswordVerify measures one Verify with the default parameters
// (RFC 9106 second option), one at a time.
func BenchmarkPasswordVerify(b *testing.B) {
	ctx := context.Background()
	h := newTestHasher(b, DefaultArgon2Params(), 0)
	phc, err := h.Hash(ctx, "benchmark password")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(ctx, phc, "benchmark password"); !ok || err != nil {
			b.Fatal("verify failed")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

// BenchmarkPasswordVerifyParallel measures Verify throughput with the
// default parameters when callers outnumber the NumCPU slots.
func BenchmarkPasswordVerifyParallel(b *testing.B) {
	ctx := context.Background()
	h := newTestHasher(b, DefaultArgon2Params(), 0)
	phc, err := h.Hash(ctx, "benchmark password")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, _, err := h.Verify(ctx, phc, "benchmark password"); !ok || err != nil {
				b.Error("verify failed")
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
	b.ReportMetric(float64(h.Stats().Peak), "peak-concurrent")
}
