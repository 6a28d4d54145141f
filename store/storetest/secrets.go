package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// counter returns a gen for Store.Secret that yields value and counts its
// calls in n.
func counter(value string, n *atomic.Int32) func() ([]byte, error) {
	return func() ([]byte, error) {
		n.Add(1)
		return []byte(value), nil
	}
}

func mustSecret(t testing.TB, s Store, name string, gen func() ([]byte, error)) []byte {
	t.Helper()
	v, err := s.Secret(context.Background(), name, gen)
	if err != nil {
		t.Fatalf("Secret(%q): %v", name, err)
	}
	return v
}

var secretTests = []subtest{
	{"is created with gen once and returned afterwards", func(t *testing.T, s Store) {
		var n atomic.Int32
		if v := mustSecret(t, s, "nonce-key", counter("first", &n)); string(v) != "first" {
			t.Errorf("first Secret = %q, want %q", v, "first")
		}
		if v := mustSecret(t, s, "nonce-key", counter("second", &n)); string(v) != "first" {
			t.Errorf("second Secret = %q, want the stored %q", v, "first")
		}
		if n.Load() > 2 {
			t.Errorf("gen called %d times", n.Load())
		}
	}},
	{"an error from gen is returned unchanged and nothing is stored", func(t *testing.T, s Store) {
		errGen := errors.New("no entropy")
		_, err := s.Secret(context.Background(), "k", func() ([]byte, error) { return nil, errGen })
		if err != errGen {
			t.Errorf("Secret error = %v, want gen's error itself", err)
		}
		var n atomic.Int32
		if v := mustSecret(t, s, "k", counter("later", &n)); string(v) != "later" {
			t.Errorf("Secret after a failed gen = %q, want %q", v, "later")
		}
	}},
	{"names hold separate values", func(t *testing.T, s Store) {
		var n atomic.Int32
		mustSecret(t, s, "a", counter("value-a", &n))
		mustSecret(t, s, "b", counter("value-b", &n))
		if v := mustSecret(t, s, "a", counter("x", &n)); string(v) != "value-a" {
			t.Errorf("Secret(a) = %q", v)
		}
		if v := mustSecret(t, s, "b", counter("x", &n)); string(v) != "value-b" {
			t.Errorf("Secret(b) = %q", v)
		}
	}},
	{"binary values survive unchanged", func(t *testing.T, s Store) {
		want := []byte{0, 1, 2, 0xff, 0xfe, 0, 'x'}
		mustSecret(t, s, "bin", func() ([]byte, error) { return bytes.Clone(want), nil })
		if v := mustSecret(t, s, "bin", func() ([]byte, error) { return []byte("other"), nil }); !bytes.Equal(v, want) {
			t.Errorf("Secret = %x, want %x", v, want)
		}
	}},
	{"20 concurrent callers all get one value", func(t *testing.T, s Store) {
		const n = 20
		got := make([][]byte, n)
		errs := make([]error, n)
		AtOnce(n, func(i int) {
			got[i], errs[i] = s.Secret(context.Background(), "shared", func() ([]byte, error) {
				return fmt.Appendf(nil, "value-%d", i), nil
			})
		})
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("caller %d: %v", i, errs[i])
			}
			if !bytes.Equal(got[i], got[0]) {
				t.Errorf("caller %d got %q, caller 0 got %q", i, got[i], got[0])
			}
		}
		if v := mustSecret(t, s, "shared", func() ([]byte, error) { return []byte("late"), nil }); !bytes.Equal(v, got[0]) {
			t.Errorf("Secret afterwards = %q, want %q", v, got[0])
		}
	}},
}
