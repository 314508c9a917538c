-- Appends write recorded_at themselves (the envelope's time); the trigger that reads it from the
-- envelope now fills it only for a row written without it.
ALTER TABLE events ALTER COLUMN recorded_at DROP DEFAULT;
DROP TRIGGER events_recorded_at ON events;
CREATE TRIGGER events_recorded_at BEFORE INSERT ON events FOR EACH ROW
    WHEN (NEW.recorded_at IS NULL) EXECUTE FUNCTION events_recorded_at();
