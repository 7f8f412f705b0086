//! Safe extraction of application archives (`.tar`, `.tar.gz`, `.tgz`).
//!
//! Every entry is checked before it is written: absolute paths, `..` components, hard
//! links leaving the archive's tree, and device or FIFO entries are refused with an error
//! naming the archive and the entry (nothing is silently skipped). Extraction itself uses
//! `tar`'s `unpack_in`, which also refuses to write through a symlink pointing outside the
//! destination. Ownership is not restored; permissions and mtimes are.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use tar::EntryType;

/// Archive formats the executor unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// Plain tar.
    Tar,
    /// Gzip-compressed tar.
    TarGz,
}

/// The archive kind implied by a file name, if any (case-insensitive).
pub fn kind_of(path: &Path) -> Option<ArchiveKind> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(ArchiveKind::TarGz)
    } else if name.ends_with(".tar") {
        Some(ArchiveKind::Tar)
    } else {
        None
    }
}

/// Why an archive could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing failed.
    #[error("cannot extract {archive}: {source}")]
    Io {
        archive: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An entry would land outside the destination.
    #[error("archive {archive} entry {entry:?} points outside the application directory; refused")]
    Traversal { archive: PathBuf, entry: String },
    /// An entry type the executor does not create.
    #[error("archive {archive} entry {entry:?} is a {kind}, which is not extracted; refused")]
    Unsupported {
        archive: PathBuf,
        entry: String,
        kind: &'static str,
    },
}

/// Extracts `archive` into the existing directory `dest`. Returns the number of entries.
pub fn extract(archive: &Path, kind: ArchiveKind, dest: &Path) -> Result<u64, ArchiveError> {
    let io_err = |source| ArchiveError::Io {
        archive: archive.to_owned(),
        source,
    };
    let file = BufReader::with_capacity(1 << 20, File::open(archive).map_err(io_err)?);
    let reader: Box<dyn Read> = match kind {
        ArchiveKind::Tar => Box::new(file),
        ArchiveKind::TarGz => Box::new(GzDecoder::new(file)),
    };
    extract_from(reader, archive, dest)
}

/// Extracts a tar stream (already decompressed) into `dest`; `name` is used in errors.
pub fn extract_from(reader: impl Read, name: &Path, dest: &Path) -> Result<u64, ArchiveError> {
    let io_err = |source| ArchiveError::Io {
        archive: name.to_owned(),
        source,
    };
    let mut tar = tar::Archive::new(reader);
    tar.set_preserve_permissions(true);
    tar.set_preserve_mtime(true);
    tar.set_overwrite(true);
    tar.set_unpack_xattrs(false);
    let mut count = 0;
    for entry in tar.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let path = entry.path().map_err(io_err)?.into_owned();
        let shown = path.display().to_string();
        let traversal = || ArchiveError::Traversal {
            archive: name.to_owned(),
            entry: shown.clone(),
        };
        if !stays_inside(&path) {
            return Err(traversal());
        }
        let kind = entry.header().entry_type();
        let unsupported = match kind {
            EntryType::Char => Some("character device"),
            EntryType::Block => Some("block device"),
            EntryType::Fifo => Some("FIFO"),
            _ => None,
        };
        if let Some(kind) = unsupported {
            return Err(ArchiveError::Unsupported {
                archive: name.to_owned(),
                entry: shown,
                kind,
            });
        }
        if kind == EntryType::Link {
            let target = entry.link_name().map_err(io_err)?;
            if !target.as_deref().is_some_and(stays_inside) {
                return Err(traversal());
            }
        }
        if !entry.unpack_in(dest).map_err(io_err)? {
            return Err(traversal());
        }
        count += 1;
    }
    Ok(count)
}

/// Whether a relative entry path stays inside the destination.
fn stays_inside(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    /// Builds a tar with raw header names (the `tar` builder refuses `..`, so we write
    /// the names ourselves, as a hostile archive would).
    fn raw_tar(entries: &[(&str, EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, data, link) in entries {
            let mut header = tar::Header::new_old();
            {
                let bytes = header.as_old_mut();
                bytes.name[..name.len()].copy_from_slice(name.as_bytes());
                if let Some(link) = link {
                    bytes.linkname[..link.len()].copy_from_slice(link.as_bytes());
                }
            }
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o755);
            header.set_cksum();
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            let pad = (512 - data.len() % 512) % 512;
            out.extend(std::iter::repeat_n(0u8, pad));
        }
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }

    #[test]
    fn kinds_by_name() {
        assert_eq!(kind_of(Path::new("/x/app.tar")), Some(ArchiveKind::Tar));
        assert_eq!(kind_of(Path::new("app.TAR.GZ")), Some(ArchiveKind::TarGz));
        assert_eq!(kind_of(Path::new("app.tgz")), Some(ArchiveKind::TarGz));
        assert_eq!(kind_of(Path::new("app.zip")), None);
        assert_eq!(kind_of(Path::new("app.gz")), None);
    }

    #[test]
    fn extracts_files_dirs_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let data = raw_tar(&[
            ("bin/", EntryType::Directory, b"", None),
            (
                "bin/run.sh",
                EntryType::Regular,
                b"#!/bin/sh\necho hi\n",
                None,
            ),
            ("bin/again", EntryType::Link, b"", Some("bin/run.sh")),
            ("lib", EntryType::Symlink, b"", Some("bin")),
        ]);
        let gz = {
            let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
            io::Write::write_all(&mut enc, &data).unwrap();
            enc.finish().unwrap()
        };
        let archive = tmp.path().join("app.tgz");
        std::fs::write(&archive, gz).unwrap();
        let dest = tmp.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        assert_eq!(extract(&archive, ArchiveKind::TarGz, &dest).unwrap(), 4);
        let script = dest.join("bin/run.sh");
        assert_eq!(
            std::fs::read_to_string(&script).unwrap(),
            "#!/bin/sh\necho hi\n"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&script).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert!(dest.join("bin/again").is_file());
        assert!(dest.join("lib/run.sh").is_file());
    }

    #[test]
    fn traversal_is_refused_with_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        let cases: Vec<Vec<u8>> = vec![
            raw_tar(&[("../evil", EntryType::Regular, b"x", None)]),
            raw_tar(&[("a/../../evil", EntryType::Regular, b"x", None)]),
            raw_tar(&[("/etc/evil", EntryType::Regular, b"x", None)]),
            raw_tar(&[("h", EntryType::Link, b"", Some("../../etc/passwd"))]),
            raw_tar(&[("h", EntryType::Link, b"", Some("/etc/passwd"))]),
            // A symlink out, then a write through it.
            raw_tar(&[
                ("out", EntryType::Symlink, b"", Some("..")),
                ("out/evil", EntryType::Regular, b"x", None),
            ]),
        ];
        for (i, data) in cases.into_iter().enumerate() {
            let err = extract_from(&data[..], Path::new("hostile.tar"), &dest).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("hostile.tar"), "case {i}: {msg}");
            assert!(!tmp.path().join("evil").exists(), "case {i}");
        }
        let err = extract_from(
            &raw_tar(&[("dev", EntryType::Char, b"", None)])[..],
            Path::new("d.tar"),
            &dest,
        )
        .unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let tmp = tempfile::tempdir().unwrap();
        for input in [&b"not a tar at all"[..], &[0xff; 600][..], &[][..]] {
            let _ = extract_from(input, Path::new("g.tar"), tmp.path());
        }
        let archive = tmp.path().join("bad.tgz");
        std::fs::write(&archive, b"\x1f\x8b garbage").unwrap();
        assert!(extract(&archive, ArchiveKind::TarGz, tmp.path()).is_err());
        assert!(
            extract(
                &tmp.path().join("missing.tar"),
                ArchiveKind::Tar,
                tmp.path()
            )
            .unwrap_err()
            .to_string()
            .contains("missing.tar")
        );
    }
}
