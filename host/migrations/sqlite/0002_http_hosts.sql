-- Schema version 2: the hosts a module version's outbound HTTP requests may
-- reach, as asked at upload (a JSON array; the operator's list applies too).
ALTER TABLE wasmtx_module_versions ADD COLUMN http_hosts TEXT NOT NULL DEFAULT '[]';
