package jwks

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeIssuer is another identity provider: a discovery document and a JWKS
// whose keys, caching headers and health the test controls.
type fakeIssuer struct {
	srv           *httptest.Server
	mu            sync.Mutex
	keys          []*rsa.PrivateKey
	cacheControl  string
	status        int
	body          []byte        // replaces the JWKS when set
	discoveryIss  string        // issuer in the discovery document; default the server URL
	gate          chan struct{} // when set, JWKS requests wait for it to close
	jwksHits      atomic.Int32
	discoveryHits atomic.Int32
}

func newFakeIssuer(tb testing.TB, keys ...*rsa.PrivateKey) *fakeIssuer {
	tb.Helper()
	fi := &fakeIssuer{keys: keys, cacheControl: "public, max-age=600", status: http.StatusOK}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		fi.discoveryHits.Add(1)
		fi.mu.Lock()
		iss := fi.discoveryIss
		fi.mu.Unlock()
		if iss == "" {
			iss = fi.srv.URL
		}
		json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "jwks_uri": fi.srv.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		fi.jwksHits.Add(1)
		fi.mu.Lock()
		gate, status, cc, body := fi.gate, fi.status, fi.cacheControl, fi.body
		var doc Document
		for _, k := range fi.keys {
			doc.Keys = append(doc.Keys, PublicJWK(&k.PublicKey, Thumbprint(&k.PublicKey)))
		}
		fi.mu.Unlock()
		if gate != nil {
			<-gate
		}
		if status != http.StatusOK {
			http.Error(w, "down", status)
			return
		}
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		if body == nil {
			body, _ = json.Marshal(doc)
		}
		w.Write(body)
	})
	fi.srv = httptest.NewServer(mux)
	tb.Cleanup(fi.srv.Close)
	return fi
}

func (fi *fakeIssuer) set(f func(fi *fakeIssuer)) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	f(fi)
}

func (fi *fakeIssuer) remote(clock *fakeClock) *RemoteKeySource {
	return NewRemoteKeySource(RemoteConfig{
		Issuer: fi.srv.URL, JWKSURI: fi.srv.URL + "/jwks", Now: clock.Now, HTTPClient: fi.srv.Client(),
	})
}

// waitIdle waits for a refresh started in the background to finish.
func waitIdle(r *RemoteKeySource) {
	r.mu.Lock()
	c := r.flight
	r.mu.Unlock()
	if c != nil {
		<-c.done
	}
}

func kidOf(k *rsa.PrivateKey) string { return Thumbprint(&k.PublicKey) }

func mustKey(t *testing.T, r *RemoteKeySource, kid string) {
	t.Helper()
	if _, _, err := r.Key(context.Background(), kid); err != nil {
		t.Fatalf("Key(%s): %v", kid, err)
	}
}

func TestRemoteHonoursMaxAge(t *testing.T) {
	key := poolKey(t, 0)
	cases := []struct {
		cacheControl string
		ttl          time.Duration
	}{
		{"public, max-age=600", 10 * time.Minute},
		{"max-age=10", DefaultRemoteMinTTL},                // clamped up
		{"max-age=31536000", DefaultRemoteMaxTTL},          // clamped down
		{"", DefaultRemoteTTL},                             // none: default
		{"max-age=soon", DefaultRemoteTTL},                 // invalid: default
		{"no-cache", DefaultRemoteMinTTL},                  // revalidate: as short as allowed
		{`public, max-age="7200"`, 2 * time.Hour},          // quoted
		{"Max-Age=900, must-revalidate", 15 * time.Minute}, // case
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("Cache-Control %q caches for %v", tc.cacheControl, tc.ttl), func(t *testing.T) {
			fi := newFakeIssuer(t, key)
			fi.set(func(fi *fakeIssuer) { fi.cacheControl = tc.cacheControl })
			clock := newClock()
			t0 := clock.Now()
			r := fi.remote(clock)
			mustKey(t, r, kidOf(key))
			if got := r.Stats().ExpiresAt; !got.Equal(t0.Add(tc.ttl)) {
				t.Fatalf("expires %v after fetch, want %v", got.Sub(t0), tc.ttl)
			}
			clock.Set(t0.Add(tc.ttl - time.Second))
			mustKey(t, r, kidOf(key))
			waitIdle(r)
			if n := fi.jwksHits.Load(); n != 1 {
				t.Fatalf("%d fetches before expiry, want 1", n)
			}
			clock.Set(t0.Add(tc.ttl))
			mustKey(t, r, kidOf(key))
			waitIdle(r)
			if n := fi.jwksHits.Load(); n != 2 {
				t.Fatalf("%d fetches after expiry, want 2", n)
			}
		})
	}
}

func TestRemoteRefetchesOnUnknownKIDAtMostOncePerInterval(t *testing.T) {
	ctx := context.Background()
	k0, k1, k2 := poolKey(t, 0), poolKey(t, 1), poolKey(t, 2)
	fi := newFakeIssuer(t, k0)
	clock := newClock()
	r := fi.remote(clock)
	mustKey(t, r, kidOf(k0))

	// The issuer publishes a new key; the first token with it refetches.
	fi.set(func(fi *fakeIssuer) { fi.keys = append(fi.keys, k1) })
	clock.Advance(time.Second)
	mustKey(t, r, kidOf(k1))
	if n := fi.jwksHits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	// Another unknown kid within MissInterval is refused without asking,
	// even though the issuer has it by now.
	fi.set(func(fi *fakeIssuer) { fi.keys = append(fi.keys, k2) })
	clock.Advance(DefaultRemoteMissInterval - 2*time.Second)
	if _, _, err := r.Key(ctx, kidOf(k2)); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("second unknown kid: %v, want ErrUnknownKey", err)
	}
	if _, _, err := r.Key(ctx, "made-up"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("made-up kid: %v", err)
	}
	if n := fi.jwksHits.Load(); n != 2 {
		t.Fatalf("%d fetches within the miss interval, want 2", n)
	}
	// Once MissInterval has passed since the last miss, a miss may refetch
	// again.
	clock.Advance(2 * time.Second)
	mustKey(t, r, kidOf(k2))
	if n := fi.jwksHits.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}
}

func TestRemoteConcurrentMissesShareOneFetch(t *testing.T) {
	ctx := context.Background()
	k0, k1 := poolKey(t, 0), poolKey(t, 1)
	fi := newFakeIssuer(t, k0)
	clock := newClock()
	r := fi.remote(clock)
	mustKey(t, r, kidOf(k0))

	gate := make(chan struct{})
	fi.set(func(fi *fakeIssuer) { fi.keys = append(fi.keys, k1); fi.gate = gate })
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			kid := kidOf(k1)
			if i%2 == 1 {
				kid = fmt.Sprintf("unknown-%d", i)
			}
			_, _, err := r.Key(ctx, kid)
			if i%2 == 1 && errors.Is(err, ErrUnknownKey) {
				err = nil
			}
			errs[i] = err
		})
	}
	// Let the callers pile up on the one request, then answer it.
	deadline := time.Now().Add(5 * time.Second)
	for fi.jwksHits.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(2 * time.Millisecond)
	close(gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if n := fi.jwksHits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (one shared refresh)", n)
	}
}

func TestRemoteKeepsTheLastGoodKeysDuringAnOutage(t *testing.T) {
	ctx := context.Background()
	key := poolKey(t, 0)
	fi := newFakeIssuer(t, key)
	clock := newClock()
	r := fi.remote(clock)
	v, err := NewVerifier(VerifierConfig{Now: clock.Now, Issuers: []IssuerConfig{{Issuer: fi.srv.URL, Audience: "sip", Keys: r}}})
	if err != nil {
		t.Fatal(err)
	}
	token := func() string {
		return compact(t, map[string]any{"alg": "RS256", "kid": kidOf(key), "typ": "at+jwt"},
			map[string]any{"iss": fi.srv.URL, "aud": "sip", "exp": clock.Now().Add(time.Minute).Unix()}, rs256(t, key))
	}
	if _, err := v.Verify(ctx, token()); err != nil {
		t.Fatal(err)
	}

	fi.set(func(fi *fakeIssuer) { fi.status = http.StatusInternalServerError })
	clock.Advance(time.Hour) // far past max-age
	if _, err := v.Verify(ctx, token()); err != nil {
		t.Fatalf("issuer answering 500: %v", err)
	}
	waitIdle(r)
	if s := r.Stats(); s.Failures != 1 || s.Fetches != 2 || s.Keys != 1 || !strings.Contains(s.LastError, "500") {
		t.Fatalf("stats after a failed refresh: %+v", s)
	}

	// A second failure only after the backoff; the keys still serve.
	if _, err := v.Verify(ctx, token()); err != nil {
		t.Fatal(err)
	}
	waitIdle(r)
	if n := r.Stats().Fetches; n != 2 {
		t.Fatalf("%d fetches, want no retry before the backoff", n)
	}

	fi.srv.Close() // connection refused from now on
	clock.Advance(time.Hour)
	if _, err := v.Verify(ctx, token()); err != nil {
		t.Fatalf("issuer gone: %v", err)
	}
	waitIdle(r)
	if s := r.Stats(); s.Failures != 2 || s.Keys != 1 {
		t.Fatalf("stats with the issuer gone: %+v", s)
	}
	// An unknown kid cannot be looked up now: that is unavailability.
	if _, _, err := r.Key(ctx, "rotated-meanwhile"); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("unknown kid during the outage: %v", err)
	}
}

func TestRemoteBeforeAnySuccessIsUnavailable(t *testing.T) {
	ctx := context.Background()
	key := poolKey(t, 0)
	fi := newFakeIssuer(t, key)
	fi.set(func(fi *fakeIssuer) { fi.status = http.StatusServiceUnavailable })
	clock := newClock()
	r := fi.remote(clock)
	v, err := NewVerifier(VerifierConfig{Now: clock.Now, Issuers: []IssuerConfig{{Issuer: fi.srv.URL, Audience: "sip", Keys: r}}})
	if err != nil {
		t.Fatal(err)
	}
	tok := compact(t, map[string]any{"alg": "RS256", "kid": kidOf(key), "typ": "at+jwt"},
		map[string]any{"iss": fi.srv.URL, "aud": "sip", "exp": clock.Now().Add(time.Minute).Unix()}, rs256(t, key))
	for range 3 {
		if _, err := v.Verify(ctx, tok); ReasonOf(err) != ReasonUnavailable || !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("before any fetch: %v", err)
		}
	}
	if n := fi.jwksHits.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1 (later calls wait for the backoff)", n)
	}
	fi.set(func(fi *fakeIssuer) { fi.status = http.StatusOK })
	clock.Advance(2 * time.Second)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestRemoteDiscovery(t *testing.T) {
	ctx := context.Background()
	key := poolKey(t, 0)
	t.Run("finds jwks_uri in the issuer's metadata", func(t *testing.T) {
		fi := newFakeIssuer(t, key)
		r := NewRemoteKeySource(RemoteConfig{Issuer: fi.srv.URL, Now: newClock().Now})
		mustKey(t, r, kidOf(key))
		if fi.discoveryHits.Load() != 1 || fi.jwksHits.Load() != 1 {
			t.Fatalf("discovery %d, jwks %d", fi.discoveryHits.Load(), fi.jwksHits.Load())
		}
		if err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if fi.discoveryHits.Load() != 1 {
			t.Fatal("discovered again")
		}
	})
	t.Run("refuses metadata for another issuer", func(t *testing.T) {
		fi := newFakeIssuer(t, key)
		fi.set(func(fi *fakeIssuer) { fi.discoveryIss = "https://evil.example" })
		r := NewRemoteKeySource(RemoteConfig{Issuer: fi.srv.URL, Now: newClock().Now})
		_, _, err := r.Key(ctx, kidOf(key))
		if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "evil.example") {
			t.Fatalf("Key = %v", err)
		}
		if fi.jwksHits.Load() != 0 {
			t.Fatal("fetched the JWKS of a mismatched issuer")
		}
		if s := r.Stats(); s.Failures != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("refuses metadata with a trailing-slash issuer", func(t *testing.T) {
		fi := newFakeIssuer(t, key)
		fi.set(func(fi *fakeIssuer) { fi.discoveryIss = fi.srv.URL + "/" })
		r := NewRemoteKeySource(RemoteConfig{Issuer: fi.srv.URL, Now: newClock().Now})
		if _, _, err := r.Key(ctx, kidOf(key)); !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("Key = %v", err)
		}
	})
}

func TestRemoteRefusesBadResponses(t *testing.T) {
	ctx := context.Background()
	key := poolKey(t, 0)
	for name, edit := range map[string]func(fi *fakeIssuer){
		"status 404":           func(fi *fakeIssuer) { fi.status = http.StatusNotFound },
		"a body over 1 MiB":    func(fi *fakeIssuer) { fi.body = []byte(`{"keys":[],"pad":"` + strings.Repeat("x", 1<<20) + `"}`) },
		"not JSON":             func(fi *fakeIssuer) { fi.body = []byte("<html>") },
		"no usable key":        func(fi *fakeIssuer) { fi.body = []byte(`{"keys":[{"kty":"EC","kid":"a"}]}`) },
		"an empty key set":     func(fi *fakeIssuer) { fi.body = []byte(`{"keys":[]}`) },
		"keys that is no list": func(fi *fakeIssuer) { fi.body = []byte(`{"keys":{}}`) },
	} {
		t.Run("fails on "+name+" and keeps the old keys", func(t *testing.T) {
			fi := newFakeIssuer(t, key)
			clock := newClock()
			r := fi.remote(clock)
			mustKey(t, r, kidOf(key))
			fi.set(edit)
			if err := r.Refresh(ctx); err == nil {
				t.Fatal("refresh succeeded")
			}
			mustKey(t, r, kidOf(key))
			if s := r.Stats(); s.Failures != 1 || s.Keys != 1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestParseJWKSSkipsUnusableKeys(t *testing.T) {
	good := PublicJWK(&poolKey(t, 0).PublicKey, "good")
	other := PublicJWK(&poolKey(t, 1).PublicKey, "dup")
	entry := func(edit func(m map[string]any)) map[string]any {
		m := map[string]any{"kty": good.Kty, "use": good.Use, "alg": good.Alg, "kid": "x", "n": good.N, "e": good.E}
		edit(m)
		return m
	}
	keys := []any{
		map[string]any{"kty": good.Kty, "kid": good.Kid, "n": good.N, "e": good.E}, // use and alg absent: fine
		entry(func(m map[string]any) { m["kid"] = "noalg"; delete(m, "alg") }),
		entry(func(m map[string]any) { m["kid"] = "ops"; m["key_ops"] = []string{"verify"} }),
		entry(func(m map[string]any) { delete(m, "kid") }),
		entry(func(m map[string]any) { m["kid"] = "../x" }),
		entry(func(m map[string]any) { m["kid"] = "hs"; m["alg"] = "HS256" }),
		entry(func(m map[string]any) { m["kid"] = "enc"; m["use"] = "enc" }),
		entry(func(m map[string]any) { m["kid"] = "ec"; m["kty"] = "EC" }),
		entry(func(m map[string]any) { m["kid"] = "signonly"; m["key_ops"] = []string{"sign"} }),
		entry(func(m map[string]any) { m["kid"] = "typed"; m["n"] = 42 }),
		entry(func(m map[string]any) { m["kid"] = "case"; delete(m, "kty"); m["KTY"] = "RSA" }),
		entry(func(m map[string]any) { m["kid"] = "dup" }),
		map[string]any{"kty": other.Kty, "kid": "dup", "n": other.N, "e": other.E},
		"not an object",
	}
	body, _ := json.Marshal(map[string]any{"keys": keys})
	got, skipped, err := parseJWKS(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["good"] == nil || got["noalg"] == nil || got["ops"] == nil {
		t.Fatalf("usable keys %v; skipped %q", got, skipped)
	}
	if len(skipped) != 10 {
		t.Fatalf("skipped %d: %q", len(skipped), skipped)
	}
}

func TestRemoteStartRefreshesInTheBackground(t *testing.T) {
	key := poolKey(t, 0)
	fi := newFakeIssuer(t, key)
	r := NewRemoteKeySource(RemoteConfig{Issuer: fi.srv.URL, JWKSURI: fi.srv.URL + "/jwks"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(ctx)
	r.Start(ctx) // no second loop
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().LastSuccess.IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("Start did not fetch")
		}
		time.Sleep(time.Millisecond)
	}
	mustKey(t, r, kidOf(key))
	if n := fi.jwksHits.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

func TestRemoteSchedulesRefreshBeforeExpiryAndBacksOff(t *testing.T) {
	key := poolKey(t, 0)
	fi := newFakeIssuer(t, key)
	clock := newClock()
	r := fi.remote(clock)
	if d := r.nextDelay(); d != 0 {
		t.Fatalf("first delay %v, want 0", d)
	}
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := r.nextDelay(); d != 9*time.Minute {
		t.Fatalf("delay with max-age=600 is %v, want 9m (a minute early)", d)
	}
	fi.set(func(fi *fakeIssuer) { fi.status = http.StatusBadGateway })
	var last time.Duration
	for i := range 12 {
		r.Refresh(context.Background())
		d := r.nextDelay()
		if d < minLoopDelay || d > DefaultRemoteMinTTL {
			t.Fatalf("failure %d: delay %v", i+1, d)
		}
		last = d
	}
	if last < DefaultRemoteMinTTL*4/5 {
		t.Fatalf("backoff after 12 failures is %v, want near %v", last, DefaultRemoteMinTTL)
	}
}

func FuzzParseJWKS(f *testing.F) {
	good, _ := json.Marshal(Document{Keys: []JWK{PublicJWK(&poolKey(f, 0).PublicKey, "k")}})
	f.Add(good)
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, _, err := parseJWKS(body)
		if err == nil && len(keys) == 0 {
			t.Fatal("success without keys")
		}
		for kid, k := range keys {
			if !validKID(kid) || k.N.BitLen() < MinRSABits {
				t.Fatalf("unusable key %s accepted", kid)
			}
		}
	})
}

func FuzzMaxAge(f *testing.F) {
	for _, s := range []string{"max-age=60", "no-store", `max-age="5"`, "max-age=99999999999999999999", "max-age=-1", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if secs, ok := maxAge([]string{v}); ok && (secs < 0 || secs > 365*24*3600) {
			t.Fatalf("max-age %d from %q", secs, v)
		}
	})
}

func TestRemoteRevalidatesWithETag(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	k := newTestKeyring(t, NewMemoryKeyStore(), testSealer(t), clock, keyGen(t, 4))
	var hits, notModified atomic.Int32
	h := Handler(k)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code == http.StatusNotModified {
			notModified.Add(1)
		}
		for name, v := range rec.Header() {
			w.Header()[name] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()
	r := NewRemoteKeySource(RemoteConfig{Issuer: testIssuer, JWKSURI: srv.URL, Now: clock.Now})
	kid := k.Keys()[0].KID
	mustKey(t, r, kid)

	clock.Advance(DefaultRemoteMinTTL) // the handler says max-age=300
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 2 || notModified.Load() != 1 {
		t.Fatalf("%d requests, %d answered 304", hits.Load(), notModified.Load())
	}
	if s := r.Stats(); s.Keys != 1 || !s.ExpiresAt.Equal(clock.Now().Add(DefaultRemoteMinTTL)) {
		t.Fatalf("after 304: %+v", s)
	}
	mustKey(t, r, kid)

	// A rotation changes the ETag: the next refresh gets the new set.
	next, err := k.Rotate(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if notModified.Load() != 1 {
		t.Fatal("changed JWKS answered 304")
	}
	mustKey(t, r, next.KID)
}
