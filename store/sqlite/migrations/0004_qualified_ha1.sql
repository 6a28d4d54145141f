-- SIP credentials gain a "qualified" variant: the HA1 over
-- "username@realm", for phones whose Digest username is user@domain
-- (Kamailio calls it ha1b). SQLite cannot change a primary key in place,
-- so the table is rebuilt; existing rows are the plain variant.
CREATE TABLE sip_credentials_new (
	user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	realm     TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	qualified INTEGER NOT NULL DEFAULT 0 CHECK (qualified IN (0, 1)),
	sealed    BLOB NOT NULL,
	PRIMARY KEY (user_id, realm, algorithm, qualified)
) STRICT, WITHOUT ROWID;

INSERT INTO sip_credentials_new (user_id, realm, algorithm, qualified, sealed)
	SELECT user_id, realm, algorithm, 0, sealed FROM sip_credentials;

DROP TABLE sip_credentials;

ALTER TABLE sip_credentials_new RENAME TO sip_credentials;
