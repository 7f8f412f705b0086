//! Per-user shares and quotas (admin key): `/admin/user/{key}/limits`, `/share`,
//! `/quota`. Every call is idempotent (a PUT sets, a DELETE clears), so retried.

use reqwest::Method;
use retz_proto::api::{Quota, SetShareRequest, UserLimitsResponse};

use super::{Client, Retry};
use crate::Error;
use crate::query;

impl Client {
    /// `GET /admin/user/{key}/limits`: the user's share and quota.
    pub async fn user_limits(&self, key: &str) -> Result<UserLimitsResponse, Error> {
        self.limits_call(Method::GET, key, "limits", None::<&()>)
            .await
    }

    /// `PUT /admin/user/{key}/share`: sets the user's fair-share weight.
    pub async fn set_share(&self, key: &str, weight: f64) -> Result<UserLimitsResponse, Error> {
        let req = SetShareRequest { weight };
        self.limits_call(Method::PUT, key, "share", Some(&req))
            .await
    }

    /// `PUT /admin/user/{key}/quota`: sets the limits given (0 = unlimited).
    pub async fn set_quota(&self, key: &str, quota: &Quota) -> Result<UserLimitsResponse, Error> {
        self.limits_call(Method::PUT, key, "quota", Some(quota))
            .await
    }

    /// `DELETE /admin/user/{key}/quota`: the user's limits back to the defaults.
    pub async fn clear_quota(&self, key: &str) -> Result<UserLimitsResponse, Error> {
        self.limits_call(Method::DELETE, key, "quota", None::<&()>)
            .await
    }

    async fn limits_call<B: serde::Serialize + ?Sized>(
        &self,
        method: Method,
        key: &str,
        what: &str,
        body: Option<&B>,
    ) -> Result<UserLimitsResponse, Error> {
        let path = format!("/admin/user/{}/{what}", query::encode(key));
        self.call(method, &path, "", body, Retry::Idempotent).await
    }
}
