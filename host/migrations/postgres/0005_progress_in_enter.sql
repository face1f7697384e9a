-- The transaction's progress now rides in the branch's first host call
-- (wasmtx.enter, set up by the business database, which checks the host key)
-- instead of a call of its own before COMMIT: one round trip less per branch.
-- It is written before the guest runs; a branch that rolls back takes it
-- with it, so it is committed exactly when the branch's work is.
-- wasmtx.apply_progress has no key check: nobody but its owner may call it
-- (wasmtx.enter, SECURITY DEFINER with the same owner, does). It runs with
-- its caller's search_path, which wasmtx.enter pins to pg_catalog, pg_temp
-- (a SET clause of its own would cost a settings save and restore per call).
--   {"create": {transaction columns..., "ops": [op columns...]}}  inserts a new
--     transaction (SQLSTATE WXGID when the gid exists);
--   {"save": {"gid", "epoch", "owner", mutable columns..., "release", "ops": [...]}}
--     is the fenced update (SQLSTATE WXFEN when the lease is stale) and the
--     op upserts.
-- Payloads travel hex-encoded.
CREATE OR REPLACE FUNCTION wasmtx.apply_progress(p jsonb) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    t jsonb;
    n int;
BEGIN
    IF p ? 'create' THEN
        t := p -> 'create';
        INSERT INTO wasmtx.transactions (gid, mode, status, options, next_due, attempts, last_error,
            rollback_reason, created_at, updated_at, finished_at, lease_owner, lease_expires, epoch)
        VALUES (t->>'gid', t->>'mode', t->>'status', t->>'options', (t->>'next_due')::bigint,
            (t->>'attempts')::bigint, t->>'last_error', t->>'rollback_reason', (t->>'created_at')::bigint,
            (t->>'updated_at')::bigint, (t->>'finished_at')::bigint, t->>'lease_owner',
            (t->>'lease_expires')::bigint, (t->>'epoch')::bigint)
        ON CONFLICT (gid) DO NOTHING;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n = 0 THEN
            RAISE EXCEPTION 'transaction % exists already', t->>'gid' USING ERRCODE = 'WXGID';
        END IF;
        INSERT INTO wasmtx.branch_ops (gid, branch_id, op, module, digest, database, function, payload,
            status, attempts, last_error, updated_at)
        SELECT t->>'gid', o->>'branch_id', o->>'op', o->>'module', o->>'digest', o->>'database',
            o->>'function', decode(o->>'payload', 'hex'), o->>'status', (o->>'attempts')::bigint,
            o->>'last_error', (o->>'updated_at')::bigint
        FROM jsonb_array_elements(t->'ops') WITH ORDINALITY AS e(o, i) ORDER BY i;
    ELSE
        t := p -> 'save';
        UPDATE wasmtx.transactions SET status = t->>'status', next_due = (t->>'next_due')::bigint,
            attempts = (t->>'attempts')::bigint, last_error = t->>'last_error',
            rollback_reason = t->>'rollback_reason', updated_at = (t->>'updated_at')::bigint,
            finished_at = (t->>'finished_at')::bigint,
            lease_expires = CASE WHEN (t->>'release')::boolean THEN NULL ELSE (t->>'lease_expires')::bigint END,
            lease_owner = CASE WHEN (t->>'release')::boolean THEN NULL ELSE lease_owner END
        WHERE gid = t->>'gid' AND epoch = (t->>'epoch')::bigint AND lease_owner = t->>'owner';
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n = 0 THEN
            RAISE EXCEPTION 'transaction % is leased by another owner', t->>'gid' USING ERRCODE = 'WXFEN';
        END IF;
        INSERT INTO wasmtx.branch_ops (gid, branch_id, op, module, digest, database, function, payload,
            status, attempts, last_error, updated_at)
        SELECT t->>'gid', o->>'branch_id', o->>'op', o->>'module', o->>'digest', o->>'database',
            o->>'function', decode(o->>'payload', 'hex'), o->>'status', (o->>'attempts')::bigint,
            o->>'last_error', (o->>'updated_at')::bigint
        FROM jsonb_array_elements(t->'ops') WITH ORDINALITY AS e(o, i) ORDER BY i
        ON CONFLICT (gid, branch_id, op) DO UPDATE SET status = excluded.status,
            attempts = excluded.attempts, last_error = excluded.last_error, updated_at = excluded.updated_at;
    END IF;
END $$;
REVOKE ALL ON FUNCTION wasmtx.apply_progress(jsonb) FROM PUBLIC;
DROP FUNCTION IF EXISTS wasmtx.progress(text, bigint, jsonb);
