-- Venue credentials (API keys and secrets, OAuth refresh tokens), sealed by
-- the server with AES-256-GCM under `trading.credentials_key`: the database
-- (and every backup of it) holds only ciphertext. `sealed` is base64 of
-- nonce || ciphertext; `key_id` is the fingerprint of the key that sealed
-- it, so a wrong key is named instead of failing as "corrupt"; `key_hint`
-- is the end of the public API key or client id, for recognising it.
CREATE TABLE venue_credentials (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    venue TEXT NOT NULL,
    label TEXT NOT NULL,
    environment TEXT NOT NULL,
    key_hint TEXT NOT NULL,
    key_id TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    updated_ns BIGINT NOT NULL,
    UNIQUE (user_id, venue, label)
);
