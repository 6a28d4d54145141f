package page

import "testing"

func TestSize(t *testing.T) {
	for in, want := range map[int]int{-1: DefaultSize, 0: DefaultSize, 1: 1, 1000: 1000, 1001: MaxSize} {
		if got := Size(in); got != want {
			t.Errorf("Size(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestCursorsRoundTripAndRefuseGarbage(t *testing.T) {
	if k, ok := ParseUserCursor(UserCursor("alice@example")); !ok || k != "alice@example" {
		t.Fatalf("user cursor round trip: %q %v", k, ok)
	}
	if id, ok := ParseAuditCursor(AuditCursor(42)); !ok || id != 42 {
		t.Fatalf("audit cursor round trip: %d %v", id, ok)
	}
	for _, bad := range []string{"", "!!", UserCursor("x") + "="} {
		if _, ok := ParseUserCursor(bad); ok {
			t.Errorf("ParseUserCursor(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "!!", UserCursor("abc"), AuditCursor(0), AuditCursor(-3)} {
		if _, ok := ParseAuditCursor(bad); ok {
			t.Errorf("ParseAuditCursor(%q) accepted", bad)
		}
	}
}

func TestEscapeLike(t *testing.T) {
	if got := EscapeLike(`50%_a\b`); got != `50\%\_a\\b` {
		t.Fatalf("EscapeLike = %q", got)
	}
}
