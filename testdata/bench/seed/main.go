// Command seed fills a users-core data dir with bench users, and
// optionally one registration binding per user, fast enough for millions of
// users: users user0000..userNNNN with password secret-<nnnn> (the format
// of the bench's import.sh), for scale measurements.
//
// It writes through the real code paths, so the rows are what users-core
// itself writes: users go through identity.Service.ImportUsers (validation,
// PHC password hash, HA1 per realm and algorithm sealed under the data key
// by identity.DeriveSIPCredentials, store.CreateUsers in one transaction per
// batch); bindings through sip.ParseRegister and sip.Apply inside the
// store's UpdateBindings (group-committed), as the REGISTER handler does.
// The one difference: passwords are hashed with tiny Argon2id parameters
// (-argon2-memory KiB, default 8), so a million hashes take seconds instead
// of days. SIP Digest never runs Argon2id; an HTTP login with the default
// parameters verifies such a hash and rehashes it. Do not use a seeded data
// dir for anything but benchmarks.
//
// The data dir must have been opened once by the users-core binary of the
// same tree (for example `users-core user list --data-dir DIR`), which
// creates the data key, the key check and the schema; seed refuses a data
// dir without them. It is idempotent: batches whose users already exist are
// skipped, and -bindings re-registers the bindings (fresh Call-ID, new
// expiry), so a rerun refreshes them.
//
// It prints ONE summary line on stdout (key=value); progress goes to
// stderr. It is not part of users-core (testdata is outside ./...): run it
// as `go run ./testdata/bench/seed` or build it.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sipgo "github.com/emiago/sipgo/sip"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
	"github.com/rvoip/users-core/store"
)

type config struct {
	dataDir     string
	databaseURL string
	keyFile     string
	users       int
	userBase    int
	userFmt     string
	passFmt     string
	domain      string
	batch       int
	argonMemory uint
	bindings    int
	expires     int
	workers     int
	node        string
	cpuProfile  string
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var c config
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.StringVar(&c.dataDir, "data-dir", "", "users-core data dir (required; opened once by users-core before)")
	fs.StringVar(&c.databaseURL, "database-url", "", "database URL (default sqlite://<data-dir>/users.db)")
	fs.StringVar(&c.keyFile, "data-key-file", "", "data key file (default <data-dir>/data.key)")
	fs.IntVar(&c.users, "users", 1000, "number of users")
	fs.IntVar(&c.userBase, "user-base", 0, "index of the first user")
	fs.StringVar(&c.userFmt, "user-fmt", "user%04d", "username format of a user index")
	fs.StringVar(&c.passFmt, "pass-fmt", "secret-%04d", "password format of a user index")
	fs.StringVar(&c.domain, "domain", "bench.local", "SIP domain (the realm of the HA1 values); comma-separated for several")
	fs.IntVar(&c.batch, "batch", 10000, "users per transaction")
	fs.UintVar(&c.argonMemory, "argon2-memory", 8, "Argon2id memory of the password hashes, KiB (t=1, p=1)")
	fs.IntVar(&c.bindings, "bindings", 0, "register one binding for each of the first N users")
	fs.IntVar(&c.expires, "expires", 86400, "Expires of the seeded bindings (at most the default max_expires, 86400)")
	fs.IntVar(&c.workers, "workers", 512, "concurrent binding updates (the store group-commits them)")
	fs.StringVar(&c.node, "node", "", "node name stored in the bindings (default: host name)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch {
	case c.dataDir == "":
		fmt.Fprintln(os.Stderr, "seed: -data-dir is required")
		return 2
	case c.users < 0 || c.batch < 1 || c.bindings < 0 || c.bindings > c.users || c.workers < 1:
		fmt.Fprintln(os.Stderr, "seed: need -users >= 0, -batch >= 1, 0 <= -bindings <= -users, -workers >= 1")
		return 2
	}
	if c.databaseURL == "" {
		c.databaseURL = "sqlite://" + filepath.Join(c.dataDir, "users.db")
	}
	if c.keyFile == "" {
		c.keyFile = filepath.Join(c.dataDir, "data.key")
	}
	if c.node == "" {
		c.node, _ = os.Hostname()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "seed:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "seed:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	line, err := seed(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		return 1
	}
	fmt.Println(line)
	return 0
}

var errNotInitialised = errors.New("not initialised")

// openDataKey reads the data key and checks it against the database the
// way users-core does at start (cmd/users-core checkDataKey): an HMAC of a
// fixed label, recorded on the first start.
func openDataKey(ctx context.Context, c config, st store.Store) (*identity.Sealer, error) {
	data, err := os.ReadFile(c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w (open the data dir once with users-core first: users-core user list --data-dir %s)", err, c.dataDir)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) != identity.DataKeyLen {
		return nil, fmt.Errorf("data key file %s is not %d hex digits", c.keyFile, 2*identity.DataKeyLen)
	}
	got, err := st.Secret(ctx, "data_key_check", func() ([]byte, error) { return nil, errNotInitialised })
	if errors.Is(err, errNotInitialised) {
		return nil, fmt.Errorf("database %s has no data key check: open it once with users-core first (users-core user list --data-dir %s)", c.databaseURL, c.dataDir)
	}
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("users-core data key check v1"))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return nil, fmt.Errorf("data key %s does not match database %s", c.keyFile, c.databaseURL)
	}
	return identity.NewSealer(key)
}

func seed(ctx context.Context, c config) (string, error) {
	t0 := time.Now()
	st, err := store.Open(ctx, c.databaseURL)
	if err != nil {
		return "", err
	}
	defer st.Close()
	sealer, err := openDataKey(ctx, c, st)
	if err != nil {
		return "", err
	}
	hasher, err := identity.NewHasher(identity.Argon2Params{
		Memory: uint32(c.argonMemory), Time: 1, Threads: 1,
		SaltLen: identity.DefaultArgon2Params().SaltLen, KeyLen: identity.DefaultArgon2Params().KeyLen,
	}, runtime.NumCPU())
	if err != nil {
		return "", err
	}
	var realms []string
	for _, d := range strings.Split(c.domain, ",") {
		if d = strings.TrimSpace(d); d != "" {
			realms = append(realms, d)
		}
	}
	svc, err := identity.NewService(identity.ServiceConfig{
		Store:  st,
		Hasher: hasher,
		// "secret-0000" has 11 characters; the default minimum is 12.
		Policy: identity.PasswordPolicy{MinLength: 8, MaxLength: 128},
		Sealer: sealer,
		Realms: realms,
	})
	if err != nil {
		return "", err
	}

	created, skipped, err := seedUsers(ctx, c, st, svc)
	if err != nil {
		return "", err
	}
	usersDone := time.Now()
	bound, err := seedBindings(ctx, c, st)
	if err != nil {
		return "", err
	}
	total, err := st.CountUsers(ctx)
	if err != nil {
		return "", err
	}
	nb, err := st.CountBindings(ctx, time.Now())
	if err != nil {
		return "", err
	}
	if err := st.Close(); err != nil {
		return "", err
	}
	var dbBytes int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(filepath.Join(c.dataDir, "users.db"+suffix)); err == nil {
			dbBytes += fi.Size()
		}
	}
	return fmt.Sprintf("seed data_dir=%s users=%d created=%d skipped=%d users_s=%.1f bindings_written=%d bindings_s=%.1f store_users=%d store_bindings=%d db_mb=%.1f argon2_kib=%d total_s=%.1f",
		c.dataDir, c.users, created, skipped, usersDone.Sub(t0).Seconds(), bound, time.Since(usersDone).Seconds(),
		total, nb, float64(dbBytes)/(1<<20), c.argonMemory, time.Since(t0).Seconds()), nil
}

func (c config) name(i int) string     { return fmt.Sprintf(c.userFmt, c.userBase+i) }
func (c config) password(i int) string { return fmt.Sprintf(c.passFmt, c.userBase+i) }

// exists reports whether the user called name is in the store.
func exists(ctx context.Context, st store.Store, name string) (bool, error) {
	_, err := st.UserByName(ctx, name)
	if errors.Is(err, identity.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// seedUsers imports the users in batches, skipping batches already there.
func seedUsers(ctx context.Context, c config, st store.Store, svc *identity.Service) (created, skipped int, err error) {
	last := time.Now()
	for lo := 0; lo < c.users; lo += c.batch {
		if err := ctx.Err(); err != nil {
			return created, skipped, err
		}
		hi := min(lo+c.batch, c.users)
		first, err := exists(ctx, st, c.name(lo))
		if err != nil {
			return created, skipped, err
		}
		lastOne, err := exists(ctx, st, c.name(hi-1))
		if err != nil {
			return created, skipped, err
		}
		list := make([]identity.NewUser, 0, hi-lo)
		if first || lastOne { // a rerun, perhaps with another -batch: import only the missing ones
			for i := lo; i < hi; i++ {
				ok, err := exists(ctx, st, c.name(i))
				if err != nil {
					return created, skipped, err
				}
				if ok {
					skipped++
				} else {
					list = append(list, identity.NewUser{Username: c.name(i), Password: c.password(i)})
				}
			}
		} else {
			for i := lo; i < hi; i++ {
				list = append(list, identity.NewUser{Username: c.name(i), Password: c.password(i)})
			}
		}
		if len(list) > 0 {
			if _, err := svc.ImportUsers(ctx, list, nil); err != nil {
				return created, skipped, fmt.Errorf("users %s..%s: %w", c.name(lo), c.name(hi-1), err)
			}
			created += len(list)
		}
		if time.Since(last) > 5*time.Second || hi == c.users {
			fmt.Fprintf(os.Stderr, "seed: users %d/%d (created %d, skipped %d)\n", hi, c.users, created, skipped)
			last = time.Now()
		}
	}
	return created, skipped, nil
}

// phoneAddr is the address of user i's phone: one UDP phone per user.
func phoneAddr(i int) string {
	return fmt.Sprintf("10.%d.%d.%d:5060", (i>>16)&255, (i>>8)&255, i&255)
}

// registerText is the REGISTER a seeded binding comes from.
func registerText(c config, i int, callID string) []byte {
	name, d, host := c.name(i), strings.Split(c.domain, ",")[0], phoneAddr(i)
	return []byte("REGISTER sip:" + d + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + host + ";branch=z9hG4bKseed" + callID + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:" + name + "@" + d + ">;tag=seed\r\n" +
		"To: <sip:" + name + "@" + d + ">\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 1 REGISTER\r\n" +
		"Contact: <sip:" + name + "@" + host + ">\r\n" +
		fmt.Sprintf("Expires: %d\r\n", c.expires) +
		"User-Agent: users-core-seed/1\r\n" +
		"Content-Length: 0\r\n\r\n")
}

// seedBindings registers one binding for each of the first c.bindings
// users, c.workers at a time, through UpdateBindings with sip.Apply: the
// store group-commits concurrent updates.
func seedBindings(ctx context.Context, c config, st store.Store) (int, error) {
	if c.bindings == 0 {
		return 0, nil
	}
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	var (
		next, done atomic.Int64
		wg         sync.WaitGroup
		errOnce    sync.Once
		firstErr   error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	policy := sip.DefaultPolicy()
	start := time.Now()
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, "seed: bindings %d/%d (%.0f/s)\n", done.Load(), c.bindings, float64(done.Load())/time.Since(start).Seconds())
			}
		}
	}()
	defer close(stopProgress)
	for w := 0; w < min(c.workers, c.bindings); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= c.bindings || ctx.Err() != nil {
					return
				}
				if err := seedBinding(ctx, c, st, policy, i, fmt.Sprintf("seed-%s-%d", run, i)); err != nil {
					fail(err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return int(done.Load()), firstErr
	}
	return int(done.Load()), ctx.Err()
}

func seedBinding(ctx context.Context, c config, st store.Store, policy sip.Policy, i int, callID string) error {
	u, err := st.UserByName(ctx, c.name(i))
	if err != nil {
		return fmt.Errorf("binding of %s: %w", c.name(i), err)
	}
	msg, err := sipgo.ParseMessage(registerText(c, i, callID))
	if err != nil {
		return fmt.Errorf("binding of %s: parsing the REGISTER: %w", c.name(i), err)
	}
	req, ok := msg.(*sipgo.Request)
	if !ok {
		return fmt.Errorf("binding of %s: not a request", c.name(i))
	}
	rr, rerr := sip.ParseRegister(req)
	if rerr != nil {
		return fmt.Errorf("binding of %s: %v", c.name(i), rerr)
	}
	now := time.Now()
	flow := sip.Flow{Source: phoneAddr(i), Transport: "UDP", LocalAddr: "127.0.0.1:5060", Node: c.node}
	var refused *sip.RegisterError
	_, err = st.UpdateBindings(ctx, rr.AoR, now, func(cur []sip.Binding) ([]sip.Binding, error) {
		next, rerr := sip.Apply(policy, cur, sip.Update{Req: rr, UserID: u.ID, Now: now, Flow: flow})
		if rerr != nil {
			refused = rerr
			return nil, rerr
		}
		return next, nil
	})
	if refused != nil {
		return fmt.Errorf("binding of %s: registrar refused: %v", c.name(i), refused)
	}
	return err
}
