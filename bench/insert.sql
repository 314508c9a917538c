-- One event-sized row per transaction: the floor a command's append cannot beat.
\set id random(1, 1000000000)
INSERT INTO bench_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
VALUES ('account', 'acct-' || :id || '-' || pg_backend_pid() || '-' || clock_timestamp(), 1, 'ProfileUpdated', '1',
  '{"ProfileUpdated":{"profile_id":"01a22784-ecee-7152-a367-bb39c55e0eaf","name":"name 1"}}',
  '{"event_id":"01a22784-ecee-7152-a367-bb39c55e0eaf","correlation_id":"01a22784-ecee-7152-a367-bb39c55e0eaf","causation_id":null,"actor":"user:01a22784-ecee-7152-a367-bb39c55e0eaf","recorded_at":"2026-11-29T13:35:52.558797Z","hash":"0f2c6b6f7f8e9d0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607182","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000"}');
