package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rvoip/users-core/identity"
)

// kamailioDB creates an SQLite database with Kamailio's subscriber table
// (the columns auth_db reads, plus one it does not) holding rows, each
// (username, domain, password, ha1, ha1b); "" is stored as NULL for ha1b
// and as ” otherwise, as kamctl does.
func kamailioDB(t testing.TB, schema string, rows ...[5]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kamailio.sqlite")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if schema == "" {
		schema = `CREATE TABLE subscriber (id INTEGER PRIMARY KEY, username TEXT, domain TEXT,
			password TEXT, ha1 TEXT, ha1b TEXT, email_address TEXT)`
	}
	if _, err := db.Exec(schema); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		var ha1b any
		if r[4] != "" {
			ha1b = r[4]
		}
		if _, err := db.Exec(`INSERT INTO subscriber (username, domain, password, ha1, ha1b, email_address) VALUES (?, ?, ?, ?, ?, ?)`,
			r[0], r[1], r[2], r[3], ha1b, r[0]+"@mail.test"); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

const (
	kamDomain    = sipDomain // example.test, the domain sipMain serves
	kamAlicePass = "alice-kamailio-passphrase"
	kamBobPass   = "bob-only-known-to-his-phone"
	kamCarolPass = "Kx9q" // too short for the policy
)

func TestKamailioImportFromSQLite(t *testing.T) {
	bobHA1 := md5hex("bob:" + kamDomain + ":" + kamBobPass)
	bobHA1b := md5hex("bob@" + kamDomain + ":" + kamDomain + ":" + kamBobPass)
	bobOther := md5hex("bob:other.test:" + kamBobPass)
	src := kamailioDB(t, "",
		[5]string{"alice", kamDomain, kamAlicePass, md5hex("alice:" + kamDomain + ":" + kamAlicePass), md5hex("alice@" + kamDomain + ":" + kamDomain + ":" + kamAlicePass)},
		[5]string{"bob", kamDomain, "", bobHA1, bobHA1b},
		[5]string{"carol", kamDomain, kamCarolPass, "", ""},
		[5]string{"bob", "other.test", "", bobOther, ""},
	)
	before, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()

	r := runCLI(t, data, "", "user", "import", "--from-kamailio", src, "--domain", kamDomain)
	r.want(t, 0, "user carol: password does not meet the policy")
	if want := "imported 3 users from Kamailio (2 with passwords, 1 with HA1 only)\n"; r.stdout != want {
		t.Fatalf("stdout %q, want %q", r.stdout, want)
	}
	for _, secret := range []string{kamCarolPass, kamAlicePass, kamBobPass, bobHA1} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Fatalf("output contains a secret (%.4s...):\n%s%s", secret, r.stdout, r.stderr)
		}
	}
	if !strings.Contains(r.stderr, "domain other.test (1 users) is not one of the configured domains") {
		t.Fatalf("no warning for the domain users-core does not serve:\n%s", r.stderr)
	}
	if after, _ := os.ReadFile(src); !bytes.Equal(before, after) {
		t.Fatal("the import changed the Kamailio database")
	}

	app := openApp(t, data, func(c *Config) { c.UsersCore.Domains = []string{kamDomain} })
	ctx := context.Background()
	for name, pw := range map[string]string{"alice": kamAlicePass, "carol": kamCarolPass} {
		if _, ok, err := app.Users.VerifyPassword(ctx, name, pw); err != nil || !ok {
			t.Fatalf("%s: password login after import: ok=%v err=%v", name, ok, err)
		}
		for _, alg := range identity.DigestAlgorithms {
			for _, q := range []bool{false, true} {
				user := name
				if q {
					user += "@" + kamDomain
				}
				want, _ := identity.HA1(alg, user, kamDomain, pw)
				if _, got, ok, err := app.Users.DigestHA1(ctx, name, kamDomain, alg, q); err != nil || !ok || got != want {
					t.Fatalf("%s %s qualified=%v: ok=%v err=%v, HA1 does not derive from the password", name, alg, q, ok, err)
				}
			}
		}
	}
	if _, ok, err := app.Users.VerifyPassword(ctx, "bob", kamBobPass); err != nil || ok {
		t.Fatalf("an HA1-only user must not log in over HTTP: ok=%v err=%v", ok, err)
	}
	for _, c := range []struct {
		realm     string
		alg       identity.DigestAlgorithm
		qualified bool
		want      string // "" means none
	}{
		{kamDomain, identity.MD5, false, bobHA1},
		{kamDomain, identity.MD5, true, bobHA1b},
		{"other.test", identity.MD5, false, bobOther},
		{"other.test", identity.MD5, true, ""},
		{kamDomain, identity.SHA256, false, ""},
		{kamDomain, identity.SHA512256, true, ""},
	} {
		_, got, ok, err := app.Users.DigestHA1(ctx, "bob", c.realm, c.alg, c.qualified)
		if err != nil || ok != (c.want != "") || got != c.want {
			t.Fatalf("bob %s %s qualified=%v: ok=%v err=%v, want the imported value: %v", c.realm, c.alg, c.qualified, ok, err, c.want != "")
		}
	}
	app.Close()

	t.Run("a second import of the same rows conflicts and names the user", func(t *testing.T) {
		runCLI(t, data, "", "user", "import", "--from-kamailio", "sqlite://"+src, "--domain", kamDomain).
			want(t, 1, `nothing imported: username "alice" already exists`)
	})

	t.Run("the imported phones register over SIP", func(t *testing.T) {
		m := sipMain(t, data)
		for _, c := range []struct {
			user, digestUser, password string
			alg                        identity.DigestAlgorithm
			status                     int
		}{
			{"alice", "alice", kamAlicePass, identity.SHA512256, 200},
			{"carol", "carol", kamCarolPass, identity.SHA256, 200},
			{"bob", "bob", kamBobPass, identity.MD5, 200},
			{"bob", "bob@" + kamDomain, kamBobPass, identity.MD5, 200}, // ha1b
			{"bob", "bob", kamBobPass, identity.SHA256, 401},           // no SHA-256 HA1 without the password
		} {
			p := newPhone(t, m, "UDP", c.user)
			res := p.do(p.request(600))
			if res.StatusCode != 401 {
				t.Fatalf("first REGISTER: %d", res.StatusCode)
			}
			got := p.do(p.request(600, digestFor(t, res, c.alg, c.digestUser, c.password)))
			if got.StatusCode != c.status {
				t.Fatalf("%s as %q with %s: %d, want %d", c.user, c.digestUser, c.alg, got.StatusCode, c.status)
			}
		}
	})
}

func TestKamailioImportBadRowImportsNothing(t *testing.T) {
	data := t.TempDir()
	src := kamailioDB(t, "",
		[5]string{"dave", kamDomain, "dave-has-a-long-password", "", ""},
		[5]string{"bad name", kamDomain, "another-long-password", "", ""},
	)
	r := runCLI(t, data, "", "user", "import", "--from-kamailio", src, "--domain", kamDomain)
	r.want(t, 1, `row 2 ("bad name"@example.test)`)
	if !strings.Contains(r.stderr, "SIP URI user part") || !strings.Contains(r.stderr, "nothing imported") {
		t.Fatalf("stderr: %s", r.stderr)
	}
	conflict := kamailioDB(t, "",
		[5]string{"erin", kamDomain, "erin-password-one", "", ""},
		[5]string{"erin", "other.test", "erin-password-two", "", ""},
	)
	runCLI(t, data, "", "user", "import", "--from-kamailio", conflict, "--domain", kamDomain).
		want(t, 1, `user "erin": different passwords in domains`)
	runCLI(t, data, "", "user", "import", "--from-kamailio", filepath.Join(t.TempDir(), "missing.db")).want(t, 1, "no such file")
	runCLI(t, data, "", "user", "import", "--from-kamailio", src, "--token-only").want(t, 2, "--token-only does not apply")
	runCLI(t, data, "", "user", "import", "--from-kamailio", "oracle://k:pw@db/kamailio").want(t, 2, "unsupported scheme")

	r = runCLI(t, data, "", "user", "list", "--json")
	r.want(t, 0, "")
	var users []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &users); err != nil || len(users) != 0 {
		t.Fatalf("users after failed imports: %v %s", err, r.stdout)
	}
}

// TestKamailioImportKeepsCommonFieldPasswords: a desk phone's "1234" must
// survive the move (with a warning), or the import locks the phone out.
func TestKamailioImportKeepsCommonFieldPasswords(t *testing.T) {
	data := t.TempDir()
	src := kamailioDB(t, "", [5]string{"1001", kamDomain, "1234", "", ""})
	runCLI(t, data, "", "user", "import", "--from-kamailio", src, "--domain", kamDomain).
		want(t, 0, "user 1001: password does not meet the policy")
	app := openApp(t, data, func(c *Config) { c.UsersCore.Domains = []string{kamDomain} })
	if _, ok, err := app.Users.VerifyPassword(context.Background(), "1001", "1234"); err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
}

func TestKamailioOlderSchemasAreRead(t *testing.T) {
	ctx := context.Background()
	read := func(path string) ([]kamailioRow, error) {
		src, err := parseKamailioSource(path)
		if err != nil {
			t.Fatal(err)
		}
		db, err := src.open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		return readKamailio(ctx, db, src.kind)
	}
	ha1 := md5hex("frank:" + kamDomain + ":secret")
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE subscriber (USERNAME TEXT, domain TEXT, HA1 TEXT)`, // no id, password or ha1b; other case
		`INSERT INTO subscriber VALUES ('frank', 'example.test', '` + strings.ToUpper(ha1) + `')`,
		`CREATE TABLE other (x TEXT)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	rows, err := read("sqlite://" + path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0] != (kamailioRow{ID: "1", Username: "frank", Domain: kamDomain, HA1: ha1}) {
		t.Fatalf("rows: %+v", rows)
	}
	noUser := kamailioDB(t, `CREATE TABLE subscriber (username TEXT, domain TEXT, password TEXT, ha1 TEXT, ha1b TEXT, email_address TEXT)`)
	if rows, err := read(noUser); err != nil || len(rows) != 0 {
		t.Fatalf("empty table: %v %v", rows, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.db")
	db, _ = sql.Open("sqlite", "file:"+bad)
	db.Exec(`CREATE TABLE subscriber (user TEXT, ha1 TEXT)`)
	db.Close()
	if _, err := read(bad); err == nil || !strings.Contains(err.Error(), "no username column") {
		t.Fatalf("table without username: %v", err)
	}
}

func TestKamailioPlanMergesDomainsAndRefusesConflicts(t *testing.T) {
	set := kamailioSettings{
		domains:    []string{"a.test", "b.test"},
		policy:     identity.DefaultPasswordPolicy(),
		md5Offered: func(d string) bool { return d != "b.test" },
	}
	h := func(user, realm, pw string) string { return md5hex(user + ":" + realm + ":" + pw) }
	plan, err := planKamailio([]kamailioRow{
		{ID: "1", Username: "gina", Domain: "a.test", HA1: h("gina", "a.test", "pw"), HA1B: h("gina@a.test", "a.test", "pw")},
		{ID: "2", Username: "gina", Domain: "b.test", HA1: h("gina", "b.test", "pw")},
		{ID: "3", Username: "hank", Domain: "a.test", Password: "hank-long-password", HA1: h("hank", "a.test", "hank-long-password")},
		{ID: "4", Username: "hank", Domain: "b.test", Password: "hank-long-password"},
		{ID: "5", Username: "hank", Domain: "c.test", HA1: h("hank", "c.test", "hank-long-password")},
	}, set)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.users) != 2 || plan.withPassword != 1 || plan.ha1Only != 1 {
		t.Fatalf("plan: %+v", plan)
	}
	g := plan.users[0]
	if g.Username != "gina" || g.Password != "" || len(g.KnownHA1s) != 3 || g.KnownHA1s[2].Realm != "b.test" || !g.KnownHA1s[1].Qualified {
		t.Fatalf("gina: %+v", g)
	}
	if hk := plan.users[1]; hk.Password != "hank-long-password" || !hk.SkipPasswordPolicy || len(hk.KnownHA1s) != 0 {
		t.Fatalf("hank: %+v", hk)
	}
	warn := strings.Join(plan.warnings, "\n")
	for _, w := range []string{"domain c.test (1 users) is not one of the configured domains", "domain b.test: MD5 is not among its Digest algorithms"} {
		if !strings.Contains(warn, w) {
			t.Fatalf("warnings lack %q:\n%s", w, warn)
		}
	}

	for _, c := range []struct {
		rows []kamailioRow
		want string
	}{
		{[]kamailioRow{{ID: "1", Username: "ivy", Domain: "a.test", Password: "one-password-x"}, {ID: "2", Username: "ivy", Domain: "b.test", Password: "two-password-x"}},
			`user "ivy": different passwords in domains "a.test" and "b.test"`},
		{[]kamailioRow{{ID: "1", Username: "jo", Domain: "a.test", Password: "jo-long-password"}, {ID: "2", Username: "jo", Domain: "b.test", HA1: h("jo", "b.test", "other")}},
			`user "jo": the ha1 of domain "b.test" does not match the password`},
		{[]kamailioRow{{ID: "1", Username: "Kim", Domain: "a.test", Password: "kim-long-password"}, {ID: "2", Username: "kim", Domain: "b.test", Password: "kim-long-password"}},
			"differs from row 1"},
		{[]kamailioRow{{ID: "7", Username: "lou", Domain: "a.test", HA1: strings.Repeat("ab", 32)}},
			`row 7 ("lou"@a.test): ha1 is not an MD5 HA1`},
		{[]kamailioRow{{ID: "8", Username: "max", Domain: "a.test"}}, "no password and no ha1"},
		{[]kamailioRow{{ID: "9", Username: "ned", HA1: h("ned", "", "x")}}, "needs a domain"},
		{nil, "holds no rows"},
	} {
		if _, err := planKamailio(c.rows, set); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("want an error with %q, got %v", c.want, err)
		}
	}
}

func TestKamailioSourceURLs(t *testing.T) {
	for _, c := range []struct{ in, dsn string }{
		{"mysql://kamailio:kamailiorw@db.example:3306/kamailio", "kamailio:kamailiorw@tcp(db.example:3306)/kamailio"},
		{"mysql://kamailio:kamailiorw@db.example/kamailio", "kamailio:kamailiorw@tcp(db.example:3306)/kamailio"},
		{"mysql://k:" + url.QueryEscape("p@ss/w:rd") + "@[::1]:3307/kam?tls=true", "k:p@ss/w:rd@tcp([::1]:3307)/kam?tls=true"},
		{"MYSQL://k@/kamailio", "k@tcp(127.0.0.1:3306)/kamailio"},
	} {
		src, err := parseKamailioSource(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if src.kind != "mysql" || src.my.FormatDSN() != c.dsn {
			t.Fatalf("%s: %s DSN %q, want %q", c.in, src.kind, src.my.FormatDSN(), c.dsn)
		}
	}
	src, err := parseKamailioSource("mysql://k:s3cret@db/kamailio")
	if err != nil || strings.Contains(src.display, "s3cret") || src.scrub("access denied for k:s3cret") != "access denied for k:xxxxx" {
		t.Fatalf("the password shows: %q %v", src.display, err)
	}

	for _, in := range []string{"postgres://kamailio:s3cret@db.example:5432/kamailio?sslmode=disable", "postgresql://kamailio:s3cret@db.example/kamailio"} {
		src, err := parseKamailioSource(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if src.kind != "postgres" || src.pg.Host != "db.example" || src.pg.Port != 5432 || src.pg.Database != "kamailio" || src.pg.Password != "s3cret" {
			t.Fatalf("%s: %+v", in, src.pg.Config)
		}
		if strings.Contains(src.display, "s3cret") {
			t.Fatalf("display %q shows the password", src.display)
		}
	}

	for _, c := range []struct{ in, path string }{
		{"/var/lib/kamailio/kamailio.sqlite", "/var/lib/kamailio/kamailio.sqlite"},
		{"sqlite:///var/lib/kamailio/kamailio.sqlite", "/var/lib/kamailio/kamailio.sqlite"},
		{"sqlite://kamailio.db?mode=rwc", "kamailio.db"},
	} {
		src, err := parseKamailioSource(c.in)
		if err != nil || src.kind != "sqlite" || src.path != c.path {
			t.Fatalf("%s: %+v %v", c.in, src, err)
		}
	}

	for _, in := range []string{"mysql://k:s3cret@db", "mysql://k:s3cret@db/", "postgres://k:s3cret@db:notaport/x", "mongodb://k:s3cret@db/x", "mysql://k:s3cret@db/kam?%zz"} {
		_, err := parseKamailioSource(in)
		var ue *usageError
		if err == nil || !errors.As(err, &ue) || strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("%s: want a usage error without the password, got %v", in, err)
		}
	}
}
