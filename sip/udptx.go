package sip

import (
	"hash/maphash"
	"sync"
	"time"
)

// udpTxTable holds the UDP REGISTER transactions in progress and the
// final answers kept for retransmissions: a 401 for challengeKeep, any
// other answer until Timer J.
//
// At thousands of registrations a second it holds hundreds of thousands
// of answers, so it is built to give the garbage collector nothing to
// scan: transactions are keyed by a 128-bit hash of their key (seeded per
// process, so a client cannot aim for a collision), the answers' bytes
// are appended to large chunks that are dropped whole once every answer
// in them has expired, and the map, the expiry queues and the chunks hold
// no pointers but the chunks themselves.
type udpTxTable struct {
	now  func() time.Time
	max  int // transactions held before 401s stop being kept
	seed [2]maphash.Seed

	mu         sync.Mutex
	txs        map[udpTxHash]udpTxSlot
	challenges udpTxQueue
	finals     udpTxQueue
}

type udpTxHash [2]uint64

// udpTxSlot is a transaction: in progress, or its answer in a chunk of
// one of the queues' arenas.
type udpTxSlot struct {
	done  bool
	final bool   // the answer is in finals' arena, else in challenges'
	seq   uint32 // chunk
	off   uint32
	n     uint32
}

// udpTxQueue holds completed transactions in the order they expire, and
// the chunks their answers are in.
type udpTxQueue struct {
	keep time.Duration
	done []udpTxDone // oldest first, from head
	head int

	chunks   [][]byte // chunks[i] has sequence number first+i
	first    uint32
	fill     int // bytes used in the last chunk
	chunkCap int
}

type udpTxDone struct {
	h      udpTxHash
	expiry int64 // unix nanoseconds
	seq    uint32
	off    uint32
}

// udpTxChunk is the size of the arenas' chunks; an answer larger than it
// (a 200 listing very many bindings) gets a chunk of its own.
const udpTxChunk = 256 << 10

func newUDPTxTable(now func() time.Time, max int) *udpTxTable {
	return &udpTxTable{now: now, max: max, seed: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		txs:        map[udpTxHash]udpTxSlot{},
		challenges: udpTxQueue{keep: challengeKeep, chunkCap: udpTxChunk},
		finals:     udpTxQueue{keep: timerJ, chunkCap: udpTxChunk}}
}

func (t *udpTxTable) hash(key string) udpTxHash {
	return udpTxHash{maphash.String(t.seed[0], key), maphash.String(t.seed[1], key)}
}

// begin starts the transaction key. known is true when it exists already;
// answer is then its final answer, nil while it is in progress. The
// answer's bytes must not be changed.
func (t *udpTxTable) begin(key string) (answer []byte, known bool) {
	h := t.hash(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	if sl, ok := t.txs[h]; ok {
		if !sl.done {
			return nil, true
		}
		q := &t.challenges
		if sl.final {
			q = &t.finals
		}
		return q.bytes(sl), true
	}
	t.txs[h] = udpTxSlot{}
	return nil, false
}

// forget ends the transaction key, in progress, at once.
func (t *udpTxTable) forget(key string) {
	h := t.hash(key)
	t.mu.Lock()
	if sl, ok := t.txs[h]; ok && !sl.done {
		delete(t.txs, h)
	}
	t.mu.Unlock()
}

// complete keeps a copy of answer for key (a challenge for challengeKeep,
// else until Timer J) and forgets the transactions whose time has passed.
// A challenge is forgotten at once while the table is full.
func (t *udpTxTable) complete(key string, answer []byte, challenge bool) {
	h := t.hash(key)
	now := t.now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.challenges.expire(t.txs, now)
	t.finals.expire(t.txs, now)
	q := &t.finals
	if challenge {
		if len(t.txs) > t.max {
			delete(t.txs, h)
			return
		}
		q = &t.challenges
	}
	seq, off := q.store(answer)
	t.txs[h] = udpTxSlot{done: true, final: !challenge, seq: seq, off: off, n: uint32(len(answer))}
	q.done = append(q.done, udpTxDone{h: h, expiry: now + int64(q.keep), seq: seq, off: off})
}

// store appends b to the arena and returns where it is.
func (q *udpTxQueue) store(b []byte) (seq, off uint32) {
	last := len(q.chunks) - 1
	if last < 0 || q.fill+len(b) > len(q.chunks[last]) {
		q.chunks = append(q.chunks, make([]byte, max(q.chunkCap, len(b))))
		last, q.fill = last+1, 0
	}
	copy(q.chunks[last][q.fill:], b)
	seq, off = q.first+uint32(last), uint32(q.fill)
	q.fill += len(b)
	return seq, off
}

func (q *udpTxQueue) bytes(sl udpTxSlot) []byte {
	c := q.chunks[sl.seq-q.first]
	return c[sl.off : sl.off+sl.n : sl.off+sl.n]
}

// expire deletes from txs the transactions of q whose time has passed and
// drops the chunks no live answer is in.
func (q *udpTxQueue) expire(txs map[udpTxHash]udpTxSlot, now int64) {
	for q.head < len(q.done) && q.done[q.head].expiry <= now {
		d := q.done[q.head]
		if sl, ok := txs[d.h]; ok && sl.done && sl.seq == d.seq && sl.off == d.off {
			delete(txs, d.h)
		}
		q.done[q.head] = udpTxDone{}
		q.head++
	}
	if q.head > 1024 && q.head*2 > len(q.done) {
		q.done = append(q.done[:0], q.done[q.head:]...)
		q.head = 0
	}
	// The oldest live answer's chunk, or the current one when none is left.
	keepFrom := q.first + uint32(max(len(q.chunks)-1, 0))
	if q.head < len(q.done) {
		keepFrom = q.done[q.head].seq
	}
	if drop := int(keepFrom - q.first); drop > 0 {
		clear(q.chunks[:drop])
		q.chunks = append(q.chunks[:0], q.chunks[drop:]...)
		q.first = keepFrom
	}
}

// size is the number of transactions held, for tests and metrics.
func (t *udpTxTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.txs)
}

// chunks is the number of arena chunks held, for tests.
func (t *udpTxTable) chunks() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.challenges.chunks) + len(t.finals.chunks)
}
