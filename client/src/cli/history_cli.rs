//! `retz-admin export-history [--since T] [--app A] [--out FILE]`: the job history as
//! JSON lines (one per job that started and ended; `sim/README.md`, "Job history
//! format"), on stdout or into FILE. FILE is written whole or not at all: the lines go
//! to a temporary file beside it, renamed over FILE only once the server sent them all.

use std::io::Write;
use std::path::Path;

use crate::Client;
use crate::cli::exit::CliError;

/// Runs the export; the number of lines goes to stderr when writing a file.
pub async fn run(
    client: &Client,
    since: Option<&str>,
    app: Option<&str>,
    out: Option<&Path>,
) -> Result<u8, CliError> {
    let Some(path) = out else {
        let mut stdout = std::io::BufWriter::new(std::io::stdout());
        return match client.export_history(since, app, &mut stdout).await {
            Ok(_) => Ok(0),
            // A closed pipe (`| head`) is not an error.
            Err(crate::Error::Write { source, .. })
                if source.kind() == std::io::ErrorKind::BrokenPipe =>
            {
                Ok(0)
            }
            Err(e) => Err(e.into()),
        };
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| CliError::Usage(format!("--out {}: not a file name", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.part-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let file = std::fs::File::create(&tmp)
        .map_err(|e| CliError::io(&format!("cannot create {}", tmp.display()), &e))?;
    let mut w = std::io::BufWriter::new(file);
    let done = async {
        let n = client.export_history(since, app, &mut w).await?;
        w.flush()
            .and_then(|()| w.get_ref().sync_all())
            .map_err(|e| CliError::io(&format!("cannot write {}", tmp.display()), &e))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| CliError::io(&format!("cannot write {}", path.display()), &e))?;
        Ok::<u64, CliError>(n)
    }
    .await;
    match done {
        Ok(n) => {
            eprintln!("retz-admin: {n} jobs written to {}", path.display());
            Ok(0)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
