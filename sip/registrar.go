package sip

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// This file holds the registrar rules of RFC 3261 section 10.3 steps 6 to
// 8, with the binding rules of RFC 5626 (Outbound) and RFC 3327 (Path), as
// pure functions over a binding set: no sipgo, no store, no clock. The
// handler runs Apply inside BindingStore.UpdateBindings, which gives the
// atomicity and per-AoR ordering section 10.3 asks for.

// OverLimitPolicy says what happens when a REGISTER would leave an AoR with
// more than Policy.MaxContacts bindings.
type OverLimitPolicy int

const (
	// OverLimitReject refuses the request with 403 and changes nothing.
	OverLimitReject OverLimitPolicy = iota
	// OverLimitDropOldest removes the least recently updated bindings the
	// request did not touch until the AoR is within the limit.
	OverLimitDropOldest
)

// String returns "reject" or "drop-oldest", the spelling
// ParseOverLimitPolicy reads.
func (o OverLimitPolicy) String() string {
	switch o {
	case OverLimitReject:
		return "reject"
	case OverLimitDropOldest:
		return "drop-oldest"
	}
	return "OverLimitPolicy(" + strconv.Itoa(int(o)) + ")"
}

// ParseOverLimitPolicy reads "reject" or "drop-oldest" (case-insensitive),
// for configuration.
func ParseOverLimitPolicy(s string) (OverLimitPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "reject":
		return OverLimitReject, nil
	case "drop-oldest":
		return OverLimitDropOldest, nil
	}
	return 0, fmt.Errorf("sip: unknown over-limit policy %q (want reject or drop-oldest)", s)
}

// Policy holds the registrar's limits. The zero value is not usable; start
// from DefaultPolicy. Policy is comparable.
type Policy struct {
	// MinExpires is the shortest registration accepted, in seconds; a
	// shorter non-zero request gets 423 Interval Too Brief with
	// Min-Expires (RFC 3261 section 10.3 step 7). At most 3600, because
	// the RFC allows the 423 only for requests under one hour.
	MinExpires int
	// MaxExpires is the longest registration granted; longer requests are
	// shortened to it (section 10.3 step 7: the registrar MAY shorten).
	MaxExpires int
	// DefaultExpires applies when neither the Contact nor the request
	// gives an expiration.
	DefaultExpires int
	// MaxContacts is the most bindings one AoR may hold.
	MaxContacts int
	// OverLimit says what a REGISTER that would exceed MaxContacts gets.
	OverLimit OverLimitPolicy
}

// DefaultPolicy returns MinExpires 60, MaxExpires 86400, DefaultExpires
// 3600, MaxContacts 10 and OverLimitReject.
func DefaultPolicy() Policy {
	return Policy{
		MinExpires:     60,
		MaxExpires:     86400,
		DefaultExpires: 3600,
		MaxContacts:    10,
		OverLimit:      OverLimitReject,
	}
}

// maxPolicyExpires bounds MaxExpires (ten years), far below the range of
// time.Duration.
const maxPolicyExpires = 10 * 365 * 24 * 3600

// Validate checks 1 <= MinExpires <= 3600, MinExpires <= DefaultExpires <=
// MaxExpires <= ten years, MaxContacts >= 1 and a known OverLimit.
func (p Policy) Validate() error {
	switch {
	case p.MinExpires < 1 || p.MinExpires > 3600:
		return fmt.Errorf("sip: min expires %d out of range 1..3600 (RFC 3261 allows 423 only below 3600 s)", p.MinExpires)
	case p.MaxExpires < p.MinExpires || p.MaxExpires > maxPolicyExpires:
		return fmt.Errorf("sip: max expires %d out of range %d..%d", p.MaxExpires, p.MinExpires, maxPolicyExpires)
	case p.DefaultExpires < p.MinExpires || p.DefaultExpires > p.MaxExpires:
		return fmt.Errorf("sip: default expires %d out of range %d..%d", p.DefaultExpires, p.MinExpires, p.MaxExpires)
	case p.MaxContacts < 1:
		return fmt.Errorf("sip: max contacts %d must be at least 1", p.MaxContacts)
	case p.OverLimit != OverLimitReject && p.OverLimit != OverLimitDropOldest:
		return fmt.Errorf("sip: unknown over-limit policy %d", int(p.OverLimit))
	}
	return nil
}

// Flow is the connection a REGISTER arrived on, recorded in its bindings
// so the contact can be reached over the same flow (RFC 5626, RFC 7118).
type Flow struct {
	Source    string // remote ip:port
	Transport string // UDP, TCP, TLS, WS or WSS
	LocalAddr string // our listener's address
	Node      string // the users-core node holding the flow
}

// Update is one registrar update: the parsed request and what the handler
// learned while authenticating it.
type Update struct {
	Req    *RegisterRequest
	UserID string // stored in every binding the request writes
	Now    time.Time
	// MaxExpiresAt, when not zero, caps every binding the request writes
	// (e.g. the Bearer token's exp: a binding never outlives its token).
	// A binding whose capped expiry is not after Now is removed, not kept.
	MaxExpiresAt time.Time
	Flow         Flow
	// NewID returns the ID of a new binding; nil means a random UUID.
	NewID func() string
}

// Refusals Apply returns, fresh each time so a caller may keep or change
// one. Their reasons are fixed strings.
func errOutOfOrderCSeq() *RegisterError {
	return &RegisterError{Status: 400, Reason: "Out-of-order CSeq"}
}

func errTooManyContacts() *RegisterError {
	return &RegisterError{Status: 403, Reason: "Too many contacts"}
}

// binding states while Apply works.
const (
	stUntouched uint8 = iota
	stTouched         // written by this request
	stRemoved
)

// Apply runs RFC 3261 section 10.3 steps 6 and 7 on current, the AoR's
// bindings sorted by CreatedAt then ID, and returns the complete new set in
// the same order, or a parseRefusal and no set: every change of a REGISTER
// happens or none does.
//
//   - No Contact and no "*": a fetch; current comes back unchanged.
//   - "Contact: *" (ParseRegister has checked it is alone with an
//     expiration of 0): every binding goes; a binding with the request's
//     Call-ID and a CSeq not lower than the request's aborts the request
//     (step 6).
//   - Each Contact in order (step 7): its expires parameter, else the
//     Expires header, else Policy.DefaultExpires; 0 removes; a value
//     between 0 and MinExpires refuses the request with 423 and
//     Min-Expires; above MaxExpires it is shortened; Update.MaxExpiresAt
//     caps it. A Contact with +sip.instance and reg-id replaces the
//     binding with the same instance and reg-id whatever its URI and
//     Call-ID (RFC 5626 section 6), or else takes over a binding of the
//     same URI key registered without reg-id. Any other Contact matches
//     the first binding with the same ContactKey (one registered without
//     reg-id first); when it removes, every binding with that key goes.
//     A matched binding with the request's Call-ID is only changed when
//     the request's CSeq is higher; otherwise the request is refused with
//     400 "Out-of-order CSeq" (section 10.3 names no status; 400 is what
//     Kamailio and OpenSIPS answer, and the request is indeed invalid as
//     ordered). A removal matching nothing is ignored. A Contact repeated
//     within one request updates what the earlier one wrote.
//   - When the request adds bindings and the AoR ends up with more than
//     MaxContacts: OverLimitReject refuses with 403 "Too many contacts"
//     (what Flexisip and Asterisk answer: retrying cannot help, where a
//     503 would invite retries); OverLimitDropOldest removes the least
//     recently updated bindings the request did not write, and still
//     refuses when the request alone writes more than MaxContacts. A
//     refresh or removal never fails or evicts because of the limit, so
//     lowering it does not lock anyone out.
//
// Bindings expired at Now are dropped whatever the path. Updated bindings
// keep their ID and CreatedAt; new ones get NewID() and CreatedAt Now.
// Apply does not modify current.
func Apply(p Policy, current []Binding, u Update) ([]Binding, *RegisterError) {
	req := u.Req
	if req == nil {
		return nil, &RegisterError{Status: 500, Reason: "Server Internal Error"}
	}
	now := u.Now

	work := make([]Binding, 0, len(current)+len(req.Contacts))
	for _, b := range current {
		if b.ExpiresAt.After(now) {
			work = append(work, b)
		}
	}
	state := make([]uint8, len(work), cap(work))

	switch {
	case req.Wildcard:
		// RFC 3261 section 10.3 step 6.
		for i := range work {
			if work[i].CallID == req.CallID && req.CSeq <= work[i].CSeq {
				return nil, errOutOfOrderCSeq()
			}
		}
		return []Binding{}, nil
	case len(req.Contacts) == 0:
		return sortBindings(work), nil
	}

	added := 0
	for ci := range req.Contacts {
		c := &req.Contacts[ci]
		e := c.Expires
		if e < 0 {
			e = req.ExpiresHeader
		}
		if e < 0 {
			e = p.DefaultExpires
		}
		if e > 0 && e < p.MinExpires {
			return nil, &RegisterError{
				Status: 423,
				Reason: "Interval Too Brief",
				Header: map[string]string{"Min-Expires": strconv.Itoa(p.MinExpires)},
			}
		}
		if e > p.MaxExpires {
			e = p.MaxExpires
		}
		expiresAt := now.Add(time.Duration(e) * time.Second)
		if !u.MaxExpiresAt.IsZero() && u.MaxExpiresAt.Before(expiresAt) {
			expiresAt = u.MaxExpiresAt
		}
		remove := e == 0 || !expiresAt.After(now)
		outbound := c.Instance != "" && c.RegID > 0

		if remove && !outbound {
			// Every binding of this URI goes (several can share a URI
			// when they came over different Outbound flows).
			for i := range work {
				if state[i] == stRemoved || work[i].ContactKey != c.Key {
					continue
				}
				if state[i] == stUntouched && work[i].CallID == req.CallID && req.CSeq <= work[i].CSeq {
					return nil, errOutOfOrderCSeq()
				}
				state[i] = stRemoved
			}
			continue
		}

		i := matchBinding(work, state, c, outbound)
		if i >= 0 && state[i] == stUntouched && work[i].CallID == req.CallID && req.CSeq <= work[i].CSeq {
			return nil, errOutOfOrderCSeq()
		}
		if remove {
			if i >= 0 {
				state[i] = stRemoved
			}
			continue
		}
		if i < 0 {
			id := ""
			if u.NewID != nil {
				id = u.NewID()
			} else {
				id = uuid.NewString()
			}
			work = append(work, Binding{ID: id, CreatedAt: now})
			state = append(state, stTouched)
			i = len(work) - 1
			added++
		}
		fillBinding(&work[i], c, &u, expiresAt)
		state[i] = stTouched
	}

	if added > 0 {
		if rerr := enforceLimit(p, work, state); rerr != nil {
			return nil, rerr
		}
	}

	n := 0
	for i := range work {
		if state[i] != stRemoved {
			work[n] = work[i]
			n++
		}
	}
	return sortBindings(work[:n]), nil
}

// matchBinding returns the index of the binding Contact c refers to, or -1.
func matchBinding(work []Binding, state []uint8, c *ContactSpec, outbound bool) int {
	if outbound {
		// RFC 5626 section 6: the binding is (AoR, instance-id, reg-id).
		for i := range work {
			if state[i] != stRemoved && work[i].RegID == c.RegID && work[i].Instance == c.Instance {
				return i
			}
		}
		// A client turning Outbound on takes over its plain binding; a
		// flow with another reg-id is another binding.
		for i := range work {
			if state[i] != stRemoved && work[i].RegID == 0 && work[i].ContactKey == c.Key {
				return i
			}
		}
		return -1
	}
	// RFC 3261 section 10.3 step 7: URI comparison.
	found := -1
	for i := range work {
		if state[i] == stRemoved || work[i].ContactKey != c.Key {
			continue
		}
		if work[i].RegID == 0 {
			return i
		}
		if found < 0 {
			found = i
		}
	}
	return found
}

// fillBinding writes what the request says about a binding (step 7: "record the
// Call-ID and CSeq"; RFC 3327: the Path; RFC 5626: the flow).
func fillBinding(b *Binding, c *ContactSpec, u *Update, expiresAt time.Time) {
	req := u.Req
	b.AoR = req.AoR
	b.UserID = u.UserID
	b.Contact = c.URI
	b.ContactKey = c.Key
	b.Q = c.Q
	b.Instance = c.Instance
	b.RegID = c.RegID
	b.CallID = req.CallID
	b.CSeq = req.CSeq
	b.Path = nil
	if len(req.Path) > 0 {
		b.Path = append([]string(nil), req.Path...)
	}
	b.ExpiresAt = expiresAt
	b.UpdatedAt = u.Now
	b.Source = u.Flow.Source
	b.Transport = u.Flow.Transport
	b.LocalAddr = u.Flow.LocalAddr
	b.Node = u.Flow.Node
	b.UserAgent = req.UserAgent
}

// enforceLimit applies Policy.MaxContacts after a request that added
// bindings.
func enforceLimit(p Policy, work []Binding, state []uint8) *RegisterError {
	live, touched := 0, 0
	for _, s := range state {
		switch s {
		case stTouched:
			live++
			touched++
		case stUntouched:
			live++
		}
	}
	if live <= p.MaxContacts {
		return nil
	}
	if p.OverLimit != OverLimitDropOldest || touched > p.MaxContacts {
		return errTooManyContacts()
	}
	var victims []int
	for i, s := range state {
		if s == stUntouched {
			victims = append(victims, i)
		}
	}
	slices.SortFunc(victims, func(a, b int) int {
		x, y := &work[a], &work[b]
		if c := x.UpdatedAt.Compare(y.UpdatedAt); c != 0 {
			return c
		}
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	for _, i := range victims[:live-p.MaxContacts] {
		state[i] = stRemoved
	}
	return nil
}

// sortBindings orders bs by CreatedAt, then ID, as BindingStore does.
func sortBindings(bs []Binding) []Binding {
	slices.SortStableFunc(bs, func(x, y Binding) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return bs
}

// ContactOut is one binding as listed in a 200 to REGISTER (RFC 3261
// section 10.3 step 8).
type ContactOut struct {
	URI      string
	Expires  int    // seconds left, rounded up
	Q        int    // times 1000, -1 when absent
	Instance string // "<urn:...>" without quotes, or ""
	RegID    int    // 0 when absent
}

// OKContacts lists every binding of bs still alive at now with its
// remaining lifetime in whole seconds, rounded up so a client never
// refreshes late; a binding with nothing left is not listed. Order is
// that of bs.
func OKContacts(bs []Binding, now time.Time) []ContactOut {
	out := make([]ContactOut, 0, len(bs))
	for i := range bs {
		b := &bs[i]
		left := b.ExpiresAt.Sub(now)
		if left <= 0 {
			continue
		}
		secs := int((left + time.Second - 1) / time.Second)
		out = append(out, ContactOut{URI: b.Contact, Expires: secs, Q: b.Q, Instance: b.Instance, RegID: b.RegID})
	}
	return out
}

// ErrUnsafeContact is returned by FormatContact for a value that would
// break or inject into the header: CR, LF or NUL anywhere (sipgo v1.7.3
// does not check what it writes), a '<' or '>' in the URI, a '"' in the
// instance, or a number out of range.
var ErrUnsafeContact = errors.New("sip: contact value unsafe for a header")

// FormatContact writes c as a Contact header value for a 200:
// <uri>;expires=N[;q=0.5][;+sip.instance="<urn:...>"][;reg-id=1].
func FormatContact(c ContactOut) (string, error) {
	if c.URI == "" || strings.ContainsAny(c.URI, "\r\n\x00<>") ||
		strings.ContainsAny(c.Instance, "\r\n\x00\"") ||
		c.Expires < 0 || c.Q < -1 || c.Q > 1000 || c.RegID < 0 {
		return "", ErrUnsafeContact
	}
	var b strings.Builder
	b.Grow(len(c.URI) + len(c.Instance) + 48)
	b.WriteByte('<')
	b.WriteString(c.URI)
	b.WriteString(">;expires=")
	b.WriteString(strconv.Itoa(c.Expires))
	if c.Q >= 0 {
		b.WriteString(";q=")
		b.WriteString(formatQ(c.Q))
	}
	if c.Instance != "" {
		b.WriteString(`;+sip.instance="`)
		b.WriteString(c.Instance)
		b.WriteByte('"')
	}
	if c.RegID > 0 {
		b.WriteString(";reg-id=")
		b.WriteString(strconv.Itoa(c.RegID))
	}
	return b.String(), nil
}

// formatQ writes thousandths as a qvalue: 1000 -> "1", 500 -> "0.5",
// 25 -> "0.025", 0 -> "0".
func formatQ(q int) string {
	if q == 1000 {
		return "1"
	}
	if q == 0 {
		return "0"
	}
	s := strconv.Itoa(q + 1000)[1:] // three digits
	return "0." + strings.TrimRight(s, "0")
}
