//! Cloudflare Pages direct upload, the local half: walk a site directory exactly as wrangler 4 does,
//! hash every file with wrangler's asset hash, pick content types from wrangler's table, build the
//! manifest, check the limits, read the special files (`_headers`, `_redirects`, the Worker bundle,
//! `_routes.json`) and split the missing files into upload buckets.
//!
//! Pure apart from reading the site directory (walk/hash); no network, no terminal, no clock. The
//! HTTP side lives in `api/cloudflare.rs`; the deploy in `deploy/pages.rs`.

pub mod bucket;
pub mod content_type;
pub mod hash;
pub mod hash_cache;
mod mime_table;
pub mod special;
pub mod walk;

pub use bucket::{Bucket, buckets};
pub use content_type::content_type;
pub use hash::{asset_key, asset_key_of_file};
pub use hash_cache::HashCache;
pub use special::{SpecialError, SpecialFiles, WorkerSource};
pub use walk::{Asset, Site, WalkError, Walked, walk_and_hash, walk_and_hash_cached};

/// Pages only supports files up to this size (exactly 25 MiB passes).
pub const MAX_FILE_BYTES: u64 = 25 * 1024 * 1024;
/// Raw bytes per upload request (before base64).
pub const MAX_BUCKET_BYTES: u64 = 40 * 1024 * 1024;
/// Files per upload request.
pub const MAX_BUCKET_FILES: usize = 2000;
/// Files per deployment when the upload token does not say otherwise.
pub const DEFAULT_MAX_FILES: u64 = 20_000;
/// `commit_message` is cut to this many UTF-8 bytes.
pub const MAX_COMMIT_MESSAGE_BYTES: usize = 384;

/// Cuts `msg` to at most 384 UTF-8 bytes at a code-point boundary.
pub fn truncate_commit_message(msg: &str) -> &str {
    if msg.len() <= MAX_COMMIT_MESSAGE_BYTES {
        return msg;
    }
    let mut cut = MAX_COMMIT_MESSAGE_BYTES;
    while !msg.is_char_boundary(cut) {
        cut -= 1;
    }
    &msg[..cut]
}

/// The first `.pages.dev` alias of a deployment (custom domains are filtered out).
pub fn pages_dev_alias(aliases: &[String]) -> Option<&String> {
    aliases.iter().find(|a| {
        a.trim_end_matches('/')
            .rsplit("//")
            .next()
            .is_some_and(|h| h.trim_end_matches('/').ends_with(".pages.dev"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_message_is_cut_at_a_code_point() {
        let m = "é".repeat(250);
        let cut = truncate_commit_message(&m);
        assert_eq!(cut.len(), 384);
        assert_eq!(cut.chars().count(), 192);
        let m = format!("a{}", "é".repeat(250));
        assert_eq!(truncate_commit_message(&m).len(), 383);
        assert_eq!(truncate_commit_message("short"), "short");
    }

    #[test]
    fn alias_skips_custom_domains() {
        let a = vec![
            "https://www.example.com".to_string(),
            "https://fix-api.shop.pages.dev".to_string(),
        ];
        assert_eq!(
            pages_dev_alias(&a).map(String::as_str),
            Some("https://fix-api.shop.pages.dev")
        );
        assert_eq!(pages_dev_alias(&a[..1]), None);
    }
}
