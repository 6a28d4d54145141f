-- 0001: users, their roles and credentials, and named secrets.
--
-- The same tables and columns as store/sqlite's 0001, in PostgreSQL's
-- dialect. Keys: username_key and email_key hold the lower-cased (in Go)
-- username and email, so uniqueness and lookups are case-insensitive for
-- every script. email_key is NULL when the user has no email, and NULLs never
-- collide in a UNIQUE constraint, so any number of users may have no email.
-- display_name_key is the lower-cased display name, kept for ListUsers'
-- case-insensitive search.
--
-- Times are BIGINT Unix milliseconds, UTC, exactly as in SQLite: the same
-- precision and the same comparisons on every backend.
--
-- Text that is sorted or range-compared uses the "C" collation: byte order,
-- like SQLite's BINARY, whatever the database's default collation is. Page
-- cursors and the documented orders then agree on every server.
--
-- Constraints carry explicit names: the store maps a unique violation to the
-- value at fault by the constraint's name.

CREATE TABLE users (
	id               TEXT    NOT NULL,
	username         TEXT    NOT NULL,
	username_key     TEXT    COLLATE "C" NOT NULL,
	email            TEXT    NOT NULL DEFAULT '',
	email_key        TEXT    COLLATE "C",
	display_name     TEXT    NOT NULL DEFAULT '',
	display_name_key TEXT    COLLATE "C" NOT NULL DEFAULT '',
	active           BOOLEAN NOT NULL DEFAULT TRUE,
	token_only       BOOLEAN NOT NULL DEFAULT FALSE,
	password_hash    TEXT    NOT NULL DEFAULT '',
	created_at       BIGINT  NOT NULL,
	updated_at       BIGINT  NOT NULL,
	last_login_at    BIGINT,
	CONSTRAINT users_pkey PRIMARY KEY (id),
	-- Serves lookups by name and the keyset pagination of ListUsers
	-- (ORDER BY username_key, username_key > cursor).
	CONSTRAINT users_username_key_unique UNIQUE (username_key),
	CONSTRAINT users_email_key_unique UNIQUE (email_key),
	CONSTRAINT users_email_key_check CHECK (email_key IS NULL OR email_key <> '')
);

CREATE TABLE user_roles (
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	role    TEXT COLLATE "C" NOT NULL,
	CONSTRAINT user_roles_pkey PRIMARY KEY (user_id, role)
);

-- ListUsers' role filter looks users up by role.
CREATE INDEX user_roles_role ON user_roles (role, user_id);

CREATE TABLE sip_credentials (
	user_id   TEXT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	realm     TEXT  COLLATE "C" NOT NULL,
	algorithm TEXT  COLLATE "C" NOT NULL,
	sealed    BYTEA NOT NULL,
	CONSTRAINT sip_credentials_pkey PRIMARY KEY (user_id, realm, algorithm)
);

CREATE TABLE secrets (
	name       TEXT   NOT NULL PRIMARY KEY,
	value      BYTEA  NOT NULL,
	created_at BIGINT NOT NULL
);
