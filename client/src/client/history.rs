//! `GET /admin/history` (admin key): the job history as JSON lines, one per job that
//! started and ended (the format is `sim/README.md`'s "Job history format").

use std::io::Write;

use reqwest::Method;

use super::{Client, Retry};
use crate::Error;
use crate::query;

impl Client {
    /// Streams the history of jobs that ended at or after `since` (a date `YYYY-MM-DD` or
    /// an RFC 3339 time, as the server reads it), of application `app`, into `out` as it
    /// arrives; returns how many lines (jobs) were written. A transfer the server cut
    /// off, or one that does not end with a whole line, is an error.
    pub async fn export_history<W: Write + Send + ?Sized>(
        &self,
        since: Option<&str>,
        app: Option<&str>,
        out: &mut W,
    ) -> Result<u64, Error> {
        let mut params = Vec::new();
        if let Some(s) = since {
            params.push(("since", s));
        }
        if let Some(a) = app {
            params.push(("app", a));
        }
        let q = query::build(&params);
        let (res, mut resp) = self
            .send(
                Method::GET,
                "/admin/history",
                &q,
                None,
                Retry::Idempotent,
                false,
            )
            .await?;
        let (mut lines, mut last) = (0u64, b'\n');
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(&res, &e))? {
            out.write_all(&chunk).map_err(|source| Error::Write {
                resource: res.clone(),
                source,
            })?;
            lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            if let Some(&b) = chunk.last() {
                last = b;
            }
        }
        out.flush().map_err(|source| Error::Write {
            resource: res.clone(),
            source,
        })?;
        if last != b'\n' {
            return Err(self.decode("GET", &res, &"the history ends inside a line"));
        }
        Ok(lines)
    }
}
