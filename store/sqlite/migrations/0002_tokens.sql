-- 0002: signing keys, refresh tokens, and brute-force counters and locks.
--
-- Times are INTEGER Unix milliseconds, UTC; NULL where the Go value is the
-- zero time ("not yet").

-- signing_keys is the whole jwks key set; signing_keyset holds its version,
-- the compare-and-swap token that lets one node at a time rotate keys.
-- SaveKeySet replaces every row of signing_keys and bumps the version in one
-- transaction. The private key is sealed by the caller: it is never stored
-- in the clear.
CREATE TABLE signing_keys (
	kid            TEXT    NOT NULL PRIMARY KEY,
	alg            TEXT    NOT NULL,
	state          TEXT    NOT NULL CHECK (state IN ('next', 'active', 'retired')),
	public_der     BLOB    NOT NULL,
	private_sealed BLOB    NOT NULL,
	created_at     INTEGER NOT NULL,
	activate_at    INTEGER NOT NULL,
	retired_at     INTEGER,
	remove_at      INTEGER
) STRICT;

-- One row (id 1) once a key set was saved; no row means version 0.
CREATE TABLE signing_keyset (
	id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	version INTEGER NOT NULL
) STRICT;

-- refresh_tokens keeps the SHA-256 of each opaque refresh token, never the
-- token. Tokens of one login form a family; a refresh marks the current
-- token rotated (rotated_at, successor_id) and inserts its successor.
-- successor_sealed is the successor token sealed under the data key, kept
-- during the grace window so a concurrent retry gets the same successor,
-- then set to NULL. parent_id is '' for the token issued at login.
CREATE TABLE refresh_tokens (
	id                  TEXT    NOT NULL PRIMARY KEY,
	hash                BLOB    NOT NULL UNIQUE,
	family_id           TEXT    NOT NULL,
	parent_id           TEXT    NOT NULL DEFAULT '',
	user_id             TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at          INTEGER NOT NULL,
	last_used_at        INTEGER NOT NULL,
	idle_expires_at     INTEGER NOT NULL,
	absolute_expires_at INTEGER NOT NULL,
	rotated_at          INTEGER,
	successor_id        TEXT,
	successor_sealed    BLOB,
	revoked_at          INTEGER
) STRICT;

-- Revoking and pruning work on whole families.
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
-- Revoking a user's tokens (logout, password change) and the cascade from
-- a deleted user find them by user.
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id, family_id);

-- auth_failures records each failed authentication under its key (kind
-- 'user' with the lower-cased username, or 'addr' with the client address);
-- the index serves the count of a key's failures since a time.
CREATE TABLE auth_failures (
	kind  TEXT    NOT NULL,
	value TEXT    NOT NULL,
	at    INTEGER NOT NULL
) STRICT;

CREATE INDEX auth_failures_key_at ON auth_failures (kind, value, at);

-- auth_locks holds one lock per key, until a time.
CREATE TABLE auth_locks (
	kind  TEXT    NOT NULL,
	value TEXT    NOT NULL,
	until INTEGER NOT NULL,
	PRIMARY KEY (kind, value)
) STRICT, WITHOUT ROWID;
