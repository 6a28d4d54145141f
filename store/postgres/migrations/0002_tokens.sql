-- 0002: signing keys, refresh tokens, and brute-force counters and locks.
--
-- Times are BIGINT Unix milliseconds, UTC; NULL where the Go value is the
-- zero time ("not yet").

-- signing_keys is the whole jwks key set; signing_keyset holds its version,
-- the compare-and-swap token that lets one node at a time rotate keys.
-- SaveKeySet bumps the version with UPDATE ... WHERE version = prev, which
-- waits for a concurrent save's row lock and then sees its new version, and
-- replaces every row of signing_keys in the same transaction. The private
-- key is sealed by the caller: it is never stored in the clear.
CREATE TABLE signing_keys (
	kid            TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
	alg            TEXT   NOT NULL,
	state          TEXT   NOT NULL CHECK (state IN ('next', 'active', 'retired')),
	public_der     BYTEA  NOT NULL,
	private_sealed BYTEA  NOT NULL,
	created_at     BIGINT NOT NULL,
	activate_at    BIGINT NOT NULL,
	retired_at     BIGINT,
	remove_at      BIGINT
);

-- Always one row (id 1): version 0 until a key set is saved. SQLite creates
-- the row on the first save; here it exists from the start, so that the
-- compare-and-swap is always an UPDATE of an existing, lockable row.
CREATE TABLE signing_keyset (
	id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	version BIGINT  NOT NULL
);

INSERT INTO signing_keyset (id, version) VALUES (1, 0);

-- refresh_tokens keeps the SHA-256 of each opaque refresh token, never the
-- token. Tokens of one login form a family; a refresh marks the current
-- token rotated (rotated_at, successor_id) and inserts its successor.
-- successor_sealed is the successor token sealed under the data key, kept
-- during the grace window so a concurrent retry gets the same successor,
-- then set to NULL. parent_id is '' for the token issued at login.
CREATE TABLE refresh_tokens (
	id                  TEXT   NOT NULL PRIMARY KEY,
	hash                BYTEA  NOT NULL UNIQUE,
	family_id           TEXT   NOT NULL,
	parent_id           TEXT   NOT NULL DEFAULT '',
	user_id             TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at          BIGINT NOT NULL,
	last_used_at        BIGINT NOT NULL,
	idle_expires_at     BIGINT NOT NULL,
	absolute_expires_at BIGINT NOT NULL,
	rotated_at          BIGINT,
	successor_id        TEXT,
	successor_sealed    BYTEA,
	revoked_at          BIGINT
);

-- Revoking and pruning work on whole families.
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
-- Revoking a user's tokens (logout, password change) and the cascade from
-- a deleted user find them by user.
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id, family_id);

-- auth_failures records each failed authentication under its key (kind
-- 'user' with the lower-cased username, or 'addr' with the client address);
-- the index serves the count of a key's failures since a time.
CREATE TABLE auth_failures (
	kind  TEXT   NOT NULL,
	value TEXT   NOT NULL,
	at    BIGINT NOT NULL
);

CREATE INDEX auth_failures_key_at ON auth_failures (kind, value, at);

-- auth_locks holds one lock per key, until a time.
CREATE TABLE auth_locks (
	kind  TEXT   NOT NULL,
	value TEXT   NOT NULL,
	until BIGINT NOT NULL,
	PRIMARY KEY (kind, value)
);
