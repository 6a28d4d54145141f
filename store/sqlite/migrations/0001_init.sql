-- 0001: users, their roles and credentials, and named secrets.
--
-- Keys: username_key and email_key hold the lower-cased (in Go) username and
-- email, so uniqueness and lookups are case-insensitive for every script, not
-- only ASCII. email_key is NULL when the user has no email, and NULLs never
-- collide in a UNIQUE index, so any number of users may have no email.
-- display_name_key is the lower-cased display name, kept for ListUsers'
-- case-insensitive search (SQLite's own LIKE folds ASCII only).
--
-- Times are INTEGER Unix milliseconds, UTC.

CREATE TABLE users (
	id               TEXT    NOT NULL PRIMARY KEY,
	username         TEXT    NOT NULL,
	username_key     TEXT    NOT NULL UNIQUE,
	email            TEXT    NOT NULL DEFAULT '',
	email_key        TEXT    UNIQUE,
	display_name     TEXT    NOT NULL DEFAULT '',
	display_name_key TEXT    NOT NULL DEFAULT '',
	active           INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
	token_only       INTEGER NOT NULL DEFAULT 0 CHECK (token_only IN (0, 1)),
	password_hash    TEXT    NOT NULL DEFAULT '',
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL,
	last_login_at    INTEGER,
	CHECK (email_key IS NULL OR email_key <> '')
) STRICT;

-- The UNIQUE index on username_key serves lookups by name and the keyset
-- pagination of ListUsers (ORDER BY username_key, username_key > cursor).

CREATE TABLE user_roles (
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	role    TEXT NOT NULL,
	PRIMARY KEY (user_id, role)
) STRICT, WITHOUT ROWID;

-- ListUsers' role filter looks users up by role.
CREATE INDEX user_roles_role ON user_roles (role, user_id);

CREATE TABLE sip_credentials (
	user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	realm     TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	sealed    BLOB NOT NULL,
	PRIMARY KEY (user_id, realm, algorithm)
) STRICT, WITHOUT ROWID;

CREATE TABLE secrets (
	name       TEXT    NOT NULL PRIMARY KEY,
	value      BLOB    NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
