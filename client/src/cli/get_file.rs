//! `retz-client get-file`: a job's file printed, followed (`--poll`), saved (`-R DIR`) or
//! downloaded raw (`--binary`), or as `--json`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::client_args::GetFileArgs;
use super::client_cli::emit_json;
use super::exit::CliError;
use super::follow::{FileRead, read_file};
use crate::Client;

/// The file a `-R DIR` download goes to: DIR plus the last component of `path`.
fn result_file(dir: &str, path: &str) -> Result<PathBuf, CliError> {
    let name = Path::new(path)
        .file_name()
        .ok_or_else(|| CliError::Usage(format!("--path {path:?} names no file")))?;
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::io(&format!("cannot create {}", dir.display()), &e))?;
    Ok(dir.join(name))
}

pub(super) async fn get_file(client: &Client, a: &GetFileArgs, json: bool) -> Result<u8, CliError> {
    if a.binary && a.resultdir == "-" {
        return Err(CliError::Usage(
            "--binary needs -R DIR (raw bytes are not printed); add -R .".into(),
        ));
    }
    if a.binary && a.poll {
        return Err(CliError::Usage(
            "--binary cannot be used with --poll".into(),
        ));
    }
    if json && (a.binary || a.poll) {
        return Err(CliError::Usage(
            "--json cannot be used with --binary or --poll".into(),
        ));
    }
    if a.length < -1 {
        return Err(CliError::Usage(format!(
            "--length {} is negative; give a byte count or -1 for the whole file",
            a.length
        )));
    }
    if a.binary {
        let target = result_file(&a.resultdir, &a.path)?;
        let n = client.download_to(a.id, &a.path, &target).await?;
        eprintln!("retz-client: saved {n} bytes to {}", target.display());
        return Ok(0);
    }
    let what = FileRead {
        id: a.id,
        path: &a.path,
        offset: a.offset,
        limit: u64::try_from(a.length).ok(),
        poll: a.poll,
        deadline: deadline(a.timeout),
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut file;
    let mut stdout;
    let out: &mut dyn Write = if json {
        &mut buf
    } else if a.resultdir == "-" {
        stdout = std::io::stdout();
        &mut stdout
    } else {
        let target = result_file(&a.resultdir, &a.path)?;
        file = std::fs::File::create(&target)
            .map_err(|e| CliError::io(&format!("cannot create {}", target.display()), &e))?;
        &mut file
    };
    let end = read_file(client, &what, out, &mut |_| {}).await?;
    if json {
        let resp = retz_proto::api::GetFileResponse {
            job: end.job,
            file: (!end.absent || !buf.is_empty())
                .then(|| retz_proto::api::FileChunk::whole(a.offset, &buf)),
        };
        emit_json(&resp)?;
        return Ok(0);
    }
    if end.timed_out {
        eprintln!(
            "retz-client: stopped following {} of job {} after {} min (job still {})",
            a.path, a.id, a.timeout, end.job.state
        );
        return Ok(super::exit::REFUSED);
    }
    if end.absent && end.bytes == 0 {
        return Err(CliError::Refused(format!(
            "job {} has no file {:?} yet (state {}); wait until it started or check --path with list-files",
            a.id, a.path, end.job.state
        )));
    }
    Ok(0)
}

/// The time `minutes` from now; `None` for no limit (0, negative, NaN). Capped at about
/// 19 years so that the addition cannot overflow.
pub(super) fn deadline(minutes: f64) -> Option<Instant> {
    (minutes > 0.0).then(|| Instant::now() + Duration::from_secs_f64(minutes.min(1.0e7) * 60.0))
}
