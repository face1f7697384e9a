-- The transaction's progress, written by the host inside a branch's own
-- transaction when the branch's business database is the store's database
-- (co-location): the branch's writes, its barrier rows and this commit
-- together. Branch transactions run as the database's guest role, which has
-- no privilege on these tables: this function writes them as their owner,
-- and only for a caller that holds the host key (see the business database
-- setup in wasmtx, table wasmtx.host). It also seals the transaction, as
-- wasmtx.seal does. The same writes as the store's own SQL:
--   {"create": {transaction columns..., "ops": [op columns...]}}  inserts a new
--     transaction (SQLSTATE WXGID when the gid exists);
--   {"save": {"gid", "epoch", "owner", mutable columns..., "release", "ops": [...]}}
--     is the fenced update (SQLSTATE WXFEN when the lease is stale) and the
--     op upserts.
-- Payloads travel hex-encoded.
CREATE OR REPLACE FUNCTION wasmtx.progress(p_key text, p_txid bigint, p jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    h bytea;
    t jsonb;
    n int;
BEGIN
    SELECT key_hash INTO h FROM wasmtx.host WHERE id = 1;
    IF h IS NULL OR sha256(convert_to(p_key, 'UTF8')) IS DISTINCT FROM h THEN
        RAISE EXCEPTION 'wasmtx.progress is reserved for the host' USING ERRCODE = '42501';
    END IF;
    IF txid_current() <> p_txid THEN
        RAISE EXCEPTION 'the branch transaction ended before the host committed it; nothing was committed'
            USING ERRCODE = '2D000';
    END IF;
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
    PERFORM set_config('wasmtx.sealed', encode(h, 'hex'), true);
END $$;
REVOKE ALL ON FUNCTION wasmtx.progress(text, bigint, jsonb) FROM PUBLIC;
