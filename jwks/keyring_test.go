package jwks

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewKeyringCreatesOneActiveKeyOnAnEmptyStore(t *testing.T) {
	clock := newClock()
	store := NewMemoryKeyStore()
	k := newTestKeyring(t, store, testSealer(t), clock, keyGen(t, 4))

	keys := k.Keys()
	if len(keys) != 1 {
		t.Fatalf("Keys = %+v, want one", keys)
	}
	got := keys[0]
	if got.State != StateActive || !got.ActivateAt.Equal(clock.Now()) || !got.CreatedAt.Equal(clock.Now()) || got.Algorithm != "RS256" {
		t.Fatalf("first key = %+v", got)
	}
	set, _ := store.KeySet(context.Background())
	if set.Version != 1 || len(set.Keys) != 1 {
		t.Fatalf("store = version %d with %d keys", set.Version, len(set.Keys))
	}
	s := set.Keys[0]
	pub, err := parsePKIX(s.PublicDER)
	if err != nil {
		t.Fatal(err)
	}
	if s.KID != Thumbprint(pub) || s.KID != got.KID {
		t.Fatal("kid is not the RFC 7638 thumbprint of the stored public key")
	}
	if len(s.PrivateSealed) == 0 || strings.Contains(string(s.PrivateSealed), "PRIVATE") {
		t.Fatal("private key not sealed")
	}
	if kid := headerKID(t, mustSign(t, k, accessClaims(clock.Now()))); kid != got.KID {
		t.Fatalf("signed with %s, want %s", kid, got.KID)
	}
}

// TestSignJWTVerifiesIndependently checks a token against the published
// JWKS with nothing but encoding/base64, encoding/json and crypto/rsa.
func TestSignJWTVerifiesIndependently(t *testing.T) {
	clock := newClock()
	k := newTestKeyring(t, NewMemoryKeyStore(), testSealer(t), clock, keyGen(t, 4))
	token, err := k.SignJWT("at+jwt", map[string]any{"sub": "user-1", "exp": 2000000000})
	if err != nil {
		t.Fatal(err)
	}
	docJSON, _ := json.Marshal(k.Document())

	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	raw := base64.RawURLEncoding
	hb, err := raw.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr map[string]string
	if err := json.Unmarshal(hb, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr["alg"] != "RS256" || hdr["typ"] != "at+jwt" || len(hdr) != 3 {
		t.Fatalf("header = %v", hdr)
	}
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(docJSON, &doc); err != nil {
		t.Fatal(err)
	}
	var jwk map[string]string
	for _, j := range doc.Keys {
		if j["kid"] == hdr["kid"] {
			jwk = j
		}
	}
	if jwk == nil || jwk["kty"] != "RSA" || jwk["use"] != "sig" || jwk["alg"] != "RS256" {
		t.Fatalf("JWKS %s has no RS256 signing key %s", docJSON, hdr["kid"])
	}
	n, err := raw.DecodeString(jwk["n"])
	if err != nil {
		t.Fatal(err)
	}
	e, err := raw.DecodeString(jwk["e"])
	if err != nil {
		t.Fatal(err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	sig, err := raw.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("signature does not verify with the published key: %v", err)
	}
	// The kid is the RFC 7638 thumbprint, recomputed from the JWKS members.
	canon, _ := json.Marshal(struct {
		E   string `json:"e"`
		Kty string `json:"kty"`
		N   string `json:"n"`
	}{jwk["e"], "RSA", jwk["n"]})
	tp := sha256.Sum256(canon)
	if raw.EncodeToString(tp[:]) != hdr["kid"] {
		t.Fatal("kid is not the thumbprint of the published key")
	}
	pb, _ := raw.DecodeString(parts[1])
	if string(pb) != `{"exp":2000000000,"sub":"user-1"}` {
		t.Fatalf("payload = %s", pb)
	}
}

func TestRotationFollowsTheClock(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	t0 := clock.Now()
	store := NewMemoryKeyStore()
	sealer := testSealer(t)
	k := newTestKeyring(t, store, sealer, clock, keyGen(t, 4))
	v := newTestVerifier(t, k, clock)
	first := k.Keys()[0].KID

	// Before period - lead nothing happens.
	clock.Set(t0.Add(DefaultRotationPeriod - DefaultLeadTime - time.Second))
	if err := k.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if len(k.Keys()) != 1 {
		t.Fatalf("early tick published a key: %+v", k.Keys())
	}

	// At period - lead the next key is published but does not sign.
	clock.Set(t0.Add(DefaultRotationPeriod - DefaultLeadTime))
	if err := k.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	keys := k.Keys()
	if len(keys) != 2 || keys[1].State != StateNext || !keys[1].ActivateAt.Equal(t0.Add(DefaultRotationPeriod)) {
		t.Fatalf("after lead tick: %+v", keys)
	}
	second := keys[1].KID
	if got := docKIDs(k.Document()); !slices.Equal(got, []string{first, second}) {
		t.Fatalf("Document kids = %v", got)
	}
	if kid := headerKID(t, mustSign(t, k, nil)); kid != first {
		t.Fatal("next key signs before its time")
	}
	// A token the first key signs a minute before the switch.
	clock.Set(t0.Add(DefaultRotationPeriod - time.Minute))
	oldToken := mustSign(t, k, accessClaims(clock.Now()))

	// At period the next key signs, even before a tick records it.
	clock.Set(t0.Add(DefaultRotationPeriod))
	if kid := headerKID(t, mustSign(t, k, nil)); kid != second {
		t.Fatal("next key does not sign at its ActivateAt")
	}
	if err := k.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	keys = k.Keys()
	retireAt := t0.Add(DefaultRotationPeriod)
	if len(keys) != 2 || keys[0].State != StateRetired || !keys[0].RetiredAt.Equal(retireAt) ||
		!keys[0].RemoveAt.Equal(retireAt.Add(DefaultRetireAfter)) || keys[1].State != StateActive {
		t.Fatalf("after activation tick: %+v", keys)
	}
	if len(k.Document().Keys) != 2 {
		t.Fatal("retired key left the JWKS early")
	}
	clock.Advance(time.Minute)
	if _, err := v.Verify(ctx, oldToken); err != nil {
		t.Fatalf("token of the retired key: %v", err)
	}
	newToken := mustSign(t, k, accessClaims(clock.Now()))

	// Restart: a new Keyring on the same store has every key.
	k2 := newTestKeyring(t, store, sealer, clock, keyGen(t, 4))
	if !slices.Equal(k2.Keys(), k.Keys()) {
		t.Fatalf("restarted Keys = %+v\nwant %+v", k2.Keys(), k.Keys())
	}
	v2 := newTestVerifier(t, k2, clock)
	for _, tok := range []string{oldToken, newToken} {
		if _, err := v2.Verify(ctx, tok); err != nil {
			t.Fatalf("after restart: %v", err)
		}
	}

	// After RetireAfter the retired key is gone and its tokens fail.
	clock.Set(retireAt.Add(DefaultRetireAfter))
	if err := k.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := docKIDs(k.Document()); !slices.Equal(got, []string{second}) {
		t.Fatalf("Document kids = %v, want only %s", got, second)
	}
	if _, err := v.Verify(ctx, oldToken); ReasonOf(err) != ReasonUnknownKey {
		t.Fatalf("token of the removed key: %v, want %s", err, ReasonUnknownKey)
	}
	// The second node learns it at its next reload.
	if err := k2.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Verify(ctx, oldToken); ReasonOf(err) != ReasonUnknownKey {
		t.Fatalf("second node: %v", err)
	}
}

func TestTickIsIdempotent(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	store := NewMemoryKeyStore()
	k := newTestKeyring(t, store, testSealer(t), clock, keyGen(t, 4))
	clock.Advance(DefaultRotationPeriod - DefaultLeadTime)
	for range 3 {
		if err := k.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	set, _ := store.KeySet(ctx)
	if set.Version != 2 || len(set.Keys) != 2 {
		t.Fatalf("store version %d with %d keys, want 2 and 2", set.Version, len(set.Keys))
	}
}

func TestTickAfterALongOutageCatchesUp(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	t0 := clock.Now()
	k := newTestKeyring(t, NewMemoryKeyStore(), testSealer(t), clock, keyGen(t, 4))
	first := k.Keys()[0].KID
	clock.Advance(DefaultRotationPeriod - DefaultLeadTime)
	if err := k.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	// Nobody ticks for 90 days: the next key became active long ago, the
	// old one is past RemoveAt, and a new next key is due at once.
	clock.Set(t0.Add(90 * 24 * time.Hour))
	if err := k.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	keys := k.Keys()
	if len(keys) != 2 || keys[0].KID == first || keys[0].State != StateActive || keys[1].State != StateNext ||
		!keys[1].ActivateAt.Equal(clock.Now().Add(DefaultLeadTime)) {
		t.Fatalf("after catch-up: %+v", keys)
	}
}

// barrierStore makes the first two SaveKeySet calls wait for each other,
// so two nodes certainly race on the same version.
type barrierStore struct {
	KeyStore
	mu        sync.Mutex
	waiting   int
	conflicts int
	release   chan struct{}
}

func (s *barrierStore) SaveKeySet(ctx context.Context, prev int64, keys []StoredKey) (int64, error) {
	s.mu.Lock()
	s.waiting++
	n := s.waiting
	s.mu.Unlock()
	switch {
	case n == 2:
		close(s.release)
	case n < 2:
		select {
		case <-s.release:
		case <-time.After(5 * time.Second):
			return 0, errors.New("barrier: the other node never saved")
		}
	}
	v, err := s.KeyStore.SaveKeySet(ctx, prev, keys)
	if errors.Is(err, ErrKeySetChanged) {
		s.mu.Lock()
		s.conflicts++
		s.mu.Unlock()
	}
	return v, err
}

func TestTwoNodesTickingTogetherRotateOnce(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	mem := NewMemoryKeyStore()
	sealer := testSealer(t)
	gen := keyGen(t, 4) // shared: the nodes never generate the same key
	a := newTestKeyring(t, mem, sealer, clock, gen)
	store := &barrierStore{KeyStore: mem, release: make(chan struct{})}
	a.store = store
	b := newTestKeyring(t, store, sealer, clock, gen)
	first := a.Keys()[0].KID
	if b.Keys()[0].KID != first {
		t.Fatal("second node did not load the first node's key")
	}

	clock.Advance(DefaultRotationPeriod - DefaultLeadTime)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, node := range []*Keyring{a, b} {
		wg.Go(func() { errs[i] = node.Tick(ctx) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	set, _ := mem.KeySet(ctx)
	if set.Version != 2 || len(set.Keys) != 2 {
		t.Fatalf("store version %d with %d keys, want one rotation", set.Version, len(set.Keys))
	}
	if store.conflicts != 1 {
		t.Fatalf("%d compare-and-swap conflicts, want 1 (the nodes did not race)", store.conflicts)
	}
	if !slices.Equal(a.Keys(), b.Keys()) {
		t.Fatalf("nodes disagree:\n%+v\n%+v", a.Keys(), b.Keys())
	}
}

func TestManyNodesTickingConcurrentlyRotateOnce(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	store := NewMemoryKeyStore()
	sealer := testSealer(t)
	gen := keyGen(t, 5)
	nodes := make([]*Keyring, 4)
	for i := range nodes {
		nodes[i] = newTestKeyring(t, store, sealer, clock, gen)
	}
	clock.Advance(DefaultRotationPeriod - DefaultLeadTime)
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			for range 5 {
				if err := n.Tick(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	set, _ := store.KeySet(ctx)
	if set.Version != 2 || len(set.Keys) != 2 {
		t.Fatalf("store version %d with %d keys, want exactly one rotation", set.Version, len(set.Keys))
	}
}

func TestRotate(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	k := newTestKeyring(t, NewMemoryKeyStore(), testSealer(t), clock, keyGen(t, 4))
	first := k.Keys()[0].KID
	clock.Advance(time.Hour)

	next, err := k.Rotate(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if next.State != StateNext || !next.ActivateAt.Equal(clock.Now().Add(DefaultLeadTime)) {
		t.Fatalf("Rotate(false) = %+v", next)
	}
	if kid := headerKID(t, mustSign(t, k, nil)); kid != first {
		t.Fatal("scheduled key signs at once")
	}

	_, err = k.Rotate(ctx, false)
	if !errors.Is(err, ErrRotationScheduled) || !strings.Contains(err.Error(), next.ActivateAt.UTC().Format(time.RFC3339)) {
		t.Fatalf("second Rotate(false) = %v, want ErrRotationScheduled naming %s", err, next.ActivateAt)
	}

	now, err := k.Rotate(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if now.State != StateActive || !now.ActivateAt.Equal(clock.Now()) {
		t.Fatalf("Rotate(true) = %+v", now)
	}
	if kid := headerKID(t, mustSign(t, k, nil)); kid != now.KID {
		t.Fatal("emergency key does not sign at once")
	}
	states := map[string]KeyState{}
	for _, ki := range k.Keys() {
		states[ki.KID] = ki.State
	}
	if len(states) != 2 || states[first] != StateRetired || states[now.KID] != StateActive {
		t.Fatalf("after emergency rotation: %+v (the scheduled key %s must be dropped)", k.Keys(), next.KID)
	}
	// The retired key stays published for RetireAfter.
	if !slices.Contains(docKIDs(k.Document()), first) {
		t.Fatal("emergency rotation unpublished the old key at once")
	}
}

func TestKeyringRefusesATamperedStore(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	sealer := testSealer(t)
	store := NewMemoryKeyStore()
	k := newTestKeyring(t, store, sealer, clock, keyGen(t, 4))
	if _, err := k.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	set, _ := store.KeySet(ctx)

	cases := []struct {
		name string
		edit func(keys []StoredKey)
	}{
		{"private keys swapped between rows (AAD is the kid)", func(keys []StoredKey) {
			keys[0].PrivateSealed, keys[1].PrivateSealed = keys[1].PrivateSealed, keys[0].PrivateSealed
		}},
		{"a kid that is not the thumbprint", func(keys []StoredKey) { keys[0].KID = "forged" }},
		{"a public key from another row", func(keys []StoredKey) { keys[0].PublicDER = keys[1].PublicDER }},
		{"another algorithm", func(keys []StoredKey) { keys[0].Algorithm = "HS256" }},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			bad := NewMemoryKeyStore()
			keys := cloneKeys(set.Keys)
			tc.edit(keys)
			if _, err := bad.SaveKeySet(ctx, 0, keys); err != nil {
				t.Fatal(err)
			}
			if _, err := NewKeyring(ctx, KeyringConfig{Store: bad, Sealer: sealer, Now: clock.Now}); err == nil {
				t.Fatal("NewKeyring accepted it")
			}
		})
	}
	t.Run("refuses another data key", func(t *testing.T) {
		if _, err := NewKeyring(ctx, KeyringConfig{Store: store, Sealer: testSealer(t), Now: clock.Now}); err == nil {
			t.Fatal("NewKeyring opened keys sealed under another key")
		}
	})
}

func TestNewKeyringRacingNodesShareTheFirstKey(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	mem := NewMemoryKeyStore()
	store := &barrierStore{KeyStore: mem, release: make(chan struct{})}
	sealer := testSealer(t)
	gen := keyGen(t, 4)
	nodes := make([]*Keyring, 2)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			k, err := NewKeyring(ctx, KeyringConfig{Store: store, Sealer: sealer, Now: clock.Now, generateKey: gen})
			if err != nil {
				t.Error(err)
			}
			nodes[i] = k
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if store.conflicts != 1 {
		t.Fatalf("%d conflicts, want 1", store.conflicts)
	}
	set, _ := mem.KeySet(ctx)
	if set.Version != 1 || len(set.Keys) != 1 || nodes[0].Keys()[0].KID != nodes[1].Keys()[0].KID {
		t.Fatalf("store version %d with %d keys", set.Version, len(set.Keys))
	}
}

func TestKeyringConfigErrors(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range map[string]KeyringConfig{
		"no store":             {Sealer: testSealer(t)},
		"no sealer":            {Store: NewMemoryKeyStore()},
		"lead time too long":   {Store: NewMemoryKeyStore(), Sealer: testSealer(t), RotationPeriod: time.Hour, LeadTime: 2 * time.Hour},
		"negative retire time": {Store: NewMemoryKeyStore(), Sealer: testSealer(t), RetireAfter: -time.Second},
	} {
		if _, err := NewKeyring(ctx, cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSignJWTIsSafeForConcurrentUseDuringRotation(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	k := newTestKeyring(t, NewMemoryKeyStore(), testSealer(t), clock, keyGen(t, 4))
	v := newTestVerifier(t, k, clock)
	claims := accessClaims(clock.Now())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				tok, err := k.SignJWT("at+jwt", claims)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := v.Verify(ctx, tok); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		if _, err := k.Rotate(ctx, true); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
}

func TestRunTicksUntilCancelled(t *testing.T) {
	clock := newClock()
	store := NewMemoryKeyStore()
	k := newTestKeyring(t, store, testSealer(t), clock, keyGen(t, 4))
	clock.Advance(DefaultRotationPeriod - DefaultLeadTime)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx, time.Hour); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(k.Keys()) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not tick")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}
