//! The log file of one job: timestamped lines, names escaped so the file stays valid UTF-8
//! without NUL or control characters. Read back through `Job.ReadLog`.

use super::names::{cut_utf8, escape_for_log};
use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::Mutex,
};

/// An open job log.
#[derive(Debug)]
pub struct JobLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

/// Escapes a path or name for a log line.
#[must_use]
pub fn esc(s: &str) -> String {
    escape_for_log(s.as_bytes())
}

impl JobLog {
    /// Opens (creating, mode 0640) the log at `path` for appending.
    #[must_use]
    pub fn open(path: &Path) -> Self {
        let file = OpenOptions::new().create(true).append(true).mode(0o640).open(path);
        if let Err(e) = &file {
            tracing::warn!(path = %path.display(), error = %e, "cannot open the job log");
        }
        Self { path: path.to_owned(), file: Mutex::new(file.ok()) }
    }

    /// The log file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line, with the local time in front. Control characters in `msg` (other than
    /// the text itself) are escaped by the callers through [`esc`].
    pub fn line(&self, msg: &str) {
        let now = jiff::tz::TimeZone::system().to_datetime(jiff::Timestamp::now()).strftime("%Y-%m-%d %H:%M:%S");
        let mut guard = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(f) = guard.as_mut() {
            let _ = writeln!(f, "{now} {msg}");
        }
    }
}

/// Reads at most `max` bytes of the log at `path` from `offset`, cut on a character boundary;
/// returns the text and the next offset. A missing log reads as empty.
///
/// # Errors
/// The log exists but cannot be read.
pub fn read(path: &Path, offset: u64, max: u32) -> std::io::Result<(String, u64)> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((String::new(), offset)),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if offset >= len {
        return Ok((String::new(), len.max(offset)));
    }
    f.seek(SeekFrom::Start(offset))?;
    // At least one whole character (4 bytes at most), so that a reader always moves on.
    let want = usize::try_from((len - offset).min(u64::from(max.clamp(4, 16 << 20)))).unwrap_or(0);
    let mut buf = vec![0u8; want];
    f.read_exact(&mut buf)?;
    let cut = cut_utf8(&buf, buf.len());
    buf.truncate(cut);
    let text = match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => escape_for_log(e.as_bytes()),
    };
    Ok((text, offset + cut as u64))
}
