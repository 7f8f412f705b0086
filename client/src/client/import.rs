//! `POST /admin/import` (admin key): records of an original Retz database.

use reqwest::Method;
use retz_proto::api::{ImportRequest, ImportResponse};

use super::{Client, Retry};
use crate::Error;

impl Client {
    /// Sends `req` to `POST /admin/import`. Safe to retry: the server imports each
    /// record once.
    pub async fn import(&self, req: &ImportRequest) -> Result<ImportResponse, Error> {
        self.call(
            Method::POST,
            "/admin/import",
            "",
            Some(req),
            Retry::Idempotent,
        )
        .await
    }
}
