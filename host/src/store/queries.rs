//! The coordinator SQL that is the same text on SQLite and Postgres (both
//! take `$N` placeholders), written once. [`shared_queries!`] expands it for
//! one concrete sqlx database type inside each backend file, so every trait
//! bound is concrete and the two backends cannot drift apart.

/// Expands, for `$db` (`sqlx::Sqlite` or `sqlx::Postgres`), free functions
/// over an executor or connection: modules (`insert_module`, `module`,
/// `module_version`, `modules`, `module_bytes`), ops (`insert_op`) and
/// transactions (`insert_state`, `select_state`, `list`, `claim`, `update_state`, `release`,
/// `release_all`, `unfinished`). Only what differs (claiming due work, which
/// pool or lock a call takes) stays in the backend files.
macro_rules! shared_queries {
    ($db:ty) => {
        /// Stores the bytes once per digest and appends a version row.
        async fn insert_module(
            db: &mut <$db as sqlx::Database>::Connection,
            record: &ModuleRecord,
            bytes: &[u8],
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO module_blobs (digest, bytes, size, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(record.digest.as_str())
            .bind(bytes)
            .bind(to_i64(bytes.len() as u64))
            .bind(record.created_at.0)
            .execute(&mut *db)
            .await
            .map_err(db_error)?;
            sqlx::query(
                "INSERT INTO module_versions \
                 (name, digest, world, functions, database, instance_reuse, size, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(record.name.as_str())
            .bind(record.digest.as_str())
            .bind(record.world.as_str())
            .bind(functions_json(&record.functions)?)
            .bind(record.database.as_str())
            .bind(record.instance_reuse.map(i64::from))
            .bind(to_i64(record.size))
            .bind(record.created_at.0)
            .execute(&mut *db)
            .await
            .map_err(db_error)?;
            Ok(())
        }

        async fn module<'e>(
            exec: impl sqlx::Executor<'e, Database = $db>,
            name: &ModuleName,
        ) -> Result<Option<ModuleRecord>, StoreError> {
            sqlx::query_as::<_, ModuleRow>(concat!(
                "SELECT ",
                module_columns!(),
                " FROM module_versions WHERE name = $1 ORDER BY id DESC LIMIT 1"
            ))
            .bind(name.as_str())
            .fetch_optional(exec)
            .await
            .map_err(db_error)?
            .map(ModuleRow::decode)
            .transpose()
        }

        async fn module_version<'e>(
            exec: impl sqlx::Executor<'e, Database = $db>,
            name: &ModuleName,
            digest: &Digest,
        ) -> Result<Option<ModuleRecord>, StoreError> {
            sqlx::query_as::<_, ModuleRow>(concat!(
                "SELECT ",
                module_columns!(),
                " FROM module_versions WHERE name = $1 AND digest = $2 ORDER BY id DESC LIMIT 1"
            ))
            .bind(name.as_str())
            .bind(digest.as_str())
            .fetch_optional(exec)
            .await
            .map_err(db_error)?
            .map(ModuleRow::decode)
            .transpose()
        }

        async fn modules<'e>(exec: impl sqlx::Executor<'e, Database = $db>) -> Result<Vec<ModuleRecord>, StoreError> {
            sqlx::query_as::<_, ModuleRow>(concat!(
                "SELECT ",
                module_columns!(),
                " FROM module_versions AS v \
                 WHERE v.id = (SELECT MAX(id) FROM module_versions WHERE name = v.name) \
                 ORDER BY name"
            ))
            .fetch_all(exec)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(ModuleRow::decode)
            .collect()
        }

        async fn module_bytes<'e>(
            exec: impl sqlx::Executor<'e, Database = $db>,
            digest: &Digest,
        ) -> Result<Option<Vec<u8>>, StoreError> {
            sqlx::query_scalar::<_, Vec<u8>>("SELECT bytes FROM module_blobs WHERE digest = $1")
                .bind(digest.as_str())
                .fetch_optional(exec)
                .await
                .map_err(db_error)
        }

        /// Inserts one op; with `upsert`, an op already stored gets its mutable
        /// fields (status, attempts, last_error, updated_at) overwritten instead.
        async fn insert_op(
            db: &mut <$db as sqlx::Database>::Connection,
            gid: &Gid,
            op: &BranchOp,
            upsert: bool,
        ) -> Result<(), StoreError> {
            const INSERT: &str = "INSERT INTO branch_ops (gid, branch_id, op, module, digest, database, function, \
                                  payload, status, attempts, last_error, updated_at) \
                                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
            const UPSERT: &str = "INSERT INTO branch_ops (gid, branch_id, op, module, digest, database, function, \
                                  payload, status, attempts, last_error, updated_at) \
                                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                                  ON CONFLICT (gid, branch_id, op) DO UPDATE SET status = excluded.status, \
                                  attempts = excluded.attempts, last_error = excluded.last_error, \
                                  updated_at = excluded.updated_at";
            sqlx::query(if upsert { UPSERT } else { INSERT })
                .bind(gid.as_str())
                .bind(op.branch_id.as_str())
                .bind(op.op.as_str())
                .bind(op.target.module.as_str())
                .bind(op.target.digest.as_str())
                .bind(op.target.database.as_str())
                .bind(op.target.function.as_str())
                .bind(op.payload.as_slice())
                .bind(op.status.as_str())
                .bind(i64::from(op.attempts))
                .bind(op.last_error.as_deref())
                .bind(op.updated_at.0)
                .execute(db)
                .await
                .map_err(db_error)?;
            Ok(())
        }

        /// Inserts a new transaction and its ops in the caller's local
        /// transaction; `false` (nothing written) if the gid exists.
        async fn insert_state(
            db: &mut <$db as sqlx::Database>::Connection,
            state: &TransactionState,
        ) -> Result<bool, StoreError> {
            let t = &state.transaction;
            let inserted = sqlx::query(
                "INSERT INTO transactions (gid, mode, status, options, next_due, attempts, last_error, \
                 rollback_reason, created_at, updated_at, finished_at, lease_owner, lease_expires, epoch) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (gid) DO NOTHING",
            )
            .bind(t.gid.as_str())
            .bind(t.mode.as_str())
            .bind(t.status.as_str())
            .bind(options_json(&t.options)?)
            .bind(t.next_due.map(|m| m.0))
            .bind(i64::from(t.attempts))
            .bind(t.last_error.as_deref())
            .bind(t.rollback_reason.as_deref())
            .bind(t.created_at.0)
            .bind(t.updated_at.0)
            .bind(t.finished_at.map(|m| m.0))
            .bind(t.lease_owner.as_deref())
            .bind(t.lease_expires.map(|m| m.0))
            .bind(t.epoch)
            .execute(&mut *db)
            .await
            .map_err(db_error)?
            .rows_affected();
            if inserted == 0 {
                return Ok(false);
            }
            for op in &state.ops {
                insert_op(&mut *db, &t.gid, op, false).await?;
            }
            Ok(true)
        }

        /// The transaction row and its ops, read on one connection (the caller
        /// makes it one snapshot).
        async fn select_state(
            db: &mut <$db as sqlx::Database>::Connection,
            gid: &Gid,
        ) -> Result<Option<TransactionState>, StoreError> {
            let tx = sqlx::query_as::<_, TransactionRow>(concat!(
                "SELECT ",
                transaction_columns!(),
                " FROM transactions WHERE gid = $1"
            ))
            .bind(gid.as_str())
            .fetch_optional(&mut *db)
            .await
            .map_err(db_error)?;
            let Some(tx) = tx else { return Ok(None) };
            let ops = sqlx::query_as::<_, OpRow>(concat!(
                "SELECT ",
                op_columns!(),
                " FROM branch_ops WHERE gid = $1 ORDER BY id"
            ))
            .bind(gid.as_str())
            .fetch_all(&mut *db)
            .await
            .map_err(db_error)?;
            decode_state(tx, ops).map(Some)
        }

        async fn list<'e>(
            exec: impl sqlx::Executor<'e, Database = $db>,
            limit: u32,
        ) -> Result<Vec<Transaction>, StoreError> {
            sqlx::query_as::<_, TransactionRow>(concat!(
                "SELECT ",
                transaction_columns!(),
                " FROM transactions ORDER BY created_at DESC, id DESC LIMIT $1"
            ))
            .bind(limit_i64(limit))
            .fetch_all(exec)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(TransactionRow::decode)
            .collect()
        }

        async fn claim<'e>(
            exec: impl sqlx::Executor<'e, Database = $db>,
            gid: &Gid,
            owner: &str,
            now: Millis,
            lease_until: Millis,
        ) -> Result<Option<Lease>, StoreError> {
            let epoch = sqlx::query_scalar::<_, i64>(
                "UPDATE transactions SET lease_owner = $2, lease_expires = $4, epoch = epoch + 1 \
                 WHERE gid = $1 \
                   AND status NOT IN ('succeeded', 'failed') \
                   AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires IS NULL OR lease_expires < $3) \
                 RETURNING epoch",
            )
            .bind(gid.as_str())
            .bind(owner)
            .bind(now.0)
            .bind(lease_until.0)
            .fetch_optional(exec)
            .await
            .map_err(db_error)?;
            Ok(epoch.map(|epoch| Lease { gid: gid.clone(), owner: owner.to_owned(), epoch }))
        }

        /// The fenced write of `save`, inside the caller's local transaction:
        /// the row only if epoch and owner still match, then the ops. With
        /// `release`, the same write gives the lease up.
        async fn update_state(
            db: &mut <$db as sqlx::Database>::Connection,
            lease: &Lease,
            tx: &Transaction,
            ops: &[BranchOp],
            release: bool,
        ) -> Result<(), StoreError> {
            let updated = sqlx::query(
                "UPDATE transactions SET status = $4, next_due = $5, attempts = $6, last_error = $7, \
                 rollback_reason = $8, updated_at = $9, finished_at = $10, \
                 lease_expires = CASE WHEN $12 THEN NULL ELSE $11 END, \
                 lease_owner = CASE WHEN $12 THEN NULL ELSE lease_owner END \
                 WHERE gid = $1 AND epoch = $2 AND lease_owner = $3",
            )
            .bind(lease.gid.as_str())
            .bind(lease.epoch)
            .bind(lease.owner.as_str())
            .bind(tx.status.as_str())
            .bind(tx.next_due.map(|m| m.0))
            .bind(i64::from(tx.attempts))
            .bind(tx.last_error.as_deref())
            .bind(tx.rollback_reason.as_deref())
            .bind(tx.updated_at.0)
            .bind(tx.finished_at.map(|m| m.0))
            .bind(tx.lease_expires.map(|m| m.0))
            .bind(release)
            .execute(&mut *db)
            .await
            .map_err(db_error)?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::Fenced { gid: lease.gid.clone() });
            }
            for op in ops {
                insert_op(&mut *db, &lease.gid, op, true).await?;
            }
            Ok(())
        }

        async fn release<'e>(exec: impl sqlx::Executor<'e, Database = $db>, lease: &Lease) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE transactions SET lease_owner = NULL, lease_expires = NULL \
                 WHERE gid = $1 AND epoch = $2 AND lease_owner = $3",
            )
            .bind(lease.gid.as_str())
            .bind(lease.epoch)
            .bind(lease.owner.as_str())
            .execute(exec)
            .await
            .map_err(db_error)?;
            Ok(())
        }

        async fn release_all<'e>(exec: impl sqlx::Executor<'e, Database = $db>, owner: &str) -> Result<u64, StoreError> {
            let released = sqlx::query(
                "UPDATE transactions SET lease_owner = NULL, lease_expires = NULL, epoch = epoch + 1 \
                 WHERE lease_owner = $1",
            )
            .bind(owner)
            .execute(exec)
            .await
            .map_err(db_error)?
            .rows_affected();
            Ok(released)
        }

        async fn unfinished<'e>(exec: impl sqlx::Executor<'e, Database = $db>, limit: u32) -> Result<Vec<Gid>, StoreError> {
            let gids = sqlx::query_scalar::<_, String>(
                "SELECT gid FROM transactions WHERE status NOT IN ('succeeded', 'failed') ORDER BY id LIMIT $1",
            )
            .bind(limit_i64(limit))
            .fetch_all(exec)
            .await
            .map_err(db_error)?;
            Ok(gids.into_iter().map(Gid::from_trusted).collect())
        }
    };
}

pub(crate) use shared_queries;
