package sip

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
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
	// 100 authenticated transactions a second for 10 minutes, 500-byte
	// answers: only the last 32 s stay, and only the chunks they are in.
	answer := bytes.Repeat([]byte("a"), 500)
	for i := range 60_000 {
		key := fmt.Sprint(i)
		tt.begin(key)
		tt.complete(key, answer, false)
		now = now.Add(10 * time.Millisecond)
	}
	if n, want := tt.size(), int(timerJ/(10*time.Millisecond)); n > want+1 {
		t.Fatalf("%d transactions kept, want at most %d", n, want+1)
	}
	if c, want := tt.chunks(), tt.size()*len(answer)/udpTxChunk+2; c > want {
		t.Fatalf("%d arena chunks held for %d answers of %d bytes, want at most %d", c, tt.size(), len(answer), want)
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

// TestUDPTxTableAnswersAreKeptByteForByte stores answers of many sizes,
// across chunk boundaries and one larger than a chunk, and reads each back.
func TestUDPTxTableAnswersAreKeptByteForByte(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tt := newUDPTxTable(func() time.Time { return now }, 1_000_000)
	want := map[string][]byte{}
	for i := range 3000 {
		key := fmt.Sprint("tx", i)
		n := 1 + (i*7919)%1400
		if i == 1234 {
			n = udpTxChunk + 10
		}
		a := bytes.Repeat([]byte{byte(i)}, n)
		a[0] = byte(i >> 8)
		tt.begin(key)
		tt.complete(key, a, i%3 == 0)
		want[key] = a
	}
	for key, a := range want {
		got, known := tt.begin(key)
		if !known || !bytes.Equal(got, a) {
			t.Fatalf("%s: got %d bytes (known %v), want %d", key, len(got), known, len(a))
		}
	}
	// Unknown keys are new transactions, and forget only ends those in
	// progress.
	if _, known := tt.begin("never seen"); known {
		t.Fatal("an unknown key was known")
	}
	tt.forget("tx1")
	if _, known := tt.begin("tx1"); !known {
		t.Fatal("forget ended a completed transaction")
	}
}

// panickyRegulator panics on every credentialed REGISTER.
type panickyRegulator struct{ ncTestRegulator }

func (panickyRegulator) Check(context.Context, string, string) error { panic("regulator bug") }

// TestAPanickingHandlerDropsTheRequestNotTheRegistrar: a bug that panics
// while a REGISTER is answered costs that request, over UDP (the worker
// pool) and TCP (sipgo's handler), and the next REGISTER is answered.
func TestAPanickingHandlerDropsTheRequestNotTheRegistrar(t *testing.T) {
	s, err := NewServer(Config{
		Domains:     []string{ncTestRealm},
		NonceSecret: bytes.Repeat([]byte{7}, 32),
		Credentials: ncTestCreds{},
		Regulator:   panickyRegulator{},
		Bindings:    &ncTestBindings{},
		Logger:      zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	bound, err := s.Listen(Listeners{UDP: "127.0.0.1:0", TCP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	register := func(transport, branch, auth string) string {
		r := "REGISTER sip:" + ncTestRealm + " SIP/2.0\r\n" +
			"Via: SIP/2.0/" + transport + " 127.0.0.1:5060;rport;branch=z9hG4bK-" + branch + "\r\n" +
			"Max-Forwards: 70\r\nFrom: <sip:alice@" + ncTestRealm + ">;tag=p\r\nTo: <sip:alice@" + ncTestRealm + ">\r\n" +
			"Call-ID: panic-" + branch + "\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@127.0.0.1:5060>\r\nExpires: 600\r\n"
		if auth != "" {
			r += "Authorization: " + auth + "\r\n"
		}
		return r + "Content-Length: 0\r\n\r\n"
	}
	bogus := `Digest username="alice", realm="` + ncTestRealm + `", nonce="x", uri="sip:` + ncTestRealm + `", response="00000000000000000000000000000000"`
	for _, transport := range []string{"UDP", "TCP"} {
		c, err := net.Dial(strings.ToLower(transport), bound[strings.ToLower(transport)])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		read := func(wait time.Duration) string {
			c.SetReadDeadline(time.Now().Add(wait))
			buf := make([]byte, 8192)
			n, _ := c.Read(buf)
			return string(buf[:n])
		}
		if _, err := c.Write([]byte(register(transport, transport+"1", bogus))); err != nil {
			t.Fatal(err)
		}
		if got := read(500 * time.Millisecond); got != "" {
			t.Fatalf("%s: the request whose handler panicked was answered: %q", transport, got)
		}
		if _, err := c.Write([]byte(register(transport, transport+"2", ""))); err != nil {
			t.Fatal(err)
		}
		if got := read(3 * time.Second); !strings.HasPrefix(got, "SIP/2.0 401 ") {
			t.Fatalf("%s: after a panic the next REGISTER got %q", transport, got)
		}
	}
}
