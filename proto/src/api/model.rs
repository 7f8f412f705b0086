//! Applications, users, sandbox directory entries and file chunks, as the API shows them.

use retz_placement::AffinityPolicy;
use serde::{Deserialize, Serialize};

/// An application: the files a job's executor fetches, and who owns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Application name (a single safe path component).
    pub appid: String,
    /// URIs fetched for every executor, not cached (`-F`).
    #[serde(default)]
    pub files: Vec<String>,
    /// URIs fetched through the agent's cache (`-L`).
    #[serde(default)]
    pub large_files: Vec<String>,
    /// Unix user the jobs run as, when the server's operator allows it
    /// (`jobs.allowed_users`); absent: the server's default job user. Never root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Access key of the owner (set by the server from the signature).
    #[serde(default)]
    pub owner: String,
    /// Seconds between SIGTERM and SIGKILL on kill; 0 = the Mesos default.
    #[serde(default)]
    pub grace_period: u32,
    /// Container type.
    #[serde(default)]
    pub container: Container,
    /// Whether jobs of the application may be scheduled.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The application's affinity policy; absent: the cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<AffinityPolicy>,
    /// A fresh id the server gives the application at every load (clients' values are
    /// replaced). Executor ids cover it, so a reloaded application never shares an
    /// executor or a sandbox with its previous load. Empty in applications stored before
    /// it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generation: String,
}

fn yes() -> bool {
    true
}

impl Application {
    /// An enabled application with no files, owned by `owner`.
    pub fn new(appid: impl Into<String>, owner: impl Into<String>) -> Application {
        Application {
            appid: appid.into(),
            files: Vec::new(),
            large_files: Vec::new(),
            user: None,
            owner: owner.into(),
            grace_period: 0,
            container: Container::default(),
            enabled: true,
            affinity: None,
            generation: String::new(),
        }
    }
}

/// How an application's jobs are contained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Container {
    /// The Mesos containerizer (default).
    #[default]
    Mesos,
    /// A Docker image run by the Mesos containerizer.
    Docker {
        /// Image name.
        image: String,
        /// Volumes.
        #[serde(default)]
        volumes: Vec<DockerVolume>,
    },
}

/// One Docker volume (`driver:name:path[:mode=RO|RW][:k=v...]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerVolume {
    /// Volume driver.
    pub driver: String,
    /// Volume name.
    pub name: String,
    /// Mount point in the container.
    pub container_path: String,
    /// `RO` or `RW`.
    #[serde(default = "ro")]
    pub mode: String,
    /// Driver options.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

fn ro() -> String {
    "RO".to_owned()
}

/// A Retz user (an access key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Access key: 32 hex digits.
    #[serde(alias = "key_id")]
    pub key_id: String,
    /// Secret: 32 hex digits. Shown only to admins.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// Disabled users are refused (403).
    pub enabled: bool,
    /// Free text.
    #[serde(default)]
    pub info: String,
}

/// One sandbox directory entry (Mesos `/files/browse` shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirEntry {
    /// Group name.
    #[serde(default)]
    pub gid: String,
    /// Mode string, e.g. `-rw-r--r--`.
    #[serde(default)]
    pub mode: String,
    /// Modification time, seconds since the epoch.
    #[serde(default)]
    pub mtime: f64,
    /// Link count.
    #[serde(default)]
    pub nlink: u64,
    /// Absolute path on the agent.
    pub path: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// User name.
    #[serde(default)]
    pub uid: String,
}

/// A piece of a sandbox file (Mesos `/files/read` shape): the bytes from `offset`.
///
/// Byte-exact: `data` is the bytes themselves when they are UTF-8 text (`encoding`
/// absent), else their standard base64 (`encoding: "base64"`). Offsets count bytes, so
/// the next piece starts at `offset + bytes().len()`. [`FileChunk::from_bytes`] keeps
/// text as text: a character cut at the end of the piece is left for the next one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChunk {
    /// The bytes read: UTF-8 text, or base64 when `encoding` says so.
    pub data: String,
    /// Offset of the first byte in the file.
    pub offset: u64,
    /// `"base64"` when `data` is base64; absent for text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<ChunkEncoding>,
}

/// How [`FileChunk::data`] holds bytes that are not UTF-8 text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChunkEncoding {
    /// Standard base64 with padding.
    Base64,
}

/// A [`FileChunk`] whose base64 `data` does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("file data at offset {offset} is not valid base64: {reason}")]
pub struct ChunkDecodeError {
    /// The chunk's offset.
    pub offset: u64,
    /// The decoder's complaint.
    pub reason: String,
}

impl FileChunk {
    /// The chunk for `bytes` read at `offset`, and how many of them it holds. Text stays
    /// text: valid UTF-8 is sent as is, and a character cut by the end of `bytes` is
    /// left out (the count is then smaller than `bytes.len()`, and the caller's next read
    /// starts at the cut). Anything else is base64 of all of `bytes`.
    pub fn from_bytes(offset: u64, bytes: &[u8]) -> (FileChunk, usize) {
        use base64::Engine as _;
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => Some(t),
            // Only an incomplete character at the very end, after some text.
            Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => {
                std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()
            }
            Err(_) => None,
        };
        match text {
            Some(t) => (
                FileChunk {
                    data: t.to_owned(),
                    offset,
                    encoding: None,
                },
                t.len(),
            ),
            None => (
                FileChunk {
                    data: base64::engine::general_purpose::STANDARD.encode(bytes),
                    offset,
                    encoding: Some(ChunkEncoding::Base64),
                },
                bytes.len(),
            ),
        }
    }

    /// The chunk holding all of `bytes`: text when they are UTF-8, else base64.
    pub fn whole(offset: u64, bytes: &[u8]) -> FileChunk {
        match FileChunk::from_bytes(offset, bytes) {
            (chunk, n) if n == bytes.len() => chunk,
            _ => {
                use base64::Engine as _;
                FileChunk {
                    data: base64::engine::general_purpose::STANDARD.encode(bytes),
                    offset,
                    encoding: Some(ChunkEncoding::Base64),
                }
            }
        }
    }

    /// The bytes this chunk holds.
    pub fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, ChunkDecodeError> {
        use base64::Engine as _;
        match self.encoding {
            None => Ok(std::borrow::Cow::Borrowed(self.data.as_bytes())),
            Some(ChunkEncoding::Base64) => base64::engine::general_purpose::STANDARD
                .decode(self.data.as_bytes())
                .map(std::borrow::Cow::Owned)
                .map_err(|e| ChunkDecodeError {
                    offset: self.offset,
                    reason: e.to_string(),
                }),
        }
    }
}

#[cfg(test)]
mod file_chunk_tests {
    use super::*;

    #[test]
    fn text_stays_text_and_cut_characters_wait_for_the_next_chunk() {
        let (c, n) = FileChunk::from_bytes(3, "a日".as_bytes());
        assert_eq!((c.data.as_str(), c.encoding, n), ("a日", None, 4));
        // `日` is E6 97 A5: cut after its first two bytes
        let (c, n) = FileChunk::from_bytes(0, &"a日".as_bytes()[..3]);
        assert_eq!((c.data.as_str(), c.encoding, n), ("a", None, 1));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json, serde_json::json!({"data": "a", "offset": 0}));
        // nothing but a cut character: base64, so that a reader always advances
        let (c, n) = FileChunk::from_bytes(9, &[0xE6, 0x97]);
        assert_eq!((c.encoding, n), (Some(ChunkEncoding::Base64), 2));
        assert_eq!(c.bytes().unwrap().as_ref(), &[0xE6, 0x97]);
        // whole: never leaves a byte out
        let c = FileChunk::whole(0, &"a日".as_bytes()[..3]);
        assert_eq!(c.bytes().unwrap().as_ref(), &"a日".as_bytes()[..3]);
        assert_eq!(FileChunk::whole(0, b"ok").encoding, None);
    }

    #[test]
    fn binary_is_base64_and_round_trips() {
        let bytes: Vec<u8> = (0..=255u8).rev().collect();
        let (c, n) = FileChunk::from_bytes(7, &bytes);
        assert_eq!(n, 256);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""encoding":"base64""#), "{json}");
        let back: FileChunk = serde_json::from_str(&json).unwrap();
        assert_eq!(back.bytes().unwrap().as_ref(), bytes.as_slice());
        // an invalid byte in the middle of text makes the whole chunk base64
        let (c, _) = FileChunk::from_bytes(0, b"ok\xffok");
        assert_eq!(c.encoding, Some(ChunkEncoding::Base64));
        let bad = FileChunk {
            data: "***".into(),
            offset: 5,
            encoding: Some(ChunkEncoding::Base64),
        };
        assert!(bad.bytes().unwrap_err().to_string().contains("offset 5"));
    }

    proptest::proptest! {
        /// Reading any bytes piece by piece, advancing by what each chunk holds,
        /// gives back exactly those bytes.
        #[test]
        fn chunks_reassemble_any_bytes(
            text in "[a-z日本語ü\n]{0,60}",
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            mix in proptest::prelude::any::<bool>(),
            step in 1usize..9,
        ) {
            let mut bytes = text.into_bytes();
            if mix {
                bytes.extend(noise);
            }
            let mut out = Vec::new();
            let mut offset = 0usize;
            while offset < bytes.len() {
                let end = (offset + step).min(bytes.len());
                let (c, n) = FileChunk::from_bytes(offset as u64, &bytes[offset..end]);
                proptest::prop_assert!(n > 0);
                let json = serde_json::to_string(&c).unwrap();
                let back: FileChunk = serde_json::from_str(&json).unwrap();
                let got = back.bytes().unwrap();
                proptest::prop_assert_eq!(got.len(), n);
                out.extend_from_slice(&got);
                offset += n;
            }
            proptest::prop_assert_eq!(out, bytes);
        }
    }
}
