-- 0002: what a removed binding was, so the gateway keeps refusing its
-- stand-in after a restart: its hash, and the hosts and shape of the secret
-- it stood for. Rows go with their sandbox.
CREATE TABLE revoked_bindings (
	standin_hash BLOB    PRIMARY KEY,
	sandbox_id   TEXT    NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
	secret_id    TEXT    NOT NULL,
	secret_name  TEXT    NOT NULL,
	hosts        TEXT    NOT NULL, -- JSON []client.HostAuth of the secret then
	shape        BLOB,
	revoked_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX revoked_bindings_sandbox_id ON revoked_bindings (sandbox_id);
