//! The coordinator SQL that is the same text on SQLite and Postgres (both
//! take `$N` placeholders), written once. [`shared_queries!`] expands it for
//! one concrete sqlx database type inside each backend file, so every trait
//! bound is concrete and the two backends cannot drift apart.

/// Expands, for `$db` (`sqlx::Sqlite` or `sqlx::Postgres`), free functions
/// over an executor or connection: `insert_module`, `module`,
/// `module_version`, `modules`, `module_bytes` and `insert_op`.
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
    };
}

pub(crate) use shared_queries;
