-- The sqlite-es events and snapshots tables, extended with what the log needs:
-- a global position fixed at insert (rowid order is commit order: SQLite has one writer),
-- and the recording time taken from the envelope. Stored events can never change.
CREATE TABLE events
(
  aggregate_type text                          NOT NULL,
  aggregate_id   text                          NOT NULL,
  sequence       integer CHECK (sequence >= 0) NOT NULL,
  event_type     text                          NOT NULL,
  event_version  text                          NOT NULL,
  payload        text                          NOT NULL,
  metadata       text                          NOT NULL,
  position       integer,
  recorded_at    text GENERATED ALWAYS AS (json_extract(metadata, '$.recorded_at')) VIRTUAL,
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT;

CREATE UNIQUE INDEX events_position ON events (position);

CREATE TRIGGER events_set_position AFTER INSERT ON events
BEGIN
  UPDATE events SET position = NEW.rowid WHERE rowid = NEW.rowid;
END;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events WHEN OLD.position IS NOT NULL
BEGIN
  SELECT RAISE(ABORT, 'events are immutable');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
  SELECT RAISE(ABORT, 'events are immutable');
END;

CREATE TABLE snapshots
(
  aggregate_type   text                                  NOT NULL,
  aggregate_id     text                                  NOT NULL,
  last_sequence    integer CHECK (last_sequence >= 0)    NOT NULL,
  current_snapshot integer CHECK (current_snapshot >= 0) NOT NULL,
  payload          text                                  NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
) STRICT;
