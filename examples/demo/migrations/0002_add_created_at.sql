ALTER TABLE notes ADD COLUMN created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP;
INSERT INTO notes (body) VALUES ('deployed by deploy-action');
