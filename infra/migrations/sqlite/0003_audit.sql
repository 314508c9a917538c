-- Auditors' history queries: by actor, correlation, event type and time, each in log order.
CREATE INDEX events_actor ON events (json_extract(metadata, '$.actor'), position);
CREATE INDEX events_correlation ON events (json_extract(metadata, '$.correlation_id'), position);
CREATE INDEX events_type ON events (event_type, position);
CREATE INDEX events_recorded ON events (recorded_at, position);

-- Signed anchors over the log head: the position they cover, a digest over every stream's head,
-- the heads that changed since the anchor before, and an Ed25519 signature over all of it.
CREATE TABLE anchors
(
  id         integer PRIMARY KEY AUTOINCREMENT,
  tx         integer NOT NULL,
  position   integer NOT NULL,
  events     integer NOT NULL,
  streams    integer NOT NULL,
  root       text    NOT NULL,
  heads      text    NOT NULL,
  signed_at  text    NOT NULL,
  public_key text    NOT NULL,
  signature  text    NOT NULL,
  UNIQUE (tx, position)
) STRICT;
