//! Reading a sandbox file of a job piece by piece ([`read_file`]), optionally following
//! it as it grows until the job ends (`get-file --poll`, `run`).
//!
//! Byte-exact: every piece is written out as the bytes it holds
//! ([`FileChunk::bytes`](retz_proto::api::FileChunk::bytes): text, or base64 for bytes
//! that are not UTF-8), and the offset advances by their number, so the output is the
//! file byte for byte whatever it holds.
//!
//! Polling ([`Backoff::poll`]) waits a few milliseconds after a read that brought
//! nothing, doubling up to 32 s, and starts over whenever new bytes arrive: a short job
//! is followed at once, a long quiet one costs a request every 32 s. The server reads
//! the job before the file, so an empty piece with the job ended is the end of the file
//! and the follow stops there.

use std::io::Write;
use std::time::Duration;

use retz_proto::api::Job;
use tokio::time::Instant;

use crate::Client;
use crate::backoff::Backoff;
use crate::cli::exit::CliError;

/// How many bytes one `/file` call asks for.
pub const CHUNK: u64 = 64 * 1024;

/// What to read.
#[derive(Clone, Debug)]
pub struct FileRead<'a> {
    /// Job id.
    pub id: u64,
    /// Sandbox path (`stdout`, `stderr`, ...).
    pub path: &'a str,
    /// Where to start.
    pub offset: u64,
    /// At most this many bytes; `None` = to the end.
    pub limit: Option<u64>,
    /// Follow the file until the job ends.
    pub poll: bool,
    /// Stop polling at this time.
    pub deadline: Option<Instant>,
}

/// How a read ended.
#[derive(Clone, Debug)]
pub struct ReadEnd {
    /// The job as last seen.
    pub job: Job,
    /// Bytes written to the output.
    pub bytes: u64,
    /// The next offset.
    pub offset: u64,
    /// Polling stopped at the deadline before the job ended.
    pub timed_out: bool,
    /// The server had no such file (or the job had not started) at the last read.
    pub absent: bool,
}

/// Reads `what` into `out` (flushing after every piece, so a pipe sees output as it is
/// written); `on_wait` is called with the job before every pause.
pub async fn read_file(
    client: &Client,
    what: &FileRead<'_>,
    out: &mut dyn Write,
    on_wait: &mut dyn FnMut(&Job),
) -> Result<ReadEnd, CliError> {
    let mut backoff = Backoff::poll();
    let mut offset = what.offset;
    let mut bytes = 0u64;
    loop {
        let want = match what.limit {
            Some(l) => l.saturating_sub(bytes).min(CHUNK),
            None => CHUNK,
        };
        let resp = if want == 0 {
            None
        } else {
            Some(
                client
                    .get_file(what.id, what.path, offset, Some(want))
                    .await?,
            )
        };
        let Some(resp) = resp else {
            let job = client
                .get_job(what.id)
                .await?
                .job
                .ok_or_else(|| no_such_job(client, what.id))?;
            return Ok(end(job, bytes, offset, false, false));
        };
        let absent = resp.file.is_none();
        let data = match &resp.file {
            Some(f) => f.bytes().map_err(|e| {
                CliError::Refused(format!(
                    "the server sent an unreadable piece of {}: {e}",
                    what.path
                ))
            })?,
            None => Default::default(),
        };
        if !data.is_empty() {
            out.write_all(&data)
                .and_then(|()| out.flush())
                .or_else(ignore_broken_pipe)
                .map_err(|e| CliError::io("cannot write the file's content", &e))?;
            offset += data.len() as u64;
            bytes += data.len() as u64;
            backoff.reset();
            continue;
        }
        let job = resp.job;
        // Ended when it was read, before the file: nothing more will come.
        if !what.poll || job.state.is_terminal() {
            return Ok(end(job, bytes, offset, false, absent));
        }
        let mut pause = backoff.next_delay();
        if let Some(d) = what.deadline {
            let now = Instant::now();
            if now >= d {
                return Ok(end(job, bytes, offset, true, absent));
            }
            pause = pause.min(d - now).max(Duration::from_millis(1));
        }
        on_wait(&job);
        tokio::time::sleep(pause).await;
    }
}

fn end(job: Job, bytes: u64, offset: u64, timed_out: bool, absent: bool) -> ReadEnd {
    ReadEnd {
        job,
        bytes,
        offset,
        timed_out,
        absent,
    }
}

/// A closed pipe (`| head`) is not an error of ours: stop writing quietly.
pub fn ignore_broken_pipe(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e)
    }
}

/// The error for a job id that is not the caller's.
pub fn no_such_job(client: &Client, id: u64) -> CliError {
    CliError::Refused(format!(
        "no job {id} of yours on {}; see the ids with retz-client list --states ALL",
        client.server()
    ))
}
