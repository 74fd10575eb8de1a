-- OpenID Connect sign-ins in flight: the state, nonce and PKCE verifier of one authorization
-- request, bound to the browser by a short-lived cookie holding `id`. Used once, then deleted.
CREATE TABLE login_states (
    id             TEXT PRIMARY KEY,
    csrf_state     TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    pkce_verifier  TEXT NOT NULL,
    return_to      TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX login_states_created ON login_states (created_at);
