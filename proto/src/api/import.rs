//! `POST /admin/import`: records read from an original Retz 0.4 database (by
//! `retz-admin import`) and what the server made of them.

use serde::{Deserialize, Serialize};

use super::{Application, Job, User};

/// The `idempotency_key` of an imported job: `retz-0.4-import:<original id>` (unique per
/// owner), so importing the same database again imports nothing new.
pub fn import_key(original_id: u64) -> String {
    format!("retz-0.4-import:{original_id}")
}

/// One original job and the access key that owns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedJob {
    /// Its owner's access key (the original application's `owner`).
    pub owner: String,
    /// The job as the original stored it; `id` is the original id, `state` the original
    /// state.
    pub job: Job,
}

/// Body of `POST /admin/import`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportRequest {
    /// Users, with their original keys and secrets.
    #[serde(default)]
    pub users: Vec<User>,
    /// Applications, with their original owners.
    #[serde(default)]
    pub applications: Vec<Application>,
    /// Jobs.
    #[serde(default)]
    pub jobs: Vec<ImportedJob>,
    /// Only report what would be imported.
    #[serde(default)]
    pub dry_run: bool,
}

/// How many records of a kind were imported, were there already, or were refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportCounts {
    /// New here (or, in a dry run, would be).
    pub imported: u64,
    /// Already here (imported before, or the same key/name exists): left as it is.
    pub present: u64,
    /// Refused; each has a line in `notes`.
    pub refused: u64,
}

/// Answer to `POST /admin/import`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportResponse {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Users.
    pub users: ImportCounts,
    /// Applications.
    pub applications: ImportCounts,
    /// Jobs.
    pub jobs: ImportCounts,
    /// Of the imported jobs, how many are QUEUED here (they will run).
    pub queued: u64,
    /// Imported jobs whose original id was taken here: `[original, new]`.
    #[serde(default)]
    pub renumbered: Vec<[u64; 2]>,
    /// One line per refused or changed record.
    #[serde(default)]
    pub notes: Vec<String>,
}
