package jwks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/rvoip/users-core/jwks"
)

// Another Go program (a SIP proxy, say) accepts access tokens issued by a
// users-core deployment: it trusts the issuer URL, discovers the JWKS from
// the issuer's metadata and verifies tokens against the cached keys.
func ExampleVerifier() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The users-core side, reduced to its keyring and public endpoints.
	sealer, err := jwks.NewMemorySealer()
	if err != nil {
		panic(err)
	}
	keyring, err := jwks.NewKeyring(ctx, jwks.KeyringConfig{Store: jwks.NewMemoryKeyStore(), Sealer: sealer})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	issuer := httptest.NewServer(mux)
	defer issuer.Close()
	mux.Handle("GET /auth/jwks.json", jwks.Handler(keyring))
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": issuer.URL, "jwks_uri": issuer.URL + "/auth/jwks.json"})
	})
	now := time.Now()
	token, err := keyring.SignJWT("at+jwt", map[string]any{
		"iss": issuer.URL, "sub": "user-1", "aud": []string{"rvoip-api", "rvoip-sip"},
		"iat": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(),
		"username": "alice", "scope": "openid sip.register",
	})
	if err != nil {
		panic(err)
	}

	// The other program.
	keys := jwks.NewRemoteKeySource(jwks.RemoteConfig{Issuer: issuer.URL})
	keys.Start(ctx) // keeps the keys fresh until ctx is done
	verifier, err := jwks.NewVerifier(jwks.VerifierConfig{
		Issuers: []jwks.IssuerConfig{{Name: "users-core", Issuer: issuer.URL, Audience: "rvoip-sip", Keys: keys}},
	})
	if err != nil {
		panic(err)
	}
	claims, err := verifier.Verify(ctx, token)
	if err != nil {
		panic(err)
	}
	fmt.Println(claims.IssuerName, claims.Subject, claims.Username, claims.HasScope("sip.register"))

	// Refresh tokens are opaque and never pass as access tokens.
	_, err = verifier.Verify(ctx, "rt_6f1c0d9e2b7a4c3f")
	fmt.Println(jwks.ReasonOf(err))
	// Output:
	// users-core user-1 alice true
	// not_access_token
}
