package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rvoip/users-core/jwks"
)

// testKey returns a signing key called kid in state, with distinct binary
// material (including zero bytes) and times at millisecond precision.
func testKey(kid string, state jwks.KeyState) jwks.StoredKey {
	k := jwks.StoredKey{
		KID:           kid,
		Algorithm:     "RS256",
		State:         state,
		PublicDER:     append([]byte{0x30, 0x82, 0, 0x0a}, kid...),
		PrivateSealed: append([]byte{0, 0xff, 0}, "sealed-"+kid...),
		CreatedAt:     base,
		ActivateAt:    base.Add(time.Hour),
	}
	if state == jwks.StateRetired {
		k.RetiredAt = base.Add(48 * time.Hour)
		k.RemoveAt = base.Add(72*time.Hour + 7*time.Millisecond)
	}
	return k
}

// keyDiff describes how got differs from want, "" when they are equal.
// Times compare with Equal; nil and empty byte slices are equal.
func keyDiff(got, want jwks.StoredKey) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.KID != want.KID {
		add("KID", got.KID, want.KID)
	}
	if got.Algorithm != want.Algorithm {
		add("Algorithm", got.Algorithm, want.Algorithm)
	}
	if got.State != want.State {
		add("State", got.State, want.State)
	}
	if !bytes.Equal(got.PublicDER, want.PublicDER) {
		add("PublicDER", got.PublicDER, want.PublicDER)
	}
	if !bytes.Equal(got.PrivateSealed, want.PrivateSealed) {
		add("PrivateSealed", got.PrivateSealed, want.PrivateSealed)
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"CreatedAt", got.CreatedAt, want.CreatedAt},
		{"ActivateAt", got.ActivateAt, want.ActivateAt},
		{"RetiredAt", got.RetiredAt, want.RetiredAt},
		{"RemoveAt", got.RemoveAt, want.RemoveAt},
	} {
		if !f.got.Equal(f.want) {
			add(f.name, f.got, f.want)
		}
	}
	return strings.Join(d, "; ")
}

// checkKeySet fails t unless got has version and the keys of want, in any
// order.
func checkKeySet(t testing.TB, what string, got jwks.KeySet, version int64, want []jwks.StoredKey) {
	t.Helper()
	if got.Version != version {
		t.Errorf("%s: Version = %d, want %d", what, got.Version, version)
	}
	byKID := func(a, b jwks.StoredKey) int { return strings.Compare(a.KID, b.KID) }
	g, w := slices.SortedFunc(slices.Values(got.Keys), byKID), slices.SortedFunc(slices.Values(want), byKID)
	if len(g) != len(w) {
		t.Fatalf("%s: %d keys, want %d: %+v", what, len(g), len(w), g)
	}
	for i := range g {
		if d := keyDiff(g[i], w[i]); d != "" {
			t.Errorf("%s: key %q: %s", what, w[i].KID, d)
		}
	}
}

func mustKeySet(t testing.TB, s Store) jwks.KeySet {
	t.Helper()
	set, err := s.KeySet(context.Background())
	if err != nil {
		t.Fatalf("KeySet: %v", err)
	}
	return set
}

func mustSaveKeySet(t testing.TB, s Store, prev int64, keys []jwks.StoredKey) int64 {
	t.Helper()
	v, err := s.SaveKeySet(context.Background(), prev, keys)
	if err != nil {
		t.Fatalf("SaveKeySet(%d): %v", prev, err)
	}
	return v
}

var keySetTests = []subtest{
	{"of an empty store has version 0 and no keys", func(t *testing.T, s Store) {
		checkKeySet(t, "KeySet", mustKeySet(t, s), 0, nil)
	}},
	{"saved at version 0 gets version 1 and reads back every field", func(t *testing.T, s Store) {
		keys := []jwks.StoredKey{
			testKey("kid-active", jwks.StateActive),
			testKey("kid-next", jwks.StateNext),
			testKey("kid-retired", jwks.StateRetired),
		}
		if v := mustSaveKeySet(t, s, 0, keys); v != 1 {
			t.Errorf("SaveKeySet(0) = %d, want 1", v)
		}
		checkKeySet(t, "KeySet", mustKeySet(t, s), 1, keys)
	}},
	{"saved again replaces every key and increments the version", func(t *testing.T, s Store) {
		mustSaveKeySet(t, s, 0, []jwks.StoredKey{testKey("a", jwks.StateActive), testKey("b", jwks.StateNext)})
		retired := testKey("a", jwks.StateRetired)
		second := []jwks.StoredKey{retired, testKey("b", jwks.StateActive), testKey("c", jwks.StateNext)}
		if v := mustSaveKeySet(t, s, 1, second); v != 2 {
			t.Errorf("SaveKeySet(1) = %d, want 2", v)
		}
		checkKeySet(t, "KeySet after the second save", mustKeySet(t, s), 2, second)
		third := []jwks.StoredKey{testKey("c", jwks.StateActive)}
		if v := mustSaveKeySet(t, s, 2, third); v != 3 {
			t.Errorf("SaveKeySet(2) = %d, want 3", v)
		}
		checkKeySet(t, "KeySet after the third save", mustKeySet(t, s), 3, third)
	}},
	{"saved empty keeps its version", func(t *testing.T, s Store) {
		mustSaveKeySet(t, s, 0, []jwks.StoredKey{testKey("a", jwks.StateActive)})
		if v := mustSaveKeySet(t, s, 1, nil); v != 2 {
			t.Errorf("SaveKeySet(1, nil) = %d, want 2", v)
		}
		checkKeySet(t, "KeySet", mustKeySet(t, s), 2, nil)
	}},
	{"saved from a stale version returns ErrKeySetChanged and changes nothing", func(t *testing.T, s Store) {
		keys := []jwks.StoredKey{testKey("a", jwks.StateActive), testKey("b", jwks.StateNext)}
		mustSaveKeySet(t, s, 0, keys)
		mustSaveKeySet(t, s, 1, keys)
		for _, prev := range []int64{0, 1, 3} {
			_, err := s.SaveKeySet(context.Background(), prev, []jwks.StoredKey{testKey("x", jwks.StateActive)})
			if !errors.Is(err, jwks.ErrKeySetChanged) {
				t.Errorf("SaveKeySet(%d) at version 2: error %v, want one matching ErrKeySetChanged", prev, err)
			}
		}
		checkKeySet(t, "KeySet", mustKeySet(t, s), 2, keys)
	}},
	{"saved by 10 concurrent callers from one version lets exactly one win", func(t *testing.T, s Store) {
		mustSaveKeySet(t, s, 0, []jwks.StoredKey{testKey("old", jwks.StateActive)})
		const n = 10
		sets := make([][]jwks.StoredKey, n)
		versions := make([]int64, n)
		errs := make([]error, n)
		for i := range n {
			sets[i] = []jwks.StoredKey{
				testKey("old", jwks.StateRetired),
				testKey(fmt.Sprint("new-", i), jwks.StateActive),
			}
		}
		AtOnce(n, func(i int) {
			versions[i], errs[i] = s.SaveKeySet(context.Background(), 1, sets[i])
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("savers %d and %d both succeeded", winner, i)
				}
				winner = i
				if versions[i] != 2 {
					t.Errorf("winning SaveKeySet = %d, want 2", versions[i])
				}
			case !errors.Is(err, jwks.ErrKeySetChanged):
				t.Errorf("saver %d: %v, want nil or ErrKeySetChanged", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no save succeeded")
		}
		checkKeySet(t, "KeySet", mustKeySet(t, s), 2, sets[winner])
	}},
}
