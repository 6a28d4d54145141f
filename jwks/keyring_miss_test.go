package jwks

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingKeyStore counts KeySet reads.
type countingKeyStore struct {
	KeyStore
	reads atomic.Int32
}

func (s *countingKeyStore) KeySet(ctx context.Context) (KeySet, error) {
	s.reads.Add(1)
	return s.KeyStore.KeySet(ctx)
}

// TestAnotherNodesEmergencyKeyVerifiesAtOnce: node A rotates with --now
// and signs with the new key at once; node B, whose copy of the key set
// predates the rotation, must verify that token without waiting for its
// next Run reload.
func TestAnotherNodesEmergencyKeyVerifiesAtOnce(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	mem := NewMemoryKeyStore()
	sealer := testSealer(t)
	gen := keyGen(t, 4)
	a := newTestKeyring(t, mem, sealer, clock, gen)
	counted := &countingKeyStore{KeyStore: mem}
	b := newTestKeyring(t, counted, sealer, clock, gen)
	verifyAtB := newTestVerifier(t, b, clock)

	clock.Advance(time.Minute)
	fresh, err := a.Rotate(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	token := mustSign(t, a, accessClaims(clock.Now()))
	if kid := headerKID(t, token); kid != fresh.KID {
		t.Fatalf("A signs with %s, want the new key %s", kid, fresh.KID)
	}
	before := counted.reads.Load()
	if _, err := verifyAtB.Verify(ctx, token); err != nil {
		t.Fatalf("B verifying A's token signed with the emergency key: %v", err)
	}
	if n := counted.reads.Load() - before; n != 1 {
		t.Errorf("B read the key set %d times for the new kid, want 1", n)
	}
	if _, err := verifyAtB.Verify(ctx, token); err != nil {
		t.Fatalf("again: %v", err)
	}
	if n := counted.reads.Load() - before; n != 1 {
		t.Errorf("B read the key set again for a kid it now holds (%d reads)", n)
	}
}

func TestUnknownKIDsReloadAtMostOncePerInterval(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	counted := &countingKeyStore{KeyStore: NewMemoryKeyStore()}
	k := newTestKeyring(t, counted, testSealer(t), clock, keyGen(t, 4))
	before := counted.reads.Load()

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if _, _, err := k.Key(ctx, "made-up-"+string(rune('a'+i%26))); !errors.Is(err, ErrUnknownKey) {
				t.Errorf("Key(made-up) = %v, want ErrUnknownKey", err)
			}
		})
	}
	wg.Wait()
	if n := counted.reads.Load() - before; n != 1 {
		t.Fatalf("50 unknown kids at once read the key set %d times, want 1", n)
	}
	clock.Advance(missReloadInterval - time.Millisecond)
	k.Key(ctx, "made-up-again")
	if n := counted.reads.Load() - before; n != 1 {
		t.Fatalf("an unknown kid within the interval read the key set (%d reads)", n)
	}
	clock.Advance(time.Millisecond)
	k.Key(ctx, "made-up-later")
	if n := counted.reads.Load() - before; n != 2 {
		t.Fatalf("an unknown kid after the interval: %d reads, want 2", n)
	}
}
