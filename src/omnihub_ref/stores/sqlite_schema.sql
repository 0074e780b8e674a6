-- The control tables for SQLite, with the semantics of ../migrations/*.sql (Postgres):
-- booleans as 0/1, text[] and jsonb as JSON text, timestamps as fixed-width UTC ISO 8601 text
-- (so they compare as text). updated_at of emergency_controls is set by the store on every update.

CREATE TABLE IF NOT EXISTS emergency_controls (
  id TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))),
  omnihub_kill_switch INTEGER NOT NULL DEFAULT 0 CHECK (omnihub_kill_switch IN (0, 1)),
  execution_safe_mode INTEGER NOT NULL DEFAULT 0 CHECK (execution_safe_mode IN (0, 1)),
  operator_takeover INTEGER NOT NULL DEFAULT 0 CHECK (operator_takeover IN (0, 1)),
  allowed_operations TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(allowed_operations) AND json_type(allowed_operations) = 'array'),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')),
  updated_by TEXT,
  reason TEXT
);

CREATE TABLE IF NOT EXISTS approval_queue (
  id TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))),
  user_id TEXT NOT NULL,
  action TEXT NOT NULL,
  amount_usd NUMERIC NOT NULL CHECK (amount_usd >= 0),
  risk_level TEXT NOT NULL CHECK (risk_level IN ('low', 'medium', 'high', 'critical')),
  status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
  request TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(request)),
  expires_at TEXT NOT NULL
    DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now', '+1 hour')),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')),
  decided_at TEXT,
  decided_by TEXT,
  executed_at TEXT,
  result TEXT CHECK (result IS NULL OR json_valid(result)),
  reason TEXT
);

CREATE INDEX IF NOT EXISTS approval_queue_pending_idx
  ON approval_queue (expires_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS audit_logs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))),
  action TEXT NOT NULL,
  resource_type TEXT NOT NULL,
  resource_id TEXT,
  actor TEXT,
  metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now'))
);

CREATE INDEX IF NOT EXISTS audit_logs_resource_idx ON audit_logs (resource_type, created_at);

-- One audit row per updated row of the controls (C6).
CREATE TRIGGER IF NOT EXISTS emergency_controls_audit AFTER UPDATE ON emergency_controls
BEGIN
  INSERT INTO audit_logs (action, resource_type, resource_id, actor, created_at, metadata)
  VALUES (
    'emergency_control_updated',
    'emergency_controls',
    NEW.id,
    NEW.updated_by,
    -- The store stamps updated_at in microseconds; SQLite's own clock has only milliseconds.
    CASE WHEN NEW.updated_at IS NOT OLD.updated_at THEN NEW.updated_at
         ELSE strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now') END,
    json_object(
    'old', json_object(
      'id', OLD.id,
      'omnihub_kill_switch', json(CASE WHEN OLD.omnihub_kill_switch THEN 'true' ELSE 'false' END),
      'execution_safe_mode', json(CASE WHEN OLD.execution_safe_mode THEN 'true' ELSE 'false' END),
      'operator_takeover', json(CASE WHEN OLD.operator_takeover THEN 'true' ELSE 'false' END),
      'allowed_operations', json(OLD.allowed_operations),
      'updated_at', OLD.updated_at,
      'updated_by', OLD.updated_by,
      'reason', OLD.reason
    ),
    'new', json_object(
      'id', NEW.id,
      'omnihub_kill_switch', json(CASE WHEN NEW.omnihub_kill_switch THEN 'true' ELSE 'false' END),
      'execution_safe_mode', json(CASE WHEN NEW.execution_safe_mode THEN 'true' ELSE 'false' END),
      'operator_takeover', json(CASE WHEN NEW.operator_takeover THEN 'true' ELSE 'false' END),
      'allowed_operations', json(NEW.allowed_operations),
      'updated_at', NEW.updated_at,
      'updated_by', NEW.updated_by,
      'reason', NEW.reason
    )
    )
  );
END;

-- Only a pending approval can change status.
CREATE TRIGGER IF NOT EXISTS approval_queue_guard BEFORE UPDATE OF status ON approval_queue
WHEN NEW.status IS NOT OLD.status AND OLD.status <> 'pending'
BEGIN
  SELECT RAISE(ABORT, 'only a pending approval can change status');
END;

CREATE TRIGGER IF NOT EXISTS approval_queue_decided AFTER UPDATE OF status ON approval_queue
WHEN NEW.status IS NOT OLD.status AND NEW.decided_at IS NULL
BEGIN
  UPDATE approval_queue SET decided_at = strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now') WHERE id = NEW.id;
END;

INSERT OR IGNORE INTO emergency_controls (id, updated_by)
VALUES ('00000000-0000-0000-0000-000000000001', 'migration');
