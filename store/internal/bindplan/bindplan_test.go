package bindplan

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
)

var now = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

const aor = "sip:alice@example.com"

// binding returns a binding of aor with id, for user u, expiring in an hour.
func binding(id, u string) sip.Binding {
	return sip.Binding{
		ID: id, AoR: aor, UserID: u, Contact: "sip:" + id + "@192.0.2.1", ContactKey: "sip:" + id + "@192.0.2.1",
		Path: []string{"<sip:edge.example.com;lr>"}, ExpiresAt: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now,
	}
}

func ids(bs []*sip.Binding) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func TestPlan(t *testing.T) {
	expired := binding("expired", "u1")
	expired.ExpiresAt = now
	same := binding("same", "u1")
	same.Path = nil
	stored := []sip.Binding{expired, same, binding("refreshed", "u1"), binding("moved", "u1"),
		binding("rekeyed", "u1"), binding("left-out", "u1")}

	var seen []string
	plan, next, err := Plan("test.UpdateBindings", aor, now, stored, func(cur []sip.Binding) ([]sip.Binding, error) {
		for _, b := range cur {
			seen = append(seen, b.ID)
		}
		out := cur[:4]                               // same, refreshed, moved, rekeyed
		out[0].Path = []string{}                     // an empty Path is a nil one
		out[0].UpdatedAt = now.Add(time.Microsecond) // below the stored precision
		out[1].CSeq++
		out[1].Path[0] = "<sip:other.example.com;lr>" // in place: must not reach stored
		out[2].UserID = "u2"
		out[3].ContactKey = "sip:new@192.0.2.1"
		return append(out, binding("new", "u1")), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"same", "refreshed", "moved", "rekeyed", "left-out"}; !slices.Equal(seen, want) {
		t.Errorf("fn saw %v, want the unexpired bindings %v", seen, want)
	}
	if stored[2].Path[0] != "<sip:edge.example.com;lr>" {
		t.Errorf("fn changed the stored Path to %v", stored[2].Path)
	}
	if len(next) != 5 || next[4].ID != "new" {
		t.Errorf("next = %v, want fn's result", next)
	}
	if want := []string{"expired", "rekeyed", "left-out"}; !slices.Equal(plan.Drop, want) {
		t.Errorf("Drop = %v, want %v", plan.Drop, want)
	}
	var updated []string
	for _, u := range plan.Update {
		updated = append(updated, u.Old.ID+"/"+u.Old.UserID+"->"+u.New.UserID)
	}
	if want := []string{"refreshed/u1->u1", "moved/u1->u2"}; !slices.Equal(updated, want) {
		t.Errorf("Update = %v, want %v", updated, want)
	}
	if want := []string{"rekeyed", "new"}; !slices.Equal(ids(plan.Insert), want) {
		t.Errorf("Insert = %v, want %v", ids(plan.Insert), want)
	}
}

func TestPlanUnchangedIsEmpty(t *testing.T) {
	stored := []sip.Binding{binding("a", "u1"), binding("b", "u1")}
	plan, _, err := Plan("test.UpdateBindings", aor, now, stored, func(cur []sip.Binding) ([]sip.Binding, error) {
		return cur, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Empty() {
		t.Errorf("plan = %+v, want no writes", plan)
	}
}

func TestPlanRefuses(t *testing.T) {
	fnErr := errors.New("fn failed")
	for _, tc := range []struct {
		name  string
		next  []sip.Binding
		err   error
		field string
	}{
		{"an error from fn is returned unchanged", nil, fnErr, ""},
		{"a binding of another AoR is invalid", []sip.Binding{{ID: "x", AoR: "sip:bob@example.com"}}, nil, "aor"},
		{"a binding without an ID is invalid", []sip.Binding{{AoR: aor}}, nil, "id"},
		{"two bindings with one ID are invalid", []sip.Binding{{ID: "x", AoR: aor}, {ID: "x", AoR: aor}}, nil, "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, next, err := Plan("test.UpdateBindings", aor, now, nil, func([]sip.Binding) ([]sip.Binding, error) {
				return tc.next, tc.err
			})
			if next != nil {
				t.Errorf("next = %v, want nil", next)
			}
			if tc.err != nil {
				if err != tc.err {
					t.Errorf("err = %v, want fn's error itself", err)
				}
				return
			}
			var e *identity.Error
			if !errors.Is(err, identity.ErrInvalid) || !errors.As(err, &e) || e.Op != "test.UpdateBindings" || e.Field != tc.field {
				t.Errorf("err = %v, want identity.ErrInvalid of field %s under op test.UpdateBindings", err, tc.field)
			}
		})
	}
}

func TestPath(t *testing.T) {
	for _, p := range [][]string{nil, {"<sip:edge.example.com;lr>"}, {"<sip:a;lr>", "<sip:b&c;lr>"}} {
		s, err := EncodePath(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodePath([]byte(s))
		if err != nil || !slices.Equal(got, p) {
			t.Errorf("DecodePath(EncodePath(%q) = %q) = %q, %v", p, s, got, err)
		}
	}
	if s, _ := EncodePath([]string{"<sip:a;lr>"}); s != `["<sip:a;lr>"]` {
		t.Errorf("EncodePath escaped the brackets: %s", s)
	}
}

// TestRenewal: only Call-ID, CSeq, update time and a later (or equal)
// expiry may change in a renewal; any other field, or an earlier expiry,
// makes it a whole rewrite.
func TestRenewal(t *testing.T) {
	old := binding("b1", "u1")
	for _, c := range []struct {
		name   string
		change func(b *sip.Binding)
		want   bool
	}{
		{"nothing", func(*sip.Binding) {}, true},
		{"a re-REGISTER", func(b *sip.Binding) {
			b.CallID, b.CSeq, b.ExpiresAt, b.UpdatedAt = "other@192.0.2.1", 9, now.Add(2*time.Hour), now.Add(time.Minute)
		}, true},
		{"an earlier expiry", func(b *sip.Binding) { b.ExpiresAt = now.Add(time.Minute) }, false},
		{"contact", func(b *sip.Binding) { b.Contact = "sip:other@192.0.2.1" }, false},
		{"q", func(b *sip.Binding) { b.Q = 100 }, false},
		{"instance", func(b *sip.Binding) { b.Instance = "<urn:uuid:1>" }, false},
		{"reg-id", func(b *sip.Binding) { b.RegID = 2 }, false},
		{"path", func(b *sip.Binding) { b.Path = nil }, false},
		{"created", func(b *sip.Binding) { b.CreatedAt = now.Add(time.Second) }, false},
		{"user", func(b *sip.Binding) { b.UserID = "u2" }, false},
		{"source", func(b *sip.Binding) { b.Source = "192.0.2.9:5060" }, false},
		{"transport", func(b *sip.Binding) { b.Transport = "TLS" }, false},
		{"local address", func(b *sip.Binding) { b.LocalAddr = "192.0.2.2:5060" }, false},
		{"user agent", func(b *sip.Binding) { b.UserAgent = "Other/2" }, false},
		{"node", func(b *sip.Binding) { b.Node = "node-b" }, false},
	} {
		b := old
		b.Path = slices.Clone(old.Path)
		c.change(&b)
		if got := Renewal(&old, &b); got != c.want {
			t.Errorf("%s: Renewal = %v, want %v", c.name, got, c.want)
		}
	}
}
