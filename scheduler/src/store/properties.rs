//! Server properties: a small key/value table; holds the Mesos framework id so that a
//! restarted server re-subscribes as the same framework.

use super::{Store, StoreError};

const FRAMEWORK_ID: &str = "FrameworkID";

impl Store {
    /// The value of property `key`.
    pub async fn property(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM properties WHERE key = $1")
                .bind(key)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Sets property `key` to `value` (insert or overwrite).
    pub async fn set_property(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO properties (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The Mesos framework id the server last subscribed with.
    pub async fn framework_id(&self) -> Result<Option<String>, StoreError> {
        self.property(FRAMEWORK_ID).await
    }

    /// Records the Mesos framework id.
    pub async fn set_framework_id(&self, id: &str) -> Result<(), StoreError> {
        self.set_property(FRAMEWORK_ID, id).await
    }
}
