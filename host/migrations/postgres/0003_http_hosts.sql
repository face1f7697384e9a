-- The hosts a module version's outbound HTTP requests may reach, as asked at
-- upload (a JSON array; the operator's list applies too).
ALTER TABLE wasmtx.module_versions ADD COLUMN http_hosts TEXT NOT NULL DEFAULT '[]';
