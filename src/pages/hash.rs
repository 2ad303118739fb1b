//! wrangler's asset hash: `hex(BLAKE3(base64_std_padded(bytes) ++ ext))[..32]`, where `ext` is the
//! extension of the last path segment without the dot, case preserved. Streams the file: the
//! base64 text is produced chunk by chunk (multiples of 3 raw bytes) into a buffer that BLAKE3
//! reads at once, never held whole. A [`FileHasher`] keeps its two buffers across files, so hashing
//! thousands of small files allocates (and zeroes) nothing per file, and a file is read with as few
//! system calls as its size allows.

use base64::Engine as _;
use std::io::Read;
use std::path::Path;

/// The extension as wrangler sees it (`path.extname` without the dot; `""` if none).
pub fn extension(rel_path: &Path) -> &str {
    rel_path.extension().and_then(|e| e.to_str()).unwrap_or("")
}

/// The asset key of in-memory bytes.
pub fn asset_key(rel_path: &Path, bytes: &[u8]) -> String {
    let mut hasher = blake3::Hasher::new();
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    hasher.update(b64.as_bytes());
    hasher.update(extension(rel_path).as_bytes());
    finish(hasher)
}

/// Raw bytes read per step: a multiple of 3 so each chunk's base64 has no inner padding.
const CHUNK: usize = 3 * 64 * 1024;

/// The asset key of a file on disk, read in chunks. Returns the key and the number of bytes read.
pub fn asset_key_of_file(rel_path: &Path, file: &Path) -> std::io::Result<(String, u64)> {
    let f = std::fs::File::open(file)?;
    let size = f.metadata()?.len();
    FileHasher::new().hash(rel_path, f, size)
}

/// Hashes files one after another with the same buffers (one hasher per thread).
pub struct FileHasher {
    raw: Vec<u8>,
    b64: Vec<u8>,
}

impl Default for FileHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl FileHasher {
    pub fn new() -> FileHasher {
        FileHasher {
            raw: vec![0; CHUNK],
            b64: vec![0; CHUNK / 3 * 4],
        }
    }

    /// The asset key of the open file `f`, expected to hold `size` bytes (from its `fstat`): the
    /// reads stop there, without a last read to see the end. A file that turns out shorter is
    /// hashed as it is; the returned length says how much was read.
    pub fn hash(
        &mut self,
        rel_path: &Path,
        mut f: std::fs::File,
        size: u64,
    ) -> std::io::Result<(String, u64)> {
        let engine = &base64::engine::general_purpose::STANDARD;
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        loop {
            let want = (size - total).min(CHUNK as u64) as usize;
            if want == 0 {
                break;
            }
            // Fill the chunk completely so only the last one can need padding.
            let mut filled = 0;
            while filled < want {
                let n = f.read(&mut self.raw[filled..want])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            total += filled as u64;
            let n = engine
                .encode_slice(&self.raw[..filled], &mut self.b64)
                .map_err(std::io::Error::other)?;
            hasher.update(&self.b64[..n]);
            if filled < want {
                break; // shorter than its fstat said
            }
        }
        hasher.update(extension(rel_path).as_bytes());
        Ok((finish(hasher), total))
    }
}

fn finish(hasher: blake3::Hasher) -> String {
    hasher.finalize().to_hex()[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wrangler's published vectors plus those produced by wrangler 4.164.0 (reference §3).
    const VECTORS: &[(&str, &str, &str)] = &[
        ("logo.png", "foobar", "2082190357cfd3617ccfe04f340c6247"),
        ("logo.txt", "foobar", "1a98fb08af91aca4a7df1764a2c4ddb0"),
        ("logo.html", "foobar", "d96fef225537c9f5e44a3cb27fd0b492"),
        ("logo.js", "foobar", "6be321bef99e758250dac034474ddbb8"),
        (
            ".well-known/foobar",
            "foobar",
            "7b764dacfd211bebd8077828a7ddefd7",
        ),
        (
            "README.md",
            "This is a readme",
            "13a03eaf24ae98378acd36ea00f77f2f",
        ),
        (
            "assets/hello world.txt",
            "hello with space\n",
            "0c96efd2ce058760209b8820885dc97f",
        ),
        (
            "assets/LICENSE",
            "no extension\n",
            "156977954e7441519da96d8dd9f46d71",
        ),
        (
            "css/style.css",
            "body { font-family: sans-serif; color: #333; }\n",
            "b6f572fcd09f004c30a514c8388ea118",
        ),
        (
            "css/style.css",
            "body { font-family: serif; }\n",
            "f2ae6dd38a823702b5310426ba643135",
        ),
    ];

    #[test]
    fn wrangler_vectors_in_memory() {
        for (path, content, want) in VECTORS {
            assert_eq!(
                asset_key(Path::new(path), content.as_bytes()),
                *want,
                "{path}"
            );
        }
    }

    #[test]
    fn wrangler_vectors_streamed_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        for (path, content, want) in VECTORS {
            let p = dir.path().join("f");
            std::fs::write(&p, content).unwrap();
            let (key, n) = asset_key_of_file(Path::new(path), &p).unwrap();
            assert_eq!(key, *want, "{path}");
            assert_eq!(n, content.len() as u64);
        }
    }

    #[test]
    fn streamed_equals_in_memory_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, 2, 3, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 2] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let p = dir.path().join("blob.bin");
            std::fs::write(&p, &bytes).unwrap();
            let (key, _) = asset_key_of_file(Path::new("x/blob.bin"), &p).unwrap();
            assert_eq!(key, asset_key(Path::new("x/blob.bin"), &bytes), "len {len}");
        }
    }

    #[test]
    fn extension_rules_match_node_extname() {
        for (p, e) in [
            (".DS_Store", ""),
            ("..foo", "foo"),
            ("foo.", ""),
            ("a.tar.gz", "gz"),
            ("LOGO.PNG", "PNG"),
            (".well-known/foobar", ""),
        ] {
            assert_eq!(extension(Path::new(p)), e, "{p}");
        }
        assert_ne!(
            asset_key(Path::new("LOGO.PNG"), b"x"),
            asset_key(Path::new("logo.png"), b"x")
        );
    }
}
