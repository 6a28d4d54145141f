package sip

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var regT0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

const aliceAoR = "sip:alice@example.com"

// testBinding is a live binding of aliceAoR created at created and expiring in an
// hour from regT0, with key as both URI and key.
func testBinding(id, key, callID string, cseq uint32, created time.Time) Binding {
	return Binding{
		ID: id, AoR: aliceAoR, UserID: "user-1", Contact: key, ContactKey: key, Q: -1,
		CallID: callID, CSeq: cseq, ExpiresAt: regT0.Add(time.Hour), CreatedAt: created, UpdatedAt: created,
		Source: "192.0.2.10:5060", Transport: "UDP",
	}
}

// plainContact is a Contact whose URI is its own key.
func plainContact(key string, expires int) ContactSpec {
	return ContactSpec{URI: key, Key: key, Expires: expires, Q: -1}
}

// outboundContact is an Outbound (RFC 5626) Contact.
func outboundContact(key, instance string, regID, expires int) ContactSpec {
	c := plainContact(key, expires)
	c.Instance, c.RegID = instance, regID
	return c
}

// testRegister is a REGISTER of aliceAoR without Expires header.
func testRegister(callID string, cseq uint32, contacts ...ContactSpec) *RegisterRequest {
	return &RegisterRequest{
		AoR: aliceAoR, AoRUser: "alice", AoRDomain: "example.com",
		Contacts: contacts, ExpiresHeader: -1, CallID: callID, CSeq: cseq,
		UserAgent: "Phone/1.0",
	}
}

// sequentialIDs returns a NewID giving new-1, new-2, ...
func sequentialIDs() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("new-%d", n) }
}

func testUpdate(r *RegisterRequest) Update {
	return Update{
		Req: r, UserID: "user-2", Now: regT0,
		Flow:  Flow{Source: "198.51.100.7:40000", Transport: "TLS", LocalAddr: "203.0.113.1:5061", Node: "node-a"},
		NewID: sequentialIDs(),
	}
}

// bindingSummary writes a binding set as "id=key@expires-in-seconds/callid/cseq".
func bindingSummary(bs []Binding) string {
	var s []string
	for _, b := range bs {
		s = append(s, fmt.Sprintf("%s=%s@%d/%s/%d", b.ID, b.ContactKey, int(b.ExpiresAt.Sub(regT0)/time.Second), b.CallID, b.CSeq))
	}
	return strings.Join(s, " ")
}

func TestApply(t *testing.T) {
	a := testBinding("b-1", "sip:a@192.0.2.1:5060", "call-1", 10, regT0.Add(-2*time.Hour))
	b := testBinding("b-2", "sip:b@192.0.2.2:5060", "call-2", 20, regT0.Add(-1*time.Hour))
	withHeader := func(r *RegisterRequest, e int) *RegisterRequest { r.ExpiresHeader = e; return r }
	wildcard := func(callID string, cseq uint32) *RegisterRequest {
		r := testRegister(callID, cseq)
		r.Wildcard, r.ExpiresHeader = true, 0
		return r
	}
	obBinding := func(id, key, inst string, regID int, callID string, cseq uint32, created time.Time) Binding {
		x := testBinding(id, key, callID, cseq, created)
		x.Instance, x.RegID = inst, regID
		return x
	}
	const inst = "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"

	tests := []struct {
		name    string
		policy  func(*Policy)
		current []Binding
		update  Update
		want    string // summary of the result, or "" with status
		status  int
		reason  string
	}{
		{name: "a REGISTER without Contact fetches the bindings unchanged",
			current: []Binding{a, b}, update: testUpdate(testRegister("call-9", 1)),
			want: "b-1=sip:a@192.0.2.1:5060@3600/call-1/10 b-2=sip:b@192.0.2.2:5060@3600/call-2/20"},
		{name: "a new Contact is added with the policy's default expiration",
			current: []Binding{a}, update: testUpdate(testRegister("call-9", 1, plainContact("sip:c@192.0.2.3:5060", -1))),
			want: "b-1=sip:a@192.0.2.1:5060@3600/call-1/10 new-1=sip:c@192.0.2.3:5060@3600/call-9/1"},
		{name: "a refresh with the same Call-ID and a higher CSeq updates the binding",
			current: []Binding{a}, update: testUpdate(testRegister("call-1", 11, plainContact(a.ContactKey, 600))),
			want: "b-1=sip:a@192.0.2.1:5060@600/call-1/11"},
		{name: "the same Call-ID with a lower CSeq is out of order and changes nothing",
			current: []Binding{a}, update: testUpdate(testRegister("call-1", 9, plainContact(a.ContactKey, 600))),
			status: 400, reason: "Out-of-order CSeq"},
		{name: "the same Call-ID with an equal CSeq is out of order",
			current: []Binding{a}, update: testUpdate(testRegister("call-1", 10, plainContact(a.ContactKey, 600))),
			status: 400, reason: "Out-of-order CSeq"},
		{name: "an out-of-order Contact fails the whole request, earlier Contacts included",
			current: []Binding{a}, update: testUpdate(testRegister("call-1", 5, plainContact("sip:new@192.0.2.9:5060", 600), plainContact(a.ContactKey, 600))),
			status: 400, reason: "Out-of-order CSeq"},
		{name: "a different Call-ID updates the binding whatever its CSeq",
			current: []Binding{a}, update: testUpdate(testRegister("call-7", 1, plainContact(a.ContactKey, 900))),
			want: "b-1=sip:a@192.0.2.1:5060@900/call-7/1"},
		{name: "expires=0 with a different Call-ID removes the binding",
			current: []Binding{a, b}, update: testUpdate(testRegister("call-7", 1, plainContact(a.ContactKey, 0))),
			want: "b-2=sip:b@192.0.2.2:5060@3600/call-2/20"},
		{name: "Expires: 0 with the same Call-ID and a higher CSeq removes the binding",
			current: []Binding{a, b}, update: testUpdate(withHeader(testRegister("call-2", 21, plainContact(b.ContactKey, -1)), 0)),
			want: "b-1=sip:a@192.0.2.1:5060@3600/call-1/10"},
		{name: "a removal with the same Call-ID and a lower CSeq is out of order",
			current: []Binding{a}, update: testUpdate(testRegister("call-1", 3, plainContact(a.ContactKey, 0))),
			status: 400, reason: "Out-of-order CSeq"},
		{name: "a removal matching no binding is ignored",
			current: []Binding{a}, update: testUpdate(testRegister("call-9", 1, plainContact("sip:gone@192.0.2.9:5060", 0))),
			want: "b-1=sip:a@192.0.2.1:5060@3600/call-1/10"},
		{name: "Contact: * removes every binding with another Call-ID",
			current: []Binding{a, b}, update: testUpdate(wildcard("call-9", 1)),
			want: ""},
		{name: "Contact: * removes a binding of its own Call-ID with a higher CSeq",
			current: []Binding{a, b}, update: testUpdate(wildcard("call-2", 21)),
			want: ""},
		{name: "Contact: * with its own Call-ID and a CSeq not higher is out of order",
			current: []Binding{a, b}, update: testUpdate(wildcard("call-2", 20)),
			status: 400, reason: "Out-of-order CSeq"},
		{name: "an expiration below MinExpires gets 423 with Min-Expires",
			current: []Binding{a}, update: testUpdate(testRegister("call-9", 1, plainContact("sip:c@192.0.2.3:5060", 30))),
			status: 423, reason: "Interval Too Brief"},
		{name: "an Expires header below MinExpires gets 423 too",
			update: testUpdate(withHeader(testRegister("call-9", 1, plainContact("sip:c@192.0.2.3:5060", -1)), 1)),
			status: 423, reason: "Interval Too Brief"},
		{name: "an expiration above MaxExpires is shortened",
			update: testUpdate(testRegister("call-9", 1, plainContact("sip:c@192.0.2.3:5060", 200000))),
			want:   "new-1=sip:c@192.0.2.3:5060@86400/call-9/1"},
		{name: "the Expires header applies to Contacts without expires, the parameter wins over it",
			update: testUpdate(withHeader(testRegister("call-9", 1, plainContact("sip:c@192.0.2.3:5060", -1), plainContact("sip:d@192.0.2.4:5060", 300)), 120)),
			want:   "new-1=sip:c@192.0.2.3:5060@120/call-9/1 new-2=sip:d@192.0.2.4:5060@300/call-9/1"},
		{name: "the policy's default applies without parameter or header",
			policy: func(p *Policy) { p.DefaultExpires = 1800 },
			update: testUpdate(testRegister("call-9", 1, plainContact("sip:c@192.0.2.3:5060", -1))),
			want:   "new-1=sip:c@192.0.2.3:5060@1800/call-9/1"},
		{name: "MaxExpiresAt caps the expiration (a binding never outlives its token)",
			update: func() Update {
				u := testUpdate(testRegister("call-9", 1, plainContact("sip:c@192.0.2.3:5060", 3600)))
				u.MaxExpiresAt = regT0.Add(10 * time.Minute)
				return u
			}(),
			want: "new-1=sip:c@192.0.2.3:5060@600/call-9/1"},
		{name: "a MaxExpiresAt already past makes the Contact a removal",
			current: []Binding{a},
			update: func() Update {
				u := testUpdate(testRegister("call-9", 1, plainContact(a.ContactKey, 3600), plainContact("sip:c@192.0.2.3:5060", 3600)))
				u.MaxExpiresAt = regT0
				return u
			}(),
			want: ""},
		{name: "instance and reg-id replace their binding under a new Call-ID and URI",
			current: []Binding{a, obBinding("b-ob", "sip:old@192.0.2.5:5060", inst, 1, "call-5", 50, regT0.Add(-time.Hour))},
			update:  testUpdate(testRegister("call-6", 1, outboundContact("sip:new@198.51.100.7:40000", inst, 1, 300))),
			want:    "b-1=sip:a@192.0.2.1:5060@3600/call-1/10 b-ob=sip:new@198.51.100.7:40000@300/call-6/1"},
		{name: "instance and reg-id with the same Call-ID and a lower CSeq are out of order",
			current: []Binding{obBinding("b-ob", "sip:old@192.0.2.5:5060", inst, 1, "call-5", 50, regT0.Add(-time.Hour))},
			update:  testUpdate(testRegister("call-5", 49, outboundContact("sip:new@198.51.100.7:40000", inst, 1, 300))),
			status:  400, reason: "Out-of-order CSeq"},
		{name: "another reg-id of the same instance is another flow, so another binding",
			current: []Binding{obBinding("b-ob", "sip:ua@192.0.2.5:5060", inst, 1, "call-5", 50, regT0.Add(-time.Hour))},
			update:  testUpdate(testRegister("call-6", 1, outboundContact("sip:ua@192.0.2.5:5060", inst, 2, 300))),
			want:    "b-ob=sip:ua@192.0.2.5:5060@3600/call-5/50 new-1=sip:ua@192.0.2.5:5060@300/call-6/1"},
		{name: "turning Outbound on takes over the plain binding of the same URI",
			current: []Binding{a},
			update:  testUpdate(testRegister("call-6", 1, outboundContact(a.ContactKey, inst, 1, 300))),
			want:    "b-1=sip:a@192.0.2.1:5060@300/call-6/1"},
		{name: "a plain Contact updates the plain binding of its URI before an Outbound flow of it",
			current: []Binding{
				obBinding("b-f1", "sip:ua@192.0.2.5:5060", inst, 1, "call-5", 50, regT0.Add(-2*time.Hour)),
				testBinding("b-plain", "sip:ua@192.0.2.5:5060", "call-6", 60, regT0.Add(-time.Hour)),
			},
			update: testUpdate(testRegister("call-7", 1, plainContact("sip:ua@192.0.2.5:5060", 300))),
			want:   "b-f1=sip:ua@192.0.2.5:5060@3600/call-5/50 b-plain=sip:ua@192.0.2.5:5060@300/call-7/1"},
		{name: "a plain removal of a URI removes every flow registered with it",
			current: []Binding{
				obBinding("b-f1", "sip:ua@192.0.2.5:5060", inst, 1, "call-5", 50, regT0.Add(-time.Hour)),
				obBinding("b-f2", "sip:ua@192.0.2.5:5060", inst, 2, "call-6", 50, regT0.Add(-time.Hour)),
				b,
			},
			update: testUpdate(testRegister("call-7", 1, plainContact("sip:ua@192.0.2.5:5060", 0))),
			want:   "b-2=sip:b@192.0.2.2:5060@3600/call-2/20"},
		{name: "a Contact repeated in one request updates what the first one wrote",
			current: []Binding{a},
			update:  testUpdate(testRegister("call-1", 11, plainContact(a.ContactKey, 600), plainContact(a.ContactKey, 900))),
			want:    "b-1=sip:a@192.0.2.1:5060@900/call-1/11"},
		{name: "a new Contact over MaxContacts is refused with 403 by default",
			policy:  func(p *Policy) { p.MaxContacts = 2 },
			current: []Binding{a, b}, update: testUpdate(testRegister("call-9", 1, plainContact("sip:c@192.0.2.3:5060", 600))),
			status: 403, reason: "Too many contacts"},
		{name: "a new Contact over MaxContacts drops the least recently updated binding when asked to",
			policy: func(p *Policy) { p.MaxContacts = 2; p.OverLimit = OverLimitDropOldest },
			current: func() []Binding {
				older := a
				older.UpdatedAt = regT0.Add(-time.Minute) // a was created first but refreshed last
				return []Binding{older, b}
			}(),
			update: testUpdate(testRegister("call-9", 1, plainContact("sip:c@192.0.2.3:5060", 600))),
			want:   "b-1=sip:a@192.0.2.1:5060@3600/call-1/10 new-1=sip:c@192.0.2.3:5060@600/call-9/1"},
		{name: "drop-oldest still refuses a request that alone exceeds MaxContacts",
			policy: func(p *Policy) { p.MaxContacts = 2; p.OverLimit = OverLimitDropOldest },
			update: testUpdate(testRegister("call-9", 1, plainContact("sip:c@192.0.2.3:5060", 600), plainContact("sip:d@192.0.2.4:5060", 600), plainContact("sip:e@192.0.2.5:5060", 600))),
			status: 403, reason: "Too many contacts"},
		{name: "a refresh of an AoR already over a lowered limit is not refused",
			policy:  func(p *Policy) { p.MaxContacts = 1 },
			current: []Binding{a, b}, update: testUpdate(testRegister("call-1", 11, plainContact(a.ContactKey, 600))),
			want: "b-1=sip:a@192.0.2.1:5060@600/call-1/11 b-2=sip:b@192.0.2.2:5060@3600/call-2/20"},
		{name: "expired bindings in the input are dropped on a fetch",
			current: func() []Binding {
				dead := b
				dead.ExpiresAt = regT0
				return []Binding{a, dead}
			}(),
			update: testUpdate(testRegister("call-9", 1)),
			want:   "b-1=sip:a@192.0.2.1:5060@3600/call-1/10"},
		{name: "expired bindings in the input are dropped and do not count against the limit",
			policy: func(p *Policy) { p.MaxContacts = 2 },
			current: func() []Binding {
				dead := b
				dead.ExpiresAt = regT0.Add(-time.Second)
				return []Binding{a, dead}
			}(),
			update: testUpdate(testRegister("call-9", 1, plainContact("sip:c@192.0.2.3:5060", 600))),
			want:   "b-1=sip:a@192.0.2.1:5060@3600/call-1/10 new-1=sip:c@192.0.2.3:5060@600/call-9/1"},
		{name: "the result is sorted by CreatedAt then ID whatever the input order",
			current: func() []Binding {
				x := testBinding("b-0", "sip:x@192.0.2.8:5060", "call-8", 1, a.CreatedAt)
				return []Binding{b, x, a}
			}(),
			update: testUpdate(testRegister("call-9", 1)),
			want:   "b-0=sip:x@192.0.2.8:5060@3600/call-8/1 b-1=sip:a@192.0.2.1:5060@3600/call-1/10 b-2=sip:b@192.0.2.2:5060@3600/call-2/20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy()
			if tt.policy != nil {
				tt.policy(&p)
			}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			before := append([]Binding(nil), tt.current...)
			got, rerr := Apply(p, tt.current, tt.update)
			if !reflect.DeepEqual(before, tt.current) {
				t.Fatal("Apply modified its input")
			}
			if tt.status != 0 {
				if rerr == nil || rerr.Status != tt.status || rerr.Reason != tt.reason {
					t.Fatalf("got %v, want %d %s", rerr, tt.status, tt.reason)
				}
				if got != nil {
					t.Fatalf("a parseRefusal came with bindings: %s", bindingSummary(got))
				}
				if tt.status == 423 {
					if h := rerr.Headers(); !reflect.DeepEqual(h, [][2]string{{"Min-Expires", fmt.Sprint(p.MinExpires)}}) {
						t.Fatalf("423 headers %q", h)
					}
				}
				return
			}
			if rerr != nil {
				t.Fatalf("refused: %v", rerr)
			}
			if got == nil {
				t.Fatal("nil binding set")
			}
			if s := bindingSummary(got); s != tt.want {
				t.Fatalf("got  %s\nwant %s", s, tt.want)
			}
		})
	}
}

func TestApplyRecordsTheRequestInTheBinding(t *testing.T) {
	r := testRegister("call-9", 7, ContactSpec{URI: "sip:c@192.0.2.3;ob", Key: "sip:c@192.0.2.3:5060", Expires: 600, Q: 500,
		Instance: "<urn:uuid:1>", RegID: 3})
	r.Path = []string{"<sip:edge.example.com;lr>"}
	u := testUpdate(r)
	got, rerr := Apply(DefaultPolicy(), nil, u)
	if rerr != nil {
		t.Fatal(rerr)
	}
	want := Binding{
		ID: "new-1", AoR: aliceAoR, UserID: "user-2", Contact: "sip:c@192.0.2.3;ob", ContactKey: "sip:c@192.0.2.3:5060",
		Q: 500, Instance: "<urn:uuid:1>", RegID: 3, CallID: "call-9", CSeq: 7, Path: []string{"<sip:edge.example.com;lr>"},
		ExpiresAt: regT0.Add(600 * time.Second), CreatedAt: regT0, UpdatedAt: regT0,
		Source: "198.51.100.7:40000", Transport: "TLS", LocalAddr: "203.0.113.1:5061", UserAgent: "Phone/1.0", Node: "node-a",
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	r.Path[0] = "<sip:changed>"
	if got[0].Path[0] != "<sip:edge.example.com;lr>" {
		t.Fatal("the binding shares the request's Path slice")
	}

	// An update keeps ID and CreatedAt and rewrites the rest.
	later := regT0.Add(time.Minute)
	r2 := testRegister("call-9", 8, plainContact("sip:c@192.0.2.3:5060", 300))
	u2 := testUpdate(r2)
	u2.Now, u2.UserID, u2.Flow = later, "user-3", Flow{Source: "198.51.100.8:1", Transport: "WSS"}
	got2, rerr := Apply(DefaultPolicy(), got, u2)
	if rerr != nil {
		t.Fatal(rerr)
	}
	b := got2[0]
	if b.ID != "new-1" || !b.CreatedAt.Equal(regT0) || !b.UpdatedAt.Equal(later) || b.UserID != "user-3" ||
		b.Transport != "WSS" || b.Path != nil || b.Instance != "" || b.RegID != 0 || b.Q != -1 ||
		!b.ExpiresAt.Equal(later.Add(300*time.Second)) {
		t.Fatalf("updated binding %+v", b)
	}
}

func TestApplyWithoutNewIDUsesUUIDs(t *testing.T) {
	u := testUpdate(testRegister("call-9", 1, plainContact("sip:c@192.0.2.3:5060", 600)))
	u.NewID = nil
	got, rerr := Apply(DefaultPolicy(), nil, u)
	if rerr != nil || len(got) != 1 || len(got[0].ID) != 36 {
		t.Fatalf("got %+v, %v", got, rerr)
	}
}

func TestApplyWithoutRequestIsAnInternalError(t *testing.T) {
	if _, rerr := Apply(DefaultPolicy(), nil, Update{Now: regT0}); rerr == nil || rerr.Status != 500 {
		t.Fatalf("got %v", rerr)
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatalf("the default policy is invalid: %v", err)
	}
	bad := map[string]func(*Policy){
		"MinExpires 0":                     func(p *Policy) { p.MinExpires = 0 },
		"MinExpires above an hour":         func(p *Policy) { p.MinExpires = 3601; p.DefaultExpires = 4000 },
		"MaxExpires below MinExpires":      func(p *Policy) { p.MaxExpires = 30 },
		"MaxExpires above ten years":       func(p *Policy) { p.MaxExpires = maxPolicyExpires + 1 },
		"DefaultExpires below MinExpires":  func(p *Policy) { p.DefaultExpires = 10 },
		"DefaultExpires above MaxExpires":  func(p *Policy) { p.DefaultExpires = 90000 },
		"MaxContacts 0":                    func(p *Policy) { p.MaxContacts = 0 },
		"an unknown over-limit policy":     func(p *Policy) { p.OverLimit = 7 },
		"the zero value (server fills it)": func(p *Policy) { *p = Policy{} },
	}
	for name, f := range bad {
		p := DefaultPolicy()
		f(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestOverLimitPolicyText(t *testing.T) {
	for _, o := range []OverLimitPolicy{OverLimitReject, OverLimitDropOldest} {
		got, err := ParseOverLimitPolicy(" " + strings.ToUpper(o.String()))
		if err != nil || got != o {
			t.Errorf("%v: got %v, %v", o, got, err)
		}
	}
	if _, err := ParseOverLimitPolicy("evict"); err == nil {
		t.Error("evict accepted")
	}
}

func TestOKContacts(t *testing.T) {
	mk := func(uri string, left time.Duration) Binding {
		return Binding{Contact: uri, Q: -1, ExpiresAt: regT0.Add(left)}
	}
	ob := mk("sip:ob@192.0.2.4", time.Hour)
	ob.Q, ob.Instance, ob.RegID = 700, "<urn:uuid:1>", 2
	got := OKContacts([]Binding{
		mk("sip:a@192.0.2.1", 3600*time.Second),
		mk("sip:b@192.0.2.2", 1200*time.Millisecond),
		mk("sip:c@192.0.2.3", 0),
		mk("sip:d@192.0.2.4", -time.Second),
		mk("sip:e@192.0.2.5", time.Nanosecond),
		ob,
	}, regT0)
	want := []ContactOut{
		{URI: "sip:a@192.0.2.1", Expires: 3600, Q: -1},
		{URI: "sip:b@192.0.2.2", Expires: 2, Q: -1},
		{URI: "sip:e@192.0.2.5", Expires: 1, Q: -1},
		{URI: "sip:ob@192.0.2.4", Expires: 3600, Q: 700, Instance: "<urn:uuid:1>", RegID: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestFormatContact(t *testing.T) {
	tests := []struct {
		in   ContactOut
		want string
	}{
		{ContactOut{URI: "sip:a@192.0.2.1:5060;transport=tcp", Expires: 3600, Q: -1}, "<sip:a@192.0.2.1:5060;transport=tcp>;expires=3600"},
		{ContactOut{URI: "sip:a@192.0.2.1", Expires: 0, Q: 500}, "<sip:a@192.0.2.1>;expires=0;q=0.5"},
		{ContactOut{URI: "sip:a@192.0.2.1", Expires: 5, Q: 1000}, "<sip:a@192.0.2.1>;expires=5;q=1"},
		{ContactOut{URI: "sip:a@192.0.2.1", Expires: 5, Q: 0}, "<sip:a@192.0.2.1>;expires=5;q=0"},
		{ContactOut{URI: "sip:a@192.0.2.1", Expires: 5, Q: 25}, "<sip:a@192.0.2.1>;expires=5;q=0.025"},
		{ContactOut{URI: "sip:a@192.0.2.1", Expires: 5, Q: 120}, "<sip:a@192.0.2.1>;expires=5;q=0.12"},
		{ContactOut{URI: "sip:a@192.0.2.1;ob", Expires: 300, Q: -1, Instance: "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>", RegID: 1},
			`<sip:a@192.0.2.1;ob>;expires=300;+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";reg-id=1`},
	}
	for _, tt := range tests {
		got, err := FormatContact(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("FormatContact(%+v) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	unsafe := map[string]ContactOut{
		"CR in the URI":           {URI: "sip:a@192.0.2.1\r\nX-Evil: 1", Expires: 1, Q: -1},
		"LF in the URI":           {URI: "sip:a@192.0.2.1\nX-Evil: 1", Expires: 1, Q: -1},
		"NUL in the URI":          {URI: "sip:a@192.0.2.1\x00", Expires: 1, Q: -1},
		"> in the URI":            {URI: "sip:a@192.0.2.1>;expires=9999", Expires: 1, Q: -1},
		"CR LF in the instance":   {URI: "sip:a@192.0.2.1", Expires: 1, Q: -1, Instance: "<urn:x>\r\nX-Evil: 1"},
		"a quote in the instance": {URI: "sip:a@192.0.2.1", Expires: 1, Q: -1, Instance: `<urn:x>";evil="`},
		"an empty URI":            {Expires: 1, Q: -1},
		"a negative expires":      {URI: "sip:a@192.0.2.1", Expires: -1, Q: -1},
		"a q above 1":             {URI: "sip:a@192.0.2.1", Expires: 1, Q: 1001},
	}
	for name, c := range unsafe {
		if got, err := FormatContact(c); err == nil {
			t.Errorf("%s: formatted as %q", name, got)
		}
	}
}

// BenchmarkApply is the common case: a REGISTER refresh (same Call-ID,
// higher CSeq) of one Contact of an AoR holding three bindings.
func BenchmarkApply(b *testing.B) {
	current := []Binding{
		testBinding("b-1", "sip:a@192.0.2.1:5060", "call-1", 10, regT0.Add(-3*time.Hour)),
		testBinding("b-2", "sip:b@192.0.2.2:5060", "call-2", 20, regT0.Add(-2*time.Hour)),
		testBinding("b-3", "sip:c@192.0.2.3:5060", "call-3", 30, regT0.Add(-1*time.Hour)),
	}
	r := testRegister("call-2", 21, plainContact("sip:b@192.0.2.2:5060", 3600))
	r.Path = []string{"<sip:edge.example.com;lr>"}
	u := testUpdate(r)
	p := DefaultPolicy()
	b.ReportAllocs()
	for b.Loop() {
		if _, rerr := Apply(p, current, u); rerr != nil {
			b.Fatal(rerr)
		}
	}
}
