-- Web sessions held by the service (issue 19, M2): the cookie carries a
-- random session id, the table its SHA-256 only; signing out ends the
-- session here, so a copied cookie stops working at once.
CREATE TABLE web_session (
    id_hash     BYTEA PRIMARY KEY,
    participant TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    ended_ms    BIGINT
);
CREATE INDEX web_session_expiry ON web_session (expires_ms);

-- Sign-in tokens already used (their jti, per signer), kept until the token
-- would have expired: one signed token opens at most one session.
CREATE TABLE web_signin_jti (
    participant TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    PRIMARY KEY (participant, jti)
);
