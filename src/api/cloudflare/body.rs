//! The files of an upload and the JSON body of one upload request,
//! `[{"key":…,"value":…,"metadata":…,"base64":true},…]`: built in memory
//! ([`Cloudflare::upload_body`]) or streamed while it is sent ([`UploadStream`]).

use super::{CfError, Cloudflare};
use base64::Engine as _;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// One file to upload.
#[derive(Clone, Debug)]
pub struct UploadFile {
    pub hash: String,
    pub path: PathBuf,
    pub content_type: &'static str,
    pub size: u64,
}

/// Marks the read error of a file that changed between hashing and upload.
pub(super) const CHANGED_MARK: &str = "changed since it was hashed";

/// `{"key":…,"value":…,"metadata":{"contentType":…},"base64":true}` in exactly that order.
#[derive(Serialize)]
struct UploadEntry<'a> {
    key: &'a str,
    value: String,
    metadata: Metadata<'a>,
    base64: bool,
}
#[derive(Serialize)]
struct Metadata<'a> {
    #[serde(rename = "contentType")]
    content_type: &'a str,
}

impl Cloudflare {
    /// The JSON body of one upload request; files are read now, not before.
    pub fn upload_body(files: &[UploadFile]) -> Result<Vec<u8>, CfError> {
        let mut entries = Vec::with_capacity(files.len());
        for f in files {
            let bytes = std::fs::read(&f.path).map_err(|source| CfError::Io {
                path: f.path.clone(),
                source,
            })?;
            entries.push(UploadEntry {
                key: &f.hash,
                value: base64::engine::general_purpose::STANDARD.encode(&bytes),
                metadata: Metadata {
                    content_type: f.content_type,
                },
                base64: true,
            });
        }
        Ok(serde_json::to_vec(&entries).unwrap_or_default())
    }
}

/// The JSON body of one upload request, produced while it is sent: each file is read and
/// base64-encoded in small chunks, so a bucket never sits in memory. The length is known in
/// advance (base64 of n bytes is 4·⌈n/3⌉ characters), so the request carries a Content-Length.
pub struct UploadStream {
    files: Arc<[UploadFile]>,
    /// The entry being written.
    next: usize,
    /// The open file of entry `next` and the bytes still to read from it.
    file: Option<(std::fs::File, u64)>,
    /// Pending output (ASCII only) and how much of it was handed out.
    buf: String,
    pos: usize,
    raw: Vec<u8>,
    started: bool,
    finished: bool,
}

/// Raw bytes read per step when streaming (a multiple of 3: no padding inside the value).
const STREAM_CHUNK: usize = 3 * 16 * 1024;

impl UploadStream {
    /// A request body over `files`.
    pub fn body(files: Arc<[UploadFile]>) -> reqwest::blocking::Body {
        let len = Self::length(&files);
        reqwest::blocking::Body::sized(Self::new(files), len)
    }

    pub fn new(files: Arc<[UploadFile]>) -> UploadStream {
        UploadStream {
            files,
            next: 0,
            file: None,
            buf: String::with_capacity(STREAM_CHUNK / 3 * 4 + 256),
            pos: 0,
            raw: vec![0; STREAM_CHUNK],
            started: false,
            finished: false,
        }
    }

    fn prefix(f: &UploadFile) -> String {
        format!(r#"{{"key":"{}","value":""#, f.hash)
    }

    fn suffix(f: &UploadFile) -> String {
        format!(
            r#"","metadata":{{"contentType":"{}"}},"base64":true}}"#,
            f.content_type
        )
    }

    /// The exact byte length of the body.
    pub fn length(files: &[UploadFile]) -> u64 {
        let entries: u64 = files
            .iter()
            .map(|f| {
                (Self::prefix(f).len() + Self::suffix(f).len()) as u64 + f.size.div_ceil(3) * 4
            })
            .sum();
        2 + entries + files.len().saturating_sub(1) as u64
    }

    /// Closes entry `next` and moves on.
    fn end_entry(&mut self) {
        let f = &self.files[self.next];
        self.buf.push_str(&Self::suffix(f));
        self.next += 1;
        if self.next < self.files.len() {
            self.buf.push(',');
        }
    }

    /// Refills `buf` with the next piece of JSON.
    fn fill(&mut self) -> std::io::Result<()> {
        use std::io::Read;
        self.buf.clear();
        self.pos = 0;
        if !self.started {
            self.started = true;
            self.buf.push('[');
        }
        if let Some((file, left)) = &mut self.file {
            let want = (*left).min(STREAM_CHUNK as u64) as usize;
            let mut got = 0;
            while got < want {
                let n = file.read(&mut self.raw[got..want])?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            if got < want {
                return Err(std::io::Error::other(format!(
                    "{} {CHANGED_MARK} (it is shorter now)",
                    self.files[self.next].path.display()
                )));
            }
            *left -= got as u64;
            let done = *left == 0;
            base64::engine::general_purpose::STANDARD
                .encode_string(&self.raw[..got], &mut self.buf);
            if done {
                self.file = None;
                self.end_entry();
            }
            return Ok(());
        }
        if self.next >= self.files.len() {
            self.buf.push(']');
            self.finished = true;
            return Ok(());
        }
        let f = &self.files[self.next];
        let file = std::fs::File::open(&f.path)?;
        let actual = file.metadata()?.len();
        if actual != f.size {
            return Err(std::io::Error::other(format!(
                "{} {CHANGED_MARK} ({} bytes then, {actual} now)",
                f.path.display(),
                f.size
            )));
        }
        let size = f.size;
        self.buf.push_str(&Self::prefix(f));
        if size == 0 {
            self.end_entry();
        } else {
            self.file = Some((file, size));
        }
        Ok(())
    }
}

impl std::io::Read for UploadStream {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            if self.finished {
                return Ok(0);
            }
            self.fill()?;
        }
        let bytes = self.buf.as_bytes();
        let n = (bytes.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&bytes[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_entries_keep_wranglers_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hello world.txt");
        std::fs::write(&p, "hello with space\n").unwrap();
        let body = Cloudflare::upload_body(&[UploadFile {
            hash: "0c96efd2ce058760209b8820885dc97f".into(),
            path: p,
            content_type: "text/plain",
            size: 17,
        }])
        .unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"[{"key":"0c96efd2ce058760209b8820885dc97f","value":"aGVsbG8gd2l0aCBzcGFjZQo=","metadata":{"contentType":"text/plain"},"base64":true}]"#
        );
    }

    #[test]
    fn the_streamed_body_equals_the_built_one_and_its_announced_length() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for (i, len) in [
            0usize,
            1,
            2,
            3,
            4,
            STREAM_CHUNK - 1,
            STREAM_CHUNK,
            2 * STREAM_CHUNK + 5,
        ]
        .into_iter()
        .enumerate()
        {
            let p = dir.path().join(format!("f{i}.bin"));
            std::fs::write(&p, (0..len).map(|b| (b % 251) as u8).collect::<Vec<_>>()).unwrap();
            files.push(UploadFile {
                hash: format!("{i:032x}"),
                path: p,
                content_type: "application/octet-stream",
                size: len as u64,
            });
        }
        for set in [&files[..0], &files[..1], &files[..]] {
            let built = Cloudflare::upload_body(set).unwrap();
            let mut streamed = Vec::new();
            UploadStream::new(set.to_vec().into())
                .read_to_end(&mut streamed)
                .unwrap();
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                String::from_utf8(built.clone()).unwrap()
            );
            assert_eq!(UploadStream::length(set), built.len() as u64);
        }
        // A file that changed since it was hashed is an error, not a corrupt upload.
        std::fs::write(&files[1].path, "longer now").unwrap();
        let mut sink = Vec::new();
        let err = UploadStream::new(files.into())
            .read_to_end(&mut sink)
            .unwrap_err();
        assert!(err.to_string().contains(CHANGED_MARK), "{err}");
    }
}
