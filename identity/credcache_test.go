package identity_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/store/sqlite"
)

const (
	realm      = "example.com"
	password   = "correct horse battery staple"
	newPass    = "a different horse battery staple"
	checkEvery = 250 * time.Millisecond
)

// readCounter is the real SQLite store, counting the reads DigestHA1 makes
// and able to fail ChangeStamp. It has the one-step DigestCredentials of
// the SQLite store; userStoreOnly hides it.
type readCounter struct {
	*sqlite.DB
	byName, byID, creds, digest, stamps atomic.Int64
	failStamp                           atomic.Bool
}

func (c *readCounter) DigestCredentials(ctx context.Context, name string, alg identity.DigestAlgorithm, qualified bool) (*identity.User, []identity.SIPCredential, error) {
	c.digest.Add(1)
	return c.DB.DigestCredentials(ctx, name, alg, qualified)
}

func (c *readCounter) UserByID(ctx context.Context, id string) (*identity.User, error) {
	c.byID.Add(1)
	return c.DB.UserByID(ctx, id)
}

func (c *readCounter) UserByName(ctx context.Context, name string) (*identity.User, error) {
	c.byName.Add(1)
	return c.DB.UserByName(ctx, name)
}

func (c *readCounter) Credentials(ctx context.Context, id string) (*identity.Credentials, error) {
	c.creds.Add(1)
	return c.DB.Credentials(ctx, id)
}

func (c *readCounter) ChangeStamp(ctx context.Context, name string) (int64, error) {
	c.stamps.Add(1)
	if c.failStamp.Load() {
		return 0, errors.New("disk on fire")
	}
	return c.DB.ChangeStamp(ctx, name)
}

// reads returns the user and credential reads so far and resets them: a
// DigestHA1 cache miss is one read (DigestCredentials).
func (c *readCounter) reads() int64 {
	return c.byName.Swap(0) + c.creds.Swap(0) + c.digest.Swap(0)
}

// userStoreOnly hides every method of the store but UserStore's: a backend
// without change stamps.
type userStoreOnly struct{ identity.UserStore }

// node is one process on a database file: its store handle and Service.
type node struct {
	t     testing.TB
	store *readCounter
	svc   *identity.Service
}

// cacheWorld is a database file and the sealing key, shared by the nodes
// opened on it, and the clock they all read.
type cacheWorld struct {
	t      testing.TB
	path   string
	sealer *identity.Sealer
	hasher *identity.Hasher
	clock  *clock
}

func newCacheWorld(t testing.TB) *cacheWorld {
	t.Helper()
	key, err := identity.GenerateDataKey()
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := identity.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := identity.NewHasher(identity.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 4)
	if err != nil {
		t.Fatal(err)
	}
	return &cacheWorld{
		t: t, path: filepath.Join(t.TempDir(), "users.db"), sealer: sealer, hasher: hasher,
		clock: &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)},
	}
}

// open opens a node; edit, when not nil, adjusts its ServiceConfig.
func (w *cacheWorld) open(edit func(*identity.ServiceConfig)) *node {
	w.t.Helper()
	db, err := sqlite.Open(context.Background(), w.path)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { db.Close() })
	rc := &readCounter{DB: db}
	cfg := identity.ServiceConfig{
		Store: rc, Hasher: w.hasher, Sealer: w.sealer, Realms: []string{realm},
		Policy: identity.PasswordPolicy{MinLength: 8, MaxLength: 128}, Now: w.clock.now,
		CacheCheckInterval: checkEvery,
	}
	if edit != nil {
		edit(&cfg)
	}
	svc, err := identity.NewService(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return &node{t: w.t, store: rc, svc: svc}
}

// create makes an active user with password.
func (n *node) create(nu identity.NewUser) *identity.User {
	n.t.Helper()
	if nu.Password == "" {
		nu.Password = password
	}
	u, err := n.svc.CreateUser(context.Background(), nu)
	if err != nil {
		n.t.Fatalf("CreateUser(%s): %v", nu.Username, err)
	}
	return u
}

// ha1 asks for the plain SHA-256 HA1 of name in realm.
func (n *node) ha1(name string) (*identity.User, string, bool) {
	n.t.Helper()
	return n.ha1For(name, realm, identity.SHA256, false)
}

func (n *node) ha1For(name, r string, alg identity.DigestAlgorithm, qualified bool) (*identity.User, string, bool) {
	n.t.Helper()
	u, h, ok, err := n.svc.DigestHA1(context.Background(), name, r, alg, qualified)
	if err != nil {
		n.t.Fatalf("DigestHA1(%s, %s, %s, %v): %v", name, r, alg, qualified, err)
	}
	if ok != (u != nil) || ok != (h != "") {
		n.t.Fatalf("DigestHA1(%s): user %v, HA1 %q, ok %v: a partial answer", name, u != nil, h, ok)
	}
	return u, h, ok
}

// wantHA1 fails the test unless name's SHA-256 HA1 derives from pw ("" for
// no HA1 at all).
func (n *node) wantHA1(what, name, pw string) {
	n.t.Helper()
	_, got, ok := n.ha1(name)
	if pw == "" {
		if ok {
			n.t.Errorf("%s: DigestHA1(%s) answered an HA1, want none", what, name)
		}
		return
	}
	want, _ := identity.HA1(identity.SHA256, name, realm, pw)
	if !ok || got != want {
		n.t.Errorf("%s: DigestHA1(%s) ok=%v, HA1 matches the password: %v", what, name, ok, got == want)
	}
}

func TestDigestHA1CacheHitReadsNothingFromTheStore(t *testing.T) {
	n := newCacheWorld(t).open(nil)
	alice := n.create(identity.NewUser{Username: "alice", Roles: []identity.Role{identity.RoleUser}})
	n.store.reads()

	n.wantHA1("first ask", "alice", password)
	if r := n.store.reads(); r != 1 {
		t.Errorf("first ask: %d store reads, want 1 (user and credentials in one)", r)
	}
	u, _, _ := n.ha1("alice")
	if r := n.store.reads(); r != 0 {
		t.Errorf("second ask: %d store reads, want 0", r)
	}
	if u.ID != alice.ID || u.Username != "alice" {
		t.Errorf("cached user = %+v, want alice", u)
	}
	u.Roles[0], u.Username = identity.RoleAdmin, "mallory" // the caller's copy only
	if u, _, _ := n.ha1("ALICE"); u == nil || u.Username != "alice" || u.HasRole(identity.RoleAdmin) {
		t.Errorf("after the caller changed its copy: %+v", u)
	}
	if r := n.store.reads(); r != 0 {
		t.Errorf("ALICE: %d store reads, want 0 (one entry per username key)", r)
	}
	// Another algorithm or realm, or the qualified variant, is another entry.
	n.ha1For("alice", realm, identity.MD5, false)
	n.ha1For("alice", realm, identity.SHA256, true)
	if r := n.store.reads(); r != 2 {
		t.Errorf("MD5 and qualified: %d store reads, want 2", r)
	}
	if _, h, ok := n.ha1For("alice", realm, identity.SHA256, true); !ok || h != mustHA1(t, identity.SHA256, "alice@"+realm, password) {
		t.Error("qualified HA1 from the cache is not the HA1 over alice@realm")
	}
}

func mustHA1(t testing.TB, alg identity.DigestAlgorithm, name, pw string) string {
	t.Helper()
	h, err := identity.HA1(alg, name, realm, pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestDigestHA1CacheIsEmptiedByEveryChangeThroughTheService(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		change func(n *node, alice *identity.User) error
		check  func(t *testing.T, n *node)
	}{
		{"SetPassword", func(n *node, a *identity.User) error {
			return n.svc.SetPassword(ctx, a.ID, newPass, nil)
		}, func(t *testing.T, n *node) { n.wantHA1("after SetPassword", "alice", newPass) }},
		{"SetPassword to token-only", func(n *node, a *identity.User) error {
			on := true
			return n.svc.SetPassword(ctx, a.ID, newPass, &on)
		}, func(t *testing.T, n *node) { n.wantHA1("after SetPassword token-only", "alice", "") }},
		{"ChangePassword", func(n *node, a *identity.User) error {
			return n.svc.ChangePassword(ctx, a.ID, password, newPass)
		}, func(t *testing.T, n *node) { n.wantHA1("after ChangePassword", "alice", newPass) }},
		{"SetActive false", func(n *node, a *identity.User) error {
			_, err := n.svc.SetActive(ctx, a.ID, false)
			return err
		}, func(t *testing.T, n *node) { n.wantHA1("after SetActive false", "alice", "") }},
		{"UpdateUser disabling", func(n *node, a *identity.User) error {
			off := false
			_, err := n.svc.UpdateUser(ctx, a.ID, identity.ProfileUpdate{Active: &off})
			return err
		}, func(t *testing.T, n *node) { n.wantHA1("after UpdateUser", "alice", "") }},
		{"UpdateUser changing the display name", func(n *node, a *identity.User) error {
			name := "Alice Liddell"
			_, err := n.svc.UpdateUser(ctx, a.ID, identity.ProfileUpdate{DisplayName: &name})
			return err
		}, func(t *testing.T, n *node) {
			if u, _, _ := n.ha1("alice"); u == nil || u.DisplayName != "Alice Liddell" {
				t.Errorf("after UpdateUser: user %+v, want the new display name", u)
			}
		}},
		{"SetRoles", func(n *node, a *identity.User) error {
			_, err := n.svc.SetRoles(ctx, a.ID, []identity.Role{identity.RoleAdmin, identity.RoleUser})
			return err
		}, func(t *testing.T, n *node) {
			if u, _, _ := n.ha1("alice"); u == nil || !u.HasRole(identity.RoleAdmin) {
				t.Errorf("after SetRoles: user %+v, want admin", u)
			}
		}},
		{"DeleteUser", func(n *node, a *identity.User) error {
			return n.svc.DeleteUser(ctx, a.ID)
		}, func(t *testing.T, n *node) { n.wantHA1("after DeleteUser", "alice", "") }},
		{"DeleteUser and CreateUser again", func(n *node, a *identity.User) error {
			if err := n.svc.DeleteUser(ctx, a.ID); err != nil {
				return err
			}
			_, err := n.svc.CreateUser(ctx, identity.NewUser{Username: "Alice", Password: newPass})
			return err
		}, func(t *testing.T, n *node) {
			_, got, ok := n.ha1("alice")
			if want := mustHA1(t, identity.SHA256, "Alice", newPass); !ok || got != want {
				t.Errorf("after re-creation: ok=%v, HA1 of the new user: %v", ok, got == want)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newCacheWorld(t).open(nil)
			n.create(identity.NewUser{Username: "root", Roles: []identity.Role{identity.RoleAdmin}})
			alice := n.create(identity.NewUser{Username: "alice"})
			n.wantHA1("before", "alice", password)
			n.ha1("alice")
			n.store.reads()
			n.ha1("alice")
			if r := n.store.reads(); r != 0 {
				t.Fatalf("the answer is not cached: %d reads", r)
			}
			if err := c.change(n, alice); err != nil {
				t.Fatal(err)
			}
			c.check(t, n) // the clock has not moved: only the flush explains a fresh answer
		})
	}
}

func TestDigestHA1CachesNegativeAnswersUntilTheUserAppears(t *testing.T) {
	ctx := context.Background()
	n := newCacheWorld(t).open(nil)
	n.create(identity.NewUser{Username: "dora", Disabled: true})
	n.create(identity.NewUser{Username: "tess", TokenOnly: true})
	n.create(identity.NewUser{Username: "alice"})
	n.store.reads()
	for _, q := range []struct {
		what, name, realm string
		reads             int64
	}{
		{"an unknown user", "x7f3k2q9", realm, 1},
		{"a disabled user", "dora", realm, 1},
		{"a token-only user", "tess", realm, 1},
		{"a realm alice has no HA1 for", "alice", "other.example", 1},
	} {
		for i, want := range []int64{q.reads, 0} {
			if _, _, ok := n.ha1For(q.name, q.realm, identity.SHA256, false); ok {
				t.Errorf("%s: ok", q.what)
			}
			if r := n.store.reads(); r != want {
				t.Errorf("%s, ask %d: %d store reads, want %d", q.what, i+1, r, want)
			}
		}
	}
	if _, err := n.svc.ImportUsers(ctx, []identity.NewUser{{Username: "X7F3K2Q9", Password: password}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, got, ok := n.ha1("x7f3k2q9"); !ok || got != mustHA1(t, identity.SHA256, "X7F3K2Q9", password) {
		t.Errorf("after ImportUsers created the unknown name: ok=%v", ok)
	}
}

func TestDigestHA1CacheStaysWithinItsBound(t *testing.T) {
	n := newCacheWorld(t).open(func(c *identity.ServiceConfig) { c.CacheEntries = 8 })
	n.create(identity.NewUser{Username: "alice"})
	for i := range 200 {
		n.ha1(fmt.Sprintf("scanner%03d", i))
		if got := identity.CachedCredentials(n.svc); got > 8 {
			t.Fatalf("after %d names: %d entries, want at most 8", i+1, got)
		}
	}
	if got := identity.CachedCredentials(n.svc); got == 0 {
		t.Error("no entries at all after 200 names")
	}
	n.wantHA1("after the scan", "alice", password)
}

func TestDigestHA1SeesAnotherProcessWithinTheCheckInterval(t *testing.T) {
	ctx := context.Background()
	w := newCacheWorld(t)
	server, cli := w.open(nil), w.open(nil) // serve and the CLI, on one file
	alice := server.create(identity.NewUser{Username: "alice"})
	server.wantHA1("before", "alice", password)
	server.wantHA1("before, unknown", "bob", "")

	if err := cli.svc.SetPassword(ctx, alice.ID, newPass, nil); err != nil {
		t.Fatal(err)
	}
	cli.create(identity.NewUser{Username: "bob"})
	// Within the interval the server may answer from its cache; that is the
	// documented staleness bound.
	w.clock.advance(checkEvery - time.Millisecond)
	server.wantHA1("within the interval", "alice", password)
	w.clock.advance(time.Millisecond)
	server.wantHA1("after the interval", "alice", newPass)
	server.wantHA1("after the interval, the new user", "bob", password)

	// The stamp is read once per interval, not once per ask.
	server.store.stamps.Store(0)
	for range 10 {
		server.ha1("alice")
	}
	if s := server.store.stamps.Load(); s != 0 {
		t.Errorf("%d stamp reads within one interval, want 0", s)
	}
	w.clock.advance(checkEvery)
	for range 10 {
		server.ha1("alice")
	}
	if s := server.store.stamps.Load(); s != 1 {
		t.Errorf("%d stamp reads for 10 asks after the interval, want 1", s)
	}
}

func TestDigestHA1WithoutChangeStampsKeepsEntriesOneInterval(t *testing.T) {
	ctx := context.Background()
	w := newCacheWorld(t)
	var plain *readCounter
	server := w.open(func(c *identity.ServiceConfig) {
		plain = c.Store.(*readCounter)
		c.Store = userStoreOnly{plain}
	})
	cli := w.open(nil)
	alice := cli.create(identity.NewUser{Username: "alice"})
	server.wantHA1("before", "alice", password)
	plain.reads()
	server.wantHA1("cached", "alice", password)
	if r := plain.reads(); r != 0 {
		t.Errorf("within the interval: %d reads, want 0", r)
	}
	if _, err := cli.svc.SetActive(ctx, alice.ID, false); err != nil {
		t.Fatal(err)
	}
	w.clock.advance(checkEvery)
	server.wantHA1("after the interval", "alice", "")
	if r := plain.reads(); r == 0 {
		t.Error("after the interval: no store read")
	}
}

func TestDigestHA1WithoutAReadableStampAsksTheStore(t *testing.T) {
	ctx := context.Background()
	w := newCacheWorld(t)
	server, cli := w.open(nil), w.open(nil)
	alice := server.create(identity.NewUser{Username: "alice"})
	server.wantHA1("before", "alice", password)
	if _, err := cli.svc.SetActive(ctx, alice.ID, false); err != nil {
		t.Fatal(err)
	}
	w.clock.advance(checkEvery)
	server.store.failStamp.Store(true)
	server.store.reads()
	server.wantHA1("stamp unreadable", "alice", "")
	server.wantHA1("stamp unreadable, again", "alice", "")
	if r := server.store.reads(); r != 2 {
		t.Errorf("with the stamp unreadable: %d reads for 2 asks, want 2 (no caching)", r)
	}
	server.store.failStamp.Store(false)
	server.wantHA1("stamp readable again", "alice", "")
}

func TestDigestHA1CacheOff(t *testing.T) {
	n := newCacheWorld(t).open(func(c *identity.ServiceConfig) { c.CacheEntries = -1 })
	n.create(identity.NewUser{Username: "alice"})
	n.store.reads()
	for range 3 {
		n.wantHA1("uncached", "alice", password)
	}
	if r := n.store.reads(); r != 3 {
		t.Errorf("3 asks without a cache: %d reads, want 3", r)
	}
	if got := identity.CachedCredentials(n.svc); got != -1 {
		t.Errorf("CachedCredentials = %d, want -1 (off)", got)
	}
}

// TestDigestHA1CacheNeverOutlivesAConcurrentChange asks while the password
// changes: once SetPassword has returned, no ask may answer the old HA1, even
// one whose store read began before the change.
func TestDigestHA1CacheNeverOutlivesAConcurrentChange(t *testing.T) {
	ctx := context.Background()
	n := newCacheWorld(t).open(nil)
	alice := n.create(identity.NewUser{Username: "alice"})
	pw := password
	for round := range 20 {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, _, _, err := n.svc.DigestHA1(ctx, "alice", realm, identity.SHA256, false); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		pw = fmt.Sprintf("password number %d of alice", round)
		if err := n.svc.SetPassword(ctx, alice.ID, pw, nil); err != nil {
			t.Fatal(err)
		}
		n.wantHA1(fmt.Sprintf("round %d, right after SetPassword", round), "alice", pw)
		close(stop)
		wg.Wait()
		n.wantHA1(fmt.Sprintf("round %d, after the readers", round), "alice", pw)
	}
}

// benchUsers is the number of users the DigestHA1 benchmarks ask for in
// turn: more than fit a CPU cache, fewer than the cache bound.
const benchUsers = 10_000

// benchNode returns a node with benchUsers users (user00000...) whose
// DigestHA1 cache holds entries (negative: off), on the real clock.
func benchNode(b *testing.B, entries int) (*node, []string) {
	w := newCacheWorld(b)
	n := w.open(func(c *identity.ServiceConfig) { c.CacheEntries, c.Now = entries, time.Now })
	now := time.Now().UTC().Truncate(time.Millisecond)
	users := make([]*identity.User, benchUsers)
	creds := make([]*identity.Credentials, benchUsers)
	names := make([]string, benchUsers)
	for i := range users {
		names[i] = fmt.Sprintf("user%05d", i)
		users[i] = &identity.User{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Username: names[i],
			Roles: []identity.Role{identity.RoleUser}, Active: true, CreatedAt: now, UpdatedAt: now}
		sip, err := identity.DeriveSIPCredentials(w.sealer, users[i].ID, names[i], password, []string{realm})
		if err != nil {
			b.Fatal(err)
		}
		creds[i] = &identity.Credentials{SIP: sip}
	}
	if err := n.store.DB.CreateUsers(context.Background(), users, creds); err != nil {
		b.Fatal(err)
	}
	return n, names
}

// benchDigestHA1 asks for the MD5 HA1 of every user in turn (known) or of
// names nobody has (unknown), as REGISTERs under SIPp load do.
func benchDigestHA1(b *testing.B, entries int) {
	n, names := benchNode(b, entries)
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		prefix string
		ok     bool
	}{{"user=known", "", true}, {"user=unknown", "nobody-", false}} {
		b.Run(c.name, func(b *testing.B) {
			for _, name := range names { // warm the cache, as a running server has
				n.svc.DigestHA1(ctx, c.prefix+name, realm, identity.MD5, false)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_, _, ok, err := n.svc.DigestHA1(ctx, c.prefix+names[i%len(names)], realm, identity.MD5, false)
				if err != nil || ok != c.ok {
					b.Fatalf("DigestHA1: ok=%v err=%v", ok, err)
				}
				i++
			}
		})
	}
}

// BenchmarkDigestHA1Cached and BenchmarkDigestHA1Uncached compare with
//
//	go test -run '^$' -bench 'DigestHA1|RegulatorCheck' -benchmem -count 10 ./identity >bench.txt
//	benchstat -filter '.name:/DigestHA1/' -col .name -row /user bench.txt
//	benchstat -filter .name:RegulatorCheck -col /snapshot bench.txt
func BenchmarkDigestHA1Cached(b *testing.B)   { benchDigestHA1(b, 0) }
func BenchmarkDigestHA1Uncached(b *testing.B) { benchDigestHA1(b, -1) }

// TestCachedUserServesTokenSubjectsFromTheCache: CachedUser answers a
// repeated ID from memory, sees a change made through the Service at once
// and another process's change within the check interval, and caches "no
// such user" too.
func TestCachedUserServesTokenSubjectsFromTheCache(t *testing.T) {
	ctx := context.Background()
	w := newCacheWorld(t)
	a, b := w.open(nil), w.open(nil)
	u := a.create(identity.NewUser{Username: "carol", Password: password})
	for range 3 {
		got, err := a.svc.CachedUser(ctx, u.ID)
		if err != nil || got.Username != "carol" || !got.Active {
			t.Fatalf("CachedUser: %+v, %v", got, err)
		}
	}
	if n := a.store.byID.Swap(0); n != 1 {
		t.Fatalf("three lookups read the store %d times, want 1", n)
	}
	if _, err := a.svc.SetActive(ctx, u.ID, false); err != nil {
		t.Fatal(err)
	}
	if got, err := a.svc.CachedUser(ctx, u.ID); err != nil || got.Active {
		t.Fatalf("after SetActive(false) here: %+v, %v", got, err)
	}
	// Another process re-enables the user: seen after the interval.
	if _, err := b.svc.CachedUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.SetActive(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	w.clock.advance(checkEvery)
	if got, err := a.svc.CachedUser(ctx, u.ID); err != nil || !got.Active {
		t.Fatalf("another process's change not seen after the interval: %+v, %v", got, err)
	}
	a.store.byID.Swap(0)
	for range 2 {
		if _, err := a.svc.CachedUser(ctx, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, identity.ErrNotFound) {
			t.Fatalf("unknown ID: %v, want ErrNotFound", err)
		}
	}
	if n := a.store.byID.Load(); n != 1 {
		t.Fatalf("two lookups of an unknown ID read the store %d times, want 1", n)
	}
}

// TestDigestHA1AnswersAlikeInOneReadOrTwo asks the same questions through a
// store with DigestCredentials (one read per miss) and through the same
// store without it (UserByName, then Credentials): every answer must match.
func TestDigestHA1AnswersAlikeInOneReadOrTwo(t *testing.T) {
	w := newCacheWorld(t)
	off := func(c *identity.ServiceConfig) { c.CacheEntries = -1 }
	one := w.open(off)
	var plain *readCounter
	two := w.open(func(c *identity.ServiceConfig) {
		off(c)
		plain = c.Store.(*readCounter)
		c.Store = userStoreOnly{plain}
	})
	one.create(identity.NewUser{Username: "Alice", Roles: []identity.Role{identity.RoleUser}})
	one.create(identity.NewUser{Username: "dora", Disabled: true})
	one.create(identity.NewUser{Username: "tess", TokenOnly: true})
	one.store.reads()
	plain.reads()
	for _, q := range []struct {
		name, realm string
		alg         identity.DigestAlgorithm
		qualified   bool
	}{
		{"alice", realm, identity.SHA256, false},
		{"ALICE", "EXAMPLE.com", identity.MD5, false},
		{"alice", realm, identity.SHA256, true},
		{"alice", realm, identity.SHA512256, false},
		{"alice", "other.example", identity.SHA256, false},
		{"dora", realm, identity.SHA256, false},
		{"tess", realm, identity.MD5, false},
		{"nobody", realm, identity.MD5, false},
	} {
		u1, h1, ok1 := one.ha1For(q.name, q.realm, q.alg, q.qualified)
		u2, h2, ok2 := two.ha1For(q.name, q.realm, q.alg, q.qualified)
		if ok1 != ok2 || h1 != h2 || (u1 == nil) != (u2 == nil) || (u1 != nil && (u1.ID != u2.ID || u1.Username != u2.Username || !slices.Equal(u1.Roles, u2.Roles))) {
			t.Errorf("%+v: one read answers ok=%v user=%+v, two reads ok=%v user=%+v (HA1 alike: %v)", q, ok1, u1, ok2, u2, h1 == h2)
		}
		if d, n := one.store.digest.Swap(0), one.store.reads(); d != 1 || n != 0 {
			t.Errorf("%+v: %d DigestCredentials and %d other reads, want 1 and 0", q, d, n)
		}
		if d, n := plain.digest.Swap(0), plain.reads(); d != 0 || n == 0 {
			t.Errorf("%+v without DigestCredentials: %d DigestCredentials and %d other reads, want 0 and some", q, d, n)
		}
	}
}
