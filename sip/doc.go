// Package sip is the SIP side of users-core on github.com/emiago/sipgo: the
// listeners (UDP, TCP, TLS, WS, WSS), the REGISTER handler, Digest
// (RFC 7616/8760) and Bearer (RFC 8898) verification, and the registrar
// rules of RFC 3261 section 10.3. It declares the small interfaces it
// consumes (bindings, credentials, token verification, regulation) and
// never imports the store.
//
// It is not a proxy: it answers REGISTER and OPTIONS itself and nothing
// else.
package sip
