package sip

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// REGISTER over UDP is answered here, beside sipgo rather than through
// it. sipgo's UDP listener reads every datagram on one goroutine, parses
// it there, then starts a goroutine and a transaction state machine with
// its own timers per request; under load the single parsing reader and
// the per-request machinery cost about a third of the registrar's CPU.
//
// The read filter (Server.readFilter) hands each REGISTER datagram that
// passed the source filter to a fixed pool of workers and tells sipgo to
// drop it. A worker parses it with sipgo's parser, answers it with the same
// code as every other transport (answerRegister) and writes the answer on
// the listening socket, to the datagram's source address (what sipgo
// does, and what RFC 3581 asks for behind NAT). Everything else (OPTIONS,
// other methods, responses, keep-alives) still goes to sipgo.
//
// The server transaction of RFC 3261 section 17.2.2 (non-INVITE) is kept
// by udpTxTable: a retransmission that arrives while its request is being
// answered is absorbed, and one that arrives after the final answer gets
// the same answer again until Timer J (64*T1, 32 s) ends. Without this, a
// phone whose 200 was lost would retransmit into the nonce-count replay
// check. A 401 challenge is kept for a shorter time, challengeKeep: long
// enough for the retransmissions a client sent before the 401 reached it
// (a client that received a different 401 for each may give up, as SIPp
// does), short enough that a flood of unauthenticated REGISTERs holds
// little memory. Past the table's cap (udpMaxTx) challenges are not kept
// at all and a retransmission is challenged afresh (nonces are
// stateless, so that is safe, only less friendly).

const (
	// udpWorkers answer REGISTERs; each spends most of its time waiting
	// for the group commit of its binding update, so this bounds the
	// REGISTERs in progress over UDP, not the CPU used.
	udpWorkers = 128
	// timerJ is how long a final answer other than a 401 is kept for
	// retransmissions (RFC 3261 section 17.2.2: 64*T1 over UDP).
	timerJ = 64 * 500 * time.Millisecond
	// challengeKeep is how long a 401 is kept for retransmissions: a
	// UDP client retransmits at 0.5, 1, 2 and 4 s (Timer E up to T2), so
	// a request retransmitted before our 401 reached it arrives within
	// about 4 s of the first.
	challengeKeep = 8 * 500 * time.Millisecond
	// udpMaxTx caps the transactions held (each a few hundred bytes)
	// beyond which challenges are no longer kept.
	udpMaxTx = 200_000
)

// udpJob is one REGISTER datagram waiting for a worker.
type udpJob struct {
	buf  *[]byte
	conn *udpListener
	src  net.Addr
}

// udpListener is one of our UDP sockets and its address, formatted once.
// Its answers leave through one sender goroutine (send): a group commit
// releases a hundred workers at once, and when each wrote on the socket
// itself they queued on the socket's write lock, handing it on one by one
// through the scheduler, while the reader waited behind them.
type udpListener struct {
	pc    net.PacketConn
	local string
	out   chan udpOut
	sent  chan struct{} // closed when the sender has finished
}

// udpOut is one answer waiting for the sender: its bytes, in a buffer of
// udpBufPool that the sender gives back, and where it goes.
type udpOut struct {
	buf *[]byte
	dst net.Addr
}

// udpOutQueue bounds the answers waiting for a listener's sender; a
// worker that finds it full waits.
const udpOutQueue = 4096

// udpFast is the REGISTER path for UDP.
type udpFast struct {
	s      *Server
	parser *sip.Parser
	queue  chan udpJob
	txs    *udpTxTable

	mu      sync.RWMutex
	conns   []*udpListener
	started bool
	stop    chan struct{}
	workers sync.WaitGroup

	overload atomic.Uint64 // REGISTERs answered 503 because the queue was full
}

var udpBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func newUDPFast(s *Server) *udpFast {
	return &udpFast{
		s:      s,
		parser: sip.NewParser(),
		queue:  make(chan udpJob, s.cfg.MaxInFlight),
		txs:    newUDPTxTable(s.cfg.Now, udpMaxTx),
		stop:   make(chan struct{}),
	}
}

// addConn registers a UDP listener and starts the workers with the first.
func (f *udpFast) addConn(pc net.PacketConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := &udpListener{pc: pc, local: pc.LocalAddr().String(), out: make(chan udpOut, udpOutQueue), sent: make(chan struct{})}
	f.conns = append(f.conns, l)
	go f.send(l)
	if f.started {
		return
	}
	f.started = true
	for range udpWorkers {
		f.workers.Add(1)
		go f.work()
	}
}

// conn returns our listener whose address is local.
func (f *udpFast) conn(local net.Addr) *udpListener {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, c := range f.conns {
		if c.pc.LocalAddr() == local { // the same *net.UDPAddr sipgo was handed
			return c
		}
	}
	for _, c := range f.conns {
		if c.local == local.String() {
			return c
		}
	}
	return nil
}

// take queues data, a datagram that passed the source filter, when it is
// a REGISTER on one of our listeners. It reports whether it did (sipgo
// must then drop the datagram). It runs on sipgo's UDP reader: keep it
// short.
func (f *udpFast) take(p sip.TransportReadProps, data []byte) bool {
	if !bytes.HasPrefix(data, []byte("REGISTER ")) || p.RemoteAddr == nil || p.LocalAddr == nil {
		return false
	}
	conn := f.conn(p.LocalAddr)
	if conn == nil {
		return false
	}
	buf := udpBufPool.Get().(*[]byte)
	*buf = append((*buf)[:0], data...)
	job := udpJob{buf: buf, conn: conn, src: p.RemoteAddr}
	f.s.handlers.Add(1)
	select {
	case f.queue <- job:
	default:
		// Every worker is busy and the queue is full: answer 503 here,
		// which also slows this reader down to what we can serve.
		f.overload.Add(1)
		f.serve(job, true)
	}
	return true
}

func (f *udpFast) work() {
	defer f.workers.Done()
	var out bytes.Buffer
	for {
		select {
		case job := <-f.queue:
			f.serveInto(job, false, &out)
		case <-f.stop:
			return
		}
	}
}

// close stops the workers once the queue is drained; the listeners must
// be closed and their readers gone.
func (f *udpFast) close() {
	f.mu.Lock()
	started := f.started
	f.started = false
	f.mu.Unlock()
	if !started {
		return
	}
	close(f.stop)
	f.workers.Wait()
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for _, l := range conns {
		close(l.out)
		<-l.sent
	}
}

// send writes the answers queued for l until its queue is closed.
func (f *udpFast) send(l *udpListener) {
	defer close(l.sent)
	for o := range l.out {
		if _, err := l.pc.WriteTo(*o.buf, o.dst); err != nil {
			f.s.log.Warn().Err(err).Str("source", o.dst.String()).Msg("sending response failed")
		}
		udpBufPool.Put(o.buf)
	}
}

func (f *udpFast) serve(job udpJob, overloaded bool) {
	var out bytes.Buffer
	f.serveInto(job, overloaded, &out)
}

// serveInto answers one REGISTER datagram; out is scratch space for the
// answer's bytes.
func (f *udpFast) serveInto(job udpJob, overloaded bool, out *bytes.Buffer) {
	defer f.s.handlers.Done()
	defer udpBufPool.Put(job.buf)
	s := f.s
	defer func() {
		if v := recover(); v != nil {
			s.logPanic(v, "REGISTER", job.src.String(), "UDP")
		}
	}()
	msg, err := f.parser.ParseSIP(*job.buf)
	if err != nil {
		// As sipgo does: an unparsable datagram gets no answer. Its bytes
		// are never logged (they may carry credentials).
		s.log.Debug().Err(err).Str("source", job.src.String()).Msg("unparsable REGISTER datagram dropped")
		return
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return
	}
	req.SetTransport("UDP")
	req.SetSource(job.src.String())
	if !s.filter.admit(req) {
		return
	}
	if req.Via() == nil || req.CSeq() == nil {
		// No transaction can be formed: a stateless 400, as sipgo sends.
		f.write(job, sip.NewResponseFromRequest(req, 400, "Bad Request", nil), out)
		return
	}
	if overloaded {
		res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", overloadRetryAfter))
		f.write(job, res, out)
		return
	}
	key := udpTxKey(req)
	if cached, known := f.txs.begin(key); known {
		if cached != nil {
			f.writeBytes(job, cached)
		}
		return // in progress: absorbed
	}
	answered := false
	defer func() {
		if !answered {
			f.txs.forget(key) // a panic below: a retransmission starts afresh
		}
	}()
	res, o, counted := s.answerRegister(req, job.conn.local)
	answered = true
	// The transaction learns its answer before the answer leaves, so a
	// retransmission sent the moment the answer arrives finds it.
	if f.encode(job, res, out) {
		f.txs.complete(key, out.Bytes(), res.StatusCode == 401)
	} else {
		f.txs.forget(key)
	}
	if out.Len() > 0 {
		f.writeBytes(job, out.Bytes())
	}
	if counted {
		s.reportOutcome(req, o)
	}
}

// write sends res to the datagram's source.
func (f *udpFast) write(job udpJob, res *sip.Response, out *bytes.Buffer) {
	if f.encode(job, res, out) {
		f.writeBytes(job, out.Bytes())
	}
}

// encode puts the bytes of res in out. An answer larger than
// udp_max_response is not sent: out is left empty and it reports false.
func (f *udpFast) encode(job udpJob, res *sip.Response, out *bytes.Buffer) bool {
	out.Reset()
	res.StringWrite(out)
	if out.Len() > sip.UDPMTUSize-200 {
		f.s.log.Warn().Int("status", res.StatusCode).Int("bytes", out.Len()).Str("source", job.src.String()).
			Msg("sending response failed: larger than udp_max_response")
		out.Reset()
		return false
	}
	return true
}

// writeBytes queues a copy of b for the listener's sender.
func (f *udpFast) writeBytes(job udpJob, b []byte) {
	buf := udpBufPool.Get().(*[]byte)
	*buf = append((*buf)[:0], b...)
	job.conn.out <- udpOut{buf: buf, dst: job.src}
}

// udpTxKey identifies a REGISTER's server transaction (RFC 3261 section
// 17.2.3): the top Via's branch and sent-by when the branch has the magic
// cookie, else (RFC 2543 clients) the Call-ID, CSeq, From tag and top Via.
func udpTxKey(req *sip.Request) string {
	via := req.Via()
	port := via.Port
	if branch, ok := via.Params.Get("branch"); ok && len(branch) > len(sip.RFC3261BranchMagicCookie) &&
		branch[:len(sip.RFC3261BranchMagicCookie)] == sip.RFC3261BranchMagicCookie {
		return branch + "\x00" + via.Host + ":" + strconv.Itoa(port)
	}
	k := "\x01" + via.Value() + "\x00" + strconv.FormatUint(uint64(req.CSeq().SeqNo), 10)
	if cid := req.CallID(); cid != nil {
		k += "\x00" + cid.Value()
	}
	if from := req.From(); from != nil {
		if tag, ok := from.Params.Get("tag"); ok {
			k += "\x00" + tag
		}
	}
	return k
}
