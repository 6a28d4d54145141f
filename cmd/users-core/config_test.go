package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFileLayoutIsRead(t *testing.T) {
	path := writeFile(t, t.TempDir(), "users-core.toml", `
[users_core]
database_url = "sqlite:///var/lib/users-core/users.db"
api_bind_address = "0.0.0.0:9000"
domains = ["example.com", "Example.COM", "voip.example.com"]

[users_core.jwt]
issuer = "https://id.example.com"
audience = ["rvoip-api", "rvoip-sip"]

[users_core.password]
min_length = 14

[auth.trusted_issuers.keycloak]
issuer = "https://kc.example.com/realms/voip"
jwks_uri = "https://kc.example.com/realms/voip/protocol/openid-connect/certs"
audience = "rvoip-sip"
`)
	cfg := defaultConfig()
	if err := loadConfigFile(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.finish(); err != nil {
		t.Fatal(err)
	}
	u := cfg.UsersCore
	if u.DatabaseURL != "sqlite:///var/lib/users-core/users.db" || u.APIBindAddress != "0.0.0.0:9000" {
		t.Errorf("users_core table not read: %+v", u)
	}
	if want := []string{"example.com", "voip.example.com"}; !reflect.DeepEqual(u.Domains, want) {
		t.Errorf("domains = %v, want %v (lower-cased, deduplicated)", u.Domains, want)
	}
	if u.JWT.Issuer != "https://id.example.com" || u.Password.MinLength != 14 || u.Password.MaxLength != 128 {
		t.Errorf("nested tables not read or defaults lost: %+v", u)
	}
	if ti := cfg.Auth.TrustedIssuers["keycloak"]; ti.Issuer != "https://kc.example.com/realms/voip" || ti.JWKSURI == "" {
		t.Errorf("trusted issuer not read: %+v", cfg.Auth.TrustedIssuers)
	}
}

func TestConfigUnknownKeyNamesKeyAndLine(t *testing.T) {
	path := writeFile(t, t.TempDir(), "bad.toml", "[users_core]\napi_bind_address = \"127.0.0.1:1\"\n\n[users_core.jwt]\nisuer = \"typo\"\n")
	cfg := defaultConfig()
	err := loadConfigFile(path, &cfg)
	if err == nil {
		t.Fatal("unknown key accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, "users_core.jwt.isuer") || !strings.Contains(msg, "bad.toml:5") {
		t.Errorf("error %q should name the key users_core.jwt.isuer and line 5", msg)
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"short data key":           func(c *Config) { c.UsersCore.DataKey = "abcd" },
		"no domain":                func(c *Config) { c.UsersCore.Domains = []string{" ", ""} },
		"domain with quote":        func(c *Config) { c.UsersCore.Domains = []string{`a"b`} },
		"unknown log format":       func(c *Config) { c.UsersCore.Log.Format = "xml" },
		"trusted issuer not a URL": func(c *Config) { c.Auth.TrustedIssuers = map[string]TrustedIssuer{"x": {Issuer: "nope"}} },
		"jwks_uri with wrong scheme": func(c *Config) {
			c.Auth.TrustedIssuers = map[string]TrustedIssuer{"x": {Issuer: "https://a", JWKSURI: "ftp://a/keys", Audience: "a"}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := defaultConfig()
			mutate(&cfg)
			if err := cfg.finish(); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestFlagBeatsEnvironmentBeatsFile(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "c.toml", "[users_core]\ndata_dir = \"/from/file\"\ndatabase_url = \"sqlite:///from/file.db\"\ndomains = [\"file.example\"]\n\n[users_core.log]\nlevel = \"warn\"\n")
	env := map[string]string{
		"USERS_CORE_CONFIG":       path,
		"USERS_CORE_DATABASE_URL": "sqlite:///from/env.db",
		"USERS_CORE_DATA_DIR":     "/from/env",
		"USERS_CORE_DOMAIN":       "env1.example, env2.example",
	}
	c := newCLI(strings.NewReader(""), os.Stdout, os.Stderr, func(k string) string { return env[k] })
	f := newFlags("test")
	if _, err := c.parse(f, []string{"--data-dir", "/from/flag"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.configuration(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	u := cfg.UsersCore
	if u.DataDir != "/from/flag" {
		t.Errorf("data dir = %q, want the flag's", u.DataDir)
	}
	if u.DatabaseURL != "sqlite:///from/env.db" {
		t.Errorf("database url = %q, want the environment's", u.DatabaseURL)
	}
	if want := []string{"env1.example", "env2.example"}; !reflect.DeepEqual(u.Domains, want) {
		t.Errorf("domains = %v, want %v from the environment", u.Domains, want)
	}
	if u.Log.Level != "warn" {
		t.Errorf("log level = %q, want the file's", u.Log.Level)
	}
	if u.DataKeyFile != "/from/flag/data.key" {
		t.Errorf("data key file = %q, want it derived from the data dir", u.DataKeyFile)
	}
}

func TestEveryKeyHasAnEnvironmentVariable(t *testing.T) {
	cfg := defaultConfig()
	env := map[string]string{
		"USERS_CORE_PASSWORD_MIN_LENGTH": "16",
		"USERS_CORE_JWT_AUDIENCE":        "a, b",
		"USERS_CORE_API_BIND_ADDRESS":    "off",
	}
	if err := applyEnv(&cfg, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	u := cfg.UsersCore
	if u.Password.MinLength != 16 || !reflect.DeepEqual(u.JWT.Audience, []string{"a", "b"}) || u.APIBindAddress != "off" {
		t.Fatalf("environment not applied: %+v", u)
	}
	bad := map[string]string{"USERS_CORE_PASSWORD_ARGON2_PARALLELISM": "300"}
	if err := applyEnv(&cfg, func(k string) string { return bad[k] }); err == nil || !strings.Contains(err.Error(), "USERS_CORE_PASSWORD_ARGON2_PARALLELISM") {
		t.Fatalf("out-of-range value: %v", err)
	}
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	for _, k := range configKeys(&cfg) {
		if !strings.Contains(string(readme), "`"+k.Path+"`") || !strings.Contains(string(readme), "`"+k.Env+"`") {
			t.Errorf("README does not document %s / %s", k.Path, k.Env)
		}
	}
}
