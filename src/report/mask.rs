//! The set of secrets to redact, shared by every output.

use std::sync::RwLock;

/// Secrets (and lines of multi-line secrets) shorter than this are not masked: replacing every
/// `abc` in a log garbles it and protects nothing.
pub const MIN_SECRET_LEN: usize = 4;

#[derive(Default)]
pub struct Masker {
    secrets: RwLock<Vec<String>>,
}

impl Masker {
    /// Adds a secret, and each non-empty line of a multi-line one (an SSH key is often printed
    /// line by line). Returns what was newly registered, the whole value first: empty when it was
    /// already known or is too short to mask safely.
    pub fn add(&self, secret: &str) -> Vec<String> {
        let secret = secret.trim();
        if secret.len() < MIN_SECRET_LEN {
            return Vec::new();
        }
        let mut list = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        let mut added = Vec::new();
        let lines = secret
            .lines()
            .map(str::trim)
            .filter(|l| l.len() >= MIN_SECRET_LEN && *l != secret);
        for candidate in std::iter::once(secret).chain(lines) {
            if !list.iter().any(|s| s == candidate) {
                list.push(candidate.to_string());
                added.push(candidate.to_string());
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
        added
    }

    pub fn redact(&self, text: &str) -> String {
        let list = self.secrets.read().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for s in list.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_whole_secrets_and_their_lines() {
        let m = Masker::default();
        assert_eq!(
            m.add("-----BEGIN KEY-----\nabcdefghijkl\nxyz=\n-----END KEY-----\n"),
            [
                "-----BEGIN KEY-----\nabcdefghijkl\nxyz=\n-----END KEY-----",
                "-----BEGIN KEY-----",
                "abcdefghijkl",
                "xyz=",
                "-----END KEY-----"
            ]
        );
        assert_eq!(m.add("hunter22"), ["hunter22"]);
        assert!(m.add("hunter22").is_empty(), "already known");
        assert!(m.add("ab").is_empty(), "too short");
        assert_eq!(
            m.redact("pw=hunter22 line abcdefghijkl tail xyz="),
            "pw=*** line *** tail ***"
        );
    }
}
