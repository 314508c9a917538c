-- Per-user keys for personal data in event payloads. Kept outside the events table: deleting a
-- key erases what it sealed (crypto-shredding) without rewriting the log.
CREATE TABLE pii_keys
(
    owner      text PRIMARY KEY,
    key        text NOT NULL,
    created_at text NOT NULL
);
