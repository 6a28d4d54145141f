// Package jwks signs and verifies the RS256 access tokens of users-core and
// publishes the keys that verify them.
//
// It has three parts, usable separately:
//
//   - Keyring: the issuer's signing keys, kept in a KeyStore shared by every
//     node (private parts sealed), with a kid equal to the RFC 7638
//     thumbprint, and rotation by publishing a next key before it signs
//     (Tick, Rotate). Handler serves its JWKS with caching headers.
//   - Verifier: checks a token against a fixed list of trusted issuers
//     (exact iss, audience, typ, exp/nbf/iat with bounded leeway), taking
//     the algorithm from the key, never from the token. Every rejection is
//     a *VerifyError with a stable Reason.
//   - RemoteKeySource: another issuer's keys from its JWKS over HTTP
//     (optionally discovered), cached per Cache-Control, refreshed before
//     expiry, refetched at most once per interval on an unknown kid, and
//     kept through outages. Together with Verifier it lets any Go program
//     (a SIP proxy, an API gateway) accept users-core tokens.
//
// What it is not: a general JOSE library. It handles RS256 JWS compact
// tokens only (no encryption, no HMAC or EC, no JWKs other than RSA
// signing keys), it does not issue tokens' claims (identity decides what a
// token says) and it does not do OAuth flows, token introspection or
// revocation. It imports no other package of users-core.
package jwks
