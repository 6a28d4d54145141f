-- SIP credentials gain a "qualified" variant: the HA1 over
-- "username@realm", for phones whose Digest username is user@domain
-- (Kamailio calls it ha1b). Existing rows are the plain variant, and the
-- variant joins the primary key.
ALTER TABLE sip_credentials ADD COLUMN qualified BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE sip_credentials
	DROP CONSTRAINT sip_credentials_pkey,
	ADD CONSTRAINT sip_credentials_pkey PRIMARY KEY (user_id, realm, algorithm, qualified);
