package sip

// Inspection of requests for the filter, before and after sipgo parses
// them: the optional drop list of scanner User-Agents, and control
// characters in the headers that every response echoes.

import (
	"bytes"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// verdict is what inspecting one message decided.
type verdict uint8

const (
	admit         verdict = iota
	dropUserAgent         // the User-Agent holds a string of the drop list
	dropUnsafe            // a header every response echoes holds a control character
)

// userAgentList is the drop list: ASCII lower-cased substrings.
type userAgentList [][]byte

// newUserAgentList lower-cases the non-empty entries of list.
func newUserAgentList(list []string) userAgentList {
	var out userAgentList
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, []byte(asciiLower(s)))
		}
	}
	return out
}

// matches reports whether ua contains an entry, ignoring ASCII case.
func (l userAgentList) matches(ua []byte) bool {
	for _, p := range l {
		if containsFold(ua, p) {
			return true
		}
	}
	return false
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// containsFold reports whether s contains the lower-case pattern p,
// ignoring ASCII case in s. User-Agent values are short and the list is
// small, so the plain scan costs less than lower-casing a copy.
func containsFold(s, p []byte) bool {
	n := len(p)
	if n == 0 {
		return false
	}
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != p[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// echoedHeader reports whether sipgo's NewResponseFromRequest copies
// headers named name (any case) into a response: Via, From, To, Call-ID
// and CSeq (and their compact forms) into every response, Record-Route
// into 2xx answers to methods other than REGISTER, Timestamp into 100.
func echoedHeader(name string) bool {
	if len(name) > len("record-route") {
		return false
	}
	var buf [12]byte
	b := buf[:len(name)]
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	switch string(b) {
	case "via", "v", "from", "f", "to", "t", "call-id", "i", "cseq", "record-route", "timestamp":
		return true
	}
	return false
}

var (
	crlf          = []byte("\r\n")
	userAgentName = []byte("User-Agent")
)

// inspectRaw inspects the header section of one raw message (a UDP
// datagram) without parsing it. It reads lines as sipgo's parser does:
// split at CRLF, so a bare CR or LF stays inside the line it is in; a line
// that starts with a space or tab continues the header line before it
// (sipgo folds it in), and the first header line is a header even so;
// names are trimmed of white space.
//
// It returns dropUnsafe when a header that responses echo holds a control
// character other than HTAB: sipgo leaves a bare LF inside a value and
// copies it into every answer, so the answer would carry a header of the
// sender's choosing, sent over UDP to whatever source address the datagram
// claims. The start line counts as echoed: its SIP version becomes the
// answer's. It returns dropUserAgent when a User-Agent header holds an entry
// of agents. Anything it cannot make sense of is left to sipgo's parser.
func inspectRaw(msg []byte, agents userAgentList) verdict {
	i := bytes.Index(msg, crlf)
	if i < 0 {
		return admit
	}
	if hasCTLBytes(msg[:i]) {
		return dropUnsafe
	}
	rest := msg[i+2:]
	echoed, isUA, prev := false, false, false
	for len(rest) > 0 {
		var line []byte
		if i := bytes.Index(rest, crlf); i >= 0 {
			line, rest = rest[:i], rest[i+2:]
		} else {
			line, rest = rest, nil
		}
		if len(line) == 0 {
			return admit // the end of the header section
		}
		value := line
		if !prev || line[0] != ' ' && line[0] != '\t' {
			prev = true
			colon := bytes.IndexByte(line, ':')
			if colon < 0 {
				echoed, isUA = false, false
				continue
			}
			name := bytes.TrimSpace(line[:colon])
			echoed = echoedHeader(string(name))
			isUA = len(agents) > 0 && bytes.EqualFold(name, userAgentName)
			value = line[colon+1:]
		}
		if echoed && hasCTLBytes(value) {
			return dropUnsafe
		}
		if isUA && agents.matches(value) {
			return dropUserAgent
		}
	}
	return admit
}

// hasCTLBytes is hasCTL for bytes.
func hasCTLBytes(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

// inspectRequest is inspectRaw's check on a parsed request, for the
// stream transports, whose read chunks are not messages: the User-Agent
// against agents (when checkAgent is set), and every header a response
// echoes, as sipgo renders it, for control characters.
func inspectRequest(req *sip.Request, agents userAgentList, checkAgent bool) verdict {
	if hasCTL(req.SipVersion) {
		return dropUnsafe
	}
	var scan ctlScan
	for _, h := range req.Headers() {
		name := h.Name()
		if echoedHeader(name) {
			h.StringWrite(&scan)
			if scan.found {
				return dropUnsafe
			}
			continue
		}
		if checkAgent && len(agents) > 0 && strings.EqualFold(name, "User-Agent") && agents.matches([]byte(h.Value())) {
			return dropUserAgent
		}
	}
	return admit
}

// ctlScan is an io.StringWriter that only notes whether a control
// character other than HTAB went through it.
type ctlScan struct{ found bool }

func (c *ctlScan) WriteString(s string) (int, error) {
	if !c.found && hasCTL(s) {
		c.found = true
	}
	return len(s), nil
}
