//! A fresh PostgreSQL database per test.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// A database created for one test and dropped when this value drops.
pub struct PgTestDb {
    admin_url: String,
    name: String,
    url: String,
}

/// The PostgreSQL server the tests use (`GLUCOCHAIN_TEST_PG`, default the
/// local one), as a URL of its `postgres` database.
pub fn admin_url() -> String {
    std::env::var("GLUCOCHAIN_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn with_database(url: &str, db: &str) -> String {
    match url.rfind('/') {
        Some(i) if url[..i].contains("://") && url[i..].len() > 1 && !url[..i].ends_with('/') => {
            let tail = &url[i + 1..];
            let query = tail.find('?').map(|q| &tail[q..]).unwrap_or("");
            format!("{}/{db}{query}", &url[..i])
        }
        _ => format!("{}/{db}", url.trim_end_matches('/')),
    }
}

impl PgTestDb {
    /// Creates a database with a unique name on the test server.
    pub async fn create() -> anyhow::Result<Self> {
        let admin_url = admin_url();
        let mut conn = PgConnection::connect(&admin_url).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach PostgreSQL at {admin_url}: {e} (start it, e.g. `pg_ctlcluster 15 main start`, or set GLUCOCHAIN_TEST_PG)"
            )
        })?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let name = format!("gc_test_{}_{}", std::process::id(), nanos % 1_000_000_000_000);
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
        conn.close().await?;
        let url = with_database(&admin_url, &name);
        Ok(PgTestDb { admin_url, name, url })
    }

    /// URL of the test database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Name of the test database.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_swapped_in_urls() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
    }
}
