package main

import (
	"strings"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
)

func TestCacheSettings(t *testing.T) {
	cfg := defaultConfig()
	if d, n := cacheInterval(cfg.UsersCore.Cache), cacheEntries(cfg.UsersCore.Cache); d != identity.DefaultCheckInterval || n != identity.DefaultCacheEntries {
		t.Errorf("defaults: interval %v, entries %d; want identity's defaults", d, n)
	}
	env := map[string]string{"USERS_CORE_CACHE_CHECK_INTERVAL_MS": "0", "USERS_CORE_CACHE_CREDENTIAL_ENTRIES": "0"}
	if err := applyEnv(&cfg, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if d, n := cacheInterval(cfg.UsersCore.Cache), cacheEntries(cfg.UsersCore.Cache); d >= 0 || n >= 0 {
		t.Errorf("0 and 0: interval %v, entries %d; want both negative (off)", d, n)
	}
	for _, bad := range []CacheConfig{{CheckIntervalMS: -1}, {CheckIntervalMS: 60_001}, {CheckIntervalMS: 250, CredentialEntries: -1}} {
		c := defaultConfig()
		c.UsersCore.Cache = bad
		if err := c.finish(); err == nil || !strings.Contains(err.Error(), "cache.") {
			t.Errorf("%+v: %v, want an error naming cache", bad, err)
		}
	}
}

func TestOneRegulatorPerApp(t *testing.T) {
	app := openTestApp(t, t.TempDir())
	if app.Regulator() != app.Regulator() {
		t.Error("two Regulators: a lock placed over HTTP would reach the SIP side only after the check interval")
	}
}

// TestSIPSeesTheCLIDisablingAUser runs `user disable` next to a running
// server whose credential cache holds the user's HA1: the server must stop
// accepting the password once its check interval has passed.
func TestSIPSeesTheCLIDisablingAUser(t *testing.T) {
	dir := t.TempDir()
	m := sipMain(t, dir, func(c *Config) { c.UsersCore.Cache.CheckIntervalMS = 50 })
	addUser(t, m, "alice")
	p := newPhone(t, m, "UDP", "alice")
	for i := range 2 { // the second answer comes from the cache
		if res := p.registerDigest(identity.MD5, alicePassword, 600); res.StatusCode != 200 {
			t.Fatalf("REGISTER %d: %d", i+1, res.StatusCode)
		}
	}
	runCLI(t, dir, "", "user", "disable", "alice").want(t, 0, "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := p.registerDigest(identity.MD5, alicePassword, 600)
		if res.StatusCode == 401 {
			return
		}
		if res.StatusCode != 200 || time.Now().After(deadline) {
			t.Fatalf("REGISTER of the disabled user: %d", res.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
