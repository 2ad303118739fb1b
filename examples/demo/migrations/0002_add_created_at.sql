ALTER TABLE notes ADD COLUMN created_at TEXT;
INSERT INTO notes (body, created_at) VALUES ('deployed by deploy-action', datetime('now'));
