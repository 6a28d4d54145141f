package main

import (
	"bufio"
	"strings"
	"testing"
)

// The examples of RFC 7616 section 3.9.1 (qop=auth, nc=00000001).
func TestDigestResponseMatchesRFC7616Examples(t *testing.T) {
	for _, tc := range []struct{ alg, want string }{
		{"MD5", "8ca523f5e9506fed4657c9700eebdbec"},
		{"SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			newHash := digestHash(tc.alg)
			ha1 := hexHash(newHash, "Mufasa:http-auth@example.org:Circle of Life")
			ha2 := hexHash(newHash, "GET:/dir/index.html")
			got := hexHash(newHash, ha1+":7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v:00000001:f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ:auth:"+ha2)
			if got != tc.want {
				t.Errorf("response %s, want %s", got, tc.want)
			}
		})
	}
}

func TestChallengeIsPickedByAlgorithm(t *testing.T) {
	values := []string{
		`Digest realm="bench.local", nonce="n1", algorithm=SHA-256, qop="auth"`,
		`Digest realm="bench.local", nonce="n2", algorithm=MD5, qop="auth"`,
		`Bearer realm="bench.local", scope="sip.register"`,
	}
	for alg, nonce := range map[string]string{"MD5": "n2", "SHA-256": "n1", "first": "n1"} {
		p, ok := pickChallenge(values, alg)
		if !ok || p["nonce"] != nonce {
			t.Errorf("%s: got %v %v, want nonce %s", alg, p, ok, nonce)
		}
	}
	if _, ok := pickChallenge(values, "SHA-512-256"); ok {
		t.Error("SHA-512-256 picked though not offered")
	}
	if p, _ := pickChallenge([]string{`Digest realm="r", nonce="x,y", qop="auth,auth-int"`}, "MD5"); p["nonce"] != "x,y" || p["qop"] != "auth,auth-int" {
		t.Errorf("quoted commas: %v", p)
	}
}

func TestStreamFramingSkipsKeepalivesAndBodies(t *testing.T) {
	in := "\r\n\r\nSIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK1;rport\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\nContent-Length: 4\r\n\r\nbody" +
		"SIP/2.0 200 OK\r\nv: SIP/2.0/TCP a;branch=z9hG4bK2\r\nl: 0\r\n\r\n"
	sc := &sipConn{waiters: map[string]chan *response{}}
	c1, c2 := sc.wait("z9hG4bK1"), sc.wait("z9hG4bK2")
	if err := readStream(bufio.NewReader(strings.NewReader(in)), sc); err != errClosedByPeer {
		t.Fatalf("readStream: %v", err)
	}
	r1, r2 := <-c1, <-c2
	if r1.status != 401 || len(r1.auth) != 1 || r2.status != 200 {
		t.Errorf("got %+v and %+v", r1, r2)
	}
}
