package sip

import (
	"fmt"
	"testing"
	"time"
)

func TestUDPTxTableKeepsAnswersUntilTimerJ(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tt := newUDPTxTable(func() time.Time { return now }, 100)

	if _, known := tt.begin("a"); known {
		t.Fatal("a new transaction was known")
	}
	if ans, known := tt.begin("a"); !known || ans != nil {
		t.Fatalf("in progress: got %q, %v; want nil, true (absorbed)", ans, known)
	}
	answer := []byte("SIP/2.0 200 OK\r\n\r\n")
	tt.complete("a", answer, false)
	answer[0] = 'X' // the table keeps its own copy
	if ans, known := tt.begin("a"); !known || string(ans) != "SIP/2.0 200 OK\r\n\r\n" {
		t.Fatalf("completed: got %q, %v", ans, known)
	}

	// An answer that could not be sent is forgotten at once.
	tt.begin("b")
	tt.forget("b")
	if _, known := tt.begin("b"); known {
		t.Fatal("a forgotten transaction was still known")
	}
	// A challenge is kept for challengeKeep only.
	tt.complete("b", []byte("SIP/2.0 401 Unauthorized\r\n\r\n"), true)

	now = now.Add(challengeKeep - time.Millisecond)
	if ans, known := tt.begin("b"); !known || ans == nil {
		t.Fatal("challenge forgotten before challengeKeep")
	}
	now = now.Add(time.Millisecond)
	tt.begin("c")
	tt.complete("c", []byte("c"), false)
	if _, known := tt.begin("b"); known {
		t.Fatal("challenge kept after challengeKeep")
	}
	tt.forget("b")

	// Timer J: still there just before 32 s, gone once a later
	// transaction completes after it.
	now = now.Add(timerJ - challengeKeep - time.Millisecond)
	if _, known := tt.begin("a"); !known {
		t.Fatal("forgotten before Timer J")
	}
	now = now.Add(time.Millisecond)
	tt.begin("d")
	tt.complete("d", []byte("d"), false)
	if _, known := tt.begin("a"); known {
		t.Fatal("kept after Timer J")
	}
	if n := tt.size(); n != 3 { // c, d, and a begun again just above
		t.Fatalf("size %d, want 3", n)
	}
}

func TestUDPTxTableStaysBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tt := newUDPTxTable(func() time.Time { return now }, 1_000)
	// 100 authenticated transactions a second for 10 minutes: only the
	// last 32 s stay.
	for i := range 60_000 {
		key := fmt.Sprint(i)
		tt.begin(key)
		tt.complete(key, []byte("answer"), false)
		now = now.Add(10 * time.Millisecond)
	}
	if n, want := tt.size(), int(timerJ/(10*time.Millisecond)); n > want+1 {
		t.Fatalf("%d transactions kept, want at most %d", n, want+1)
	}
	q := tt.finals
	if len(q.done)-q.head != tt.size() || len(q.done) > 2*tt.size()+1024 {
		t.Fatalf("expiry queue %d (head %d) for %d transactions", len(q.done), q.head, tt.size())
	}
	// Past the cap (the finals alone exceed it here) no challenge is kept.
	before := tt.size()
	for i := range 10_000 {
		key := fmt.Sprint("flood", i)
		tt.begin(key)
		tt.complete(key, []byte("SIP/2.0 401 Unauthorized\r\n\r\n"), true)
	}
	if n := tt.size(); n > before {
		t.Fatalf("%d transactions held after a flood of challenges past the cap, %d before", n, before)
	}
}
