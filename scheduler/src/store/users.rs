//! Users (access keys): create with random key and secret, read, list, enable/disable.

use retz_proto::api::User;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};

fn decode_user(row: &AnyRow) -> Result<User, StoreError> {
    let enabled: i64 = row.try_get("enabled")?;
    Ok(User {
        key_id: row.try_get("key_id")?,
        secret: row.try_get("secret")?,
        enabled: enabled != 0,
        info: row.try_get("info")?,
    })
}

/// 32 hex digits from the operating system's CSPRNG (a v4 UUID's random bits).
fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Store {
    /// Creates an enabled user with a fresh random key and secret.
    pub async fn create_user(&self, info: &str) -> Result<User, StoreError> {
        let user = User {
            key_id: random_hex(),
            secret: random_hex(),
            enabled: true,
            info: info.to_owned(),
        };
        self.put_user(&user).await?;
        Ok(user)
    }

    /// Stores `user` unless a user with its key exists; returns whether it was stored.
    /// (For the admin user a server creates at first start from its configured key.)
    pub async fn put_user(&self, user: &User) -> Result<bool, StoreError> {
        self.inner.users.invalidate(&user.key_id);
        let done = sqlx::query(
            "INSERT INTO users (key_id, secret, enabled, info) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key_id) DO NOTHING",
        )
        .bind(&user.key_id)
        .bind(&user.secret)
        .bind(i64::from(user.enabled))
        .bind(&user.info)
        .execute(self.pool())
        .await?;
        self.inner.users.invalidate(&user.key_id);
        Ok(done.rows_affected() == 1)
    }

    /// The user with access key `key` (cached; see the module doc of `store`).
    pub async fn get_user(&self, key: &str) -> Result<Option<User>, StoreError> {
        if let Some(user) = self.inner.users.get(key) {
            return Ok(Some(user));
        }
        let generation = self.inner.users.generation();
        let row = sqlx::query("SELECT key_id, secret, enabled, info FROM users WHERE key_id = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        let user = row.as_ref().map(decode_user).transpose()?;
        if let Some(u) = &user {
            self.inner.users.fill(key, u, generation);
        }
        Ok(user)
    }

    /// Every user, by key.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query("SELECT key_id, secret, enabled, info FROM users ORDER BY key_id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(decode_user).collect()
    }

    /// Enables or disables the user `key`; returns it as stored now, `None` if absent.
    pub async fn set_user_enabled(
        &self,
        key: &str,
        enabled: bool,
    ) -> Result<Option<User>, StoreError> {
        self.inner.users.invalidate(key);
        sqlx::query("UPDATE users SET enabled = $1 WHERE key_id = $2")
            .bind(i64::from(enabled))
            .bind(key)
            .execute(self.pool())
            .await?;
        self.inner.users.invalidate(key);
        self.get_user(key).await
    }
}
