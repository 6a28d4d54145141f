package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/argon2"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/store/sqlite"
)

// The login benchmarks compare HTTP login throughput with the machine's raw
// Argon2id rate (the ceiling: every login costs one hash), in one run:
//
//	go test -run '^$' -bench 'Argon2idRaw|LoginHTTP' -benchtime 200x ./cmd/users-core/
//
// BenchmarkLoginHTTP runs 200 concurrent clients with the default
// parameters and reports logins/s and the process's peak RSS (VmHWM).

// BenchmarkArgon2idRaw hashes with the default parameters on every CPU at
// once: the raw hashes per second of this machine.
func BenchmarkArgon2idRaw(b *testing.B) {
	p := identity.DefaultArgon2Params()
	salt := make([]byte, p.SaltLen)
	rand.Read(salt)
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				argon2.IDKey([]byte("benchmark password"), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "hashes/s")
}

func BenchmarkLoginHTTP(b *testing.B) {
	cfg := defaultConfig()
	cfg.UsersCore.DataDir = b.TempDir()
	cfg.UsersCore.APIBindAddress = "127.0.0.1:0"
	cfg.UsersCore.SIP.UDP, cfg.UsersCore.SIP.TCP, cfg.UsersCore.SIP.WS = "off", "off", "off"
	if err := cfg.finish(); err != nil {
		b.Fatal(err)
	}
	m := &Main{Config: cfg, Logger: zerolog.Nop(), Notice: io.Discard}
	if err := m.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if _, err := m.app.Users.CreateUser(context.Background(), identity.NewUser{Username: "bench", Password: alicePassword}); err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"username": "bench", "password": alicePassword})
	// Measure this benchmark's peak alone, not that of an earlier one in
	// the same process (BenchmarkArgon2idRaw): writing 5 to clear_refs
	// resets VmHWM to the current RSS (Linux 4.0+).
	runtime.GC()
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	url := "http://" + m.HTTPAddr() + "/auth/login"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	const clients = 200
	var next, failed atomic.Int64
	var statuses sync.Map
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					statuses.Store(resp.StatusCode, true)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		var codes []int
		statuses.Range(func(k, _ any) bool { codes = append(codes, k.(int)); return true })
		b.Fatalf("%d of %d logins failed (statuses %v)", failed.Load(), b.N, codes)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "logins/s")
	if hwm := peakRSS(); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	}
}

// peakRSS returns this process's peak resident set (VmHWM) in bytes, or 0.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkRSASignRaw is the signing reference of BenchmarkRefreshHTTP,
// measured in the same run: RSA-2048 PKCS#1 v1.5 SHA-256 signatures, the
// one signature every refresh costs, as jwks' BenchmarkRSASignRaw makes
// them. goroutines=1 is one CPU's rate (the reference of the refresh
// target); goroutines=NumCPU signs on every CPU at once, the machine's
// ceiling.
func BenchmarkRSASignRaw(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256([]byte("header.payload"))
	for _, n := range []int{1, runtime.NumCPU()} {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:]); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "signs/s")
		})
	}
}

// BenchmarkRefreshHTTP rotates refresh tokens over HTTP with 16 clients,
// each following its own token family: every call looks the token up,
// rotates it (one committed write) and signs a new access token. Compare
// with BenchmarkRSASignRaw (the signing ceiling) from the same run:
//
//	go test -run '^$' -bench 'RSASignRaw|RefreshHTTP' -benchtime 400x ./cmd/users-core/
//
// writes/commit is the mean group size of the SQLite committer (refresh
// rotations, with the bindings and login inserts it also carries).
func BenchmarkRefreshHTTP(b *testing.B) {
	cfg := defaultConfig()
	cfg.UsersCore.DataDir = b.TempDir()
	cfg.UsersCore.APIBindAddress = "127.0.0.1:0"
	cfg.UsersCore.SIP.UDP, cfg.UsersCore.SIP.TCP, cfg.UsersCore.SIP.WS = "off", "off", "off"
	smallArgon2(&cfg) // the logins that start the families are not measured
	if err := cfg.finish(); err != nil {
		b.Fatal(err)
	}
	m := &Main{Config: cfg, Logger: zerolog.Nop(), Notice: io.Discard}
	if err := m.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if _, err := m.app.Users.CreateUser(context.Background(), identity.NewUser{Username: "bench", Password: alicePassword}); err != nil {
		b.Fatal(err)
	}
	base := "http://" + m.HTTPAddr()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	post := func(path string, body any) (map[string]any, int) {
		data, _ := json.Marshal(body)
		resp, err := client.Post(base+path, "application/json", bytes.NewReader(data))
		if err != nil {
			return nil, 0
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return out, resp.StatusCode
	}
	const clients = 16
	tokens := make([]string, clients)
	for i := range tokens {
		out, status := post("/auth/login", map[string]string{"username": "bench", "password": alicePassword})
		if status != 200 {
			b.Fatalf("login: %d", status)
		}
		tokens[i], _ = out["refresh_token"].(string)
	}
	commits, _ := m.app.Store.(interface{ CommitStats() sqlite.CommitStats })
	var before sqlite.CommitStats
	if commits != nil {
		before = commits.CommitStats()
	}
	var next, failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				out, status := post("/auth/refresh", map[string]string{"refresh_token": tokens[c]})
				if status != 200 {
					failed.Add(1)
					return
				}
				tokens[c], _ = out["refresh_token"].(string)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d refreshes failed", failed.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "refreshes/s")
	if commits != nil {
		if after := commits.CommitStats(); after.Groups > before.Groups {
			b.ReportMetric(float64(after.Updates-before.Updates)/float64(after.Groups-before.Groups), "writes/commit")
		}
	}
}
