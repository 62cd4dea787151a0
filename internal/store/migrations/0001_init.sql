-- 0001: initial schema. Times are integer unix nanoseconds UTC (0 = unset).
-- Tables are STRICT so a wrong Go type is an error, not a silent coercion.

CREATE TABLE secrets (
	id          TEXT    PRIMARY KEY,
	name        TEXT    NOT NULL UNIQUE,
	provider    TEXT    NOT NULL,
	description TEXT    NOT NULL,
	hosts       TEXT    NOT NULL, -- JSON []client.HostAuth
	shape       BLOB,             -- catalog.Shape JSON
	version     INTEGER NOT NULL,
	key_id      TEXT    NOT NULL,
	sealed      BLOB    NOT NULL, -- vault blob, never clear text
	fingerprint BLOB,
	created_at  INTEGER NOT NULL,
	rotated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE sandboxes (
	id         TEXT    PRIMARY KEY,
	name       TEXT    NOT NULL UNIQUE,
	state      TEXT    NOT NULL,
	network    TEXT    NOT NULL, -- JSON client.NetworkRules
	created_at INTEGER NOT NULL
) STRICT;

-- A binding dies with its sandbox or its secret, so the stand-in stops
-- working the moment either is deleted.
CREATE TABLE bindings (
	id           TEXT    PRIMARY KEY,
	sandbox_id   TEXT    NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
	env_var      TEXT    NOT NULL,
	secret_id    TEXT    NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
	shape        BLOB,
	attempt      INTEGER NOT NULL,
	standin_hash BLOB    NOT NULL UNIQUE,
	created_at   INTEGER NOT NULL,
	UNIQUE (sandbox_id, env_var)
) STRICT;

-- Cascading a secret delete scans bindings by secret_id.
CREATE INDEX bindings_secret_id ON bindings (secret_id);

-- Activity has no foreign keys on purpose: it keeps the names so records
-- outlive the sandbox. DeleteSecret removes a secret's records itself.
CREATE TABLE activity (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	time            INTEGER NOT NULL,
	secret_id       TEXT    NOT NULL,
	secret_name     TEXT    NOT NULL,
	sandbox_id      TEXT    NOT NULL,
	sandbox_name    TEXT    NOT NULL,
	method          TEXT    NOT NULL,
	host            TEXT    NOT NULL,
	path            TEXT    NOT NULL,
	status          INTEGER NOT NULL,
	upstream_status INTEGER NOT NULL,
	latency_ns      INTEGER NOT NULL,
	bytes_in        INTEGER NOT NULL,
	bytes_out       INTEGER NOT NULL,
	outcome         TEXT    NOT NULL,
	reason          TEXT    NOT NULL
) STRICT;

CREATE INDEX activity_secret_id ON activity (secret_id, id);
CREATE INDEX activity_secret_sandbox_id ON activity (secret_id, sandbox_name, id);
CREATE INDEX activity_time ON activity (time);

CREATE TABLE meta (
	key    TEXT    PRIMARY KEY,
	value  BLOB    NOT NULL,
	sealed INTEGER NOT NULL DEFAULT 0, -- 1: value is a vault blob, rewrapped with secrets
	key_id TEXT    NOT NULL DEFAULT ''
) STRICT;
