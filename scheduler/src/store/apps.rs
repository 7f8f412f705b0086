//! Applications: create-or-overwrite by their owner only, read, list by owner, delete.

use retz_proto::api::Application;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};

fn decode_app(row: &AnyRow) -> Result<Application, StoreError> {
    let appid: String = row.try_get("appid")?;
    let json: String = row.try_get("json")?;
    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
        what: "application",
        key: appid,
        detail: e.to_string(),
    })
}

impl Store {
    /// Creates `app`, or overwrites it if `app.owner` owns the stored one. Returns
    /// `false` (and changes nothing) when the name belongs to another owner. Atomic: two
    /// users racing for a new name cannot both win.
    pub async fn put_app(&self, app: &Application) -> Result<bool, StoreError> {
        let json = serde_json::to_string(app).map_err(|e| StoreError::Corrupt {
            what: "application",
            key: app.appid.clone(),
            detail: e.to_string(),
        })?;
        self.inner.apps.invalidate(&app.appid);
        let done = sqlx::query(
            "INSERT INTO applications (appid, owner, json) VALUES ($1, $2, $3) \
             ON CONFLICT (appid) DO UPDATE SET json = excluded.json \
             WHERE applications.owner = excluded.owner",
        )
        .bind(&app.appid)
        .bind(&app.owner)
        .bind(json)
        .execute(self.pool())
        .await?;
        self.inner.apps.invalidate(&app.appid);
        Ok(done.rows_affected() == 1)
    }

    /// The application named `name` (cached; see the module doc of `store`).
    pub async fn get_app(&self, name: &str) -> Result<Option<Application>, StoreError> {
        if let Some(app) = self.inner.apps.get(name) {
            return Ok(Some(app));
        }
        let generation = self.inner.apps.generation();
        let row = sqlx::query("SELECT appid, json FROM applications WHERE appid = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        let app = row.as_ref().map(decode_app).transpose()?;
        if let Some(a) = &app {
            self.inner.apps.fill(name, a, generation);
        }
        Ok(app)
    }

    /// `owner`'s applications, by name.
    pub async fn list_apps(&self, owner: &str) -> Result<Vec<Application>, StoreError> {
        let rows =
            sqlx::query("SELECT appid, json FROM applications WHERE owner = $1 ORDER BY appid")
                .bind(owner)
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(decode_app).collect()
    }

    /// Deletes the application `name`; returns whether it existed.
    pub async fn delete_app(&self, name: &str) -> Result<bool, StoreError> {
        self.inner.apps.invalidate(name);
        let done = sqlx::query("DELETE FROM applications WHERE appid = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        self.inner.apps.invalidate(name);
        Ok(done.rows_affected() == 1)
    }
}
