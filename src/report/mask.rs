//! The set of secrets to redact, shared by every output.

use std::sync::RwLock;

/// Lines of a multi-line secret (an SSH key) shorter than this are not registered on their own: a
/// two-character fragment of a key says nothing about it, and masking it would garble every line
/// of the log. A secret itself is always registered whole, however short.
pub const MIN_LINE_LEN: usize = 4;

#[derive(Default)]
pub struct Masker {
    secrets: RwLock<Vec<String>>,
}

impl Masker {
    /// Adds a secret (every non-empty one, however short: a 3-character password is still a
    /// password), and each line of a multi-line one of at least [`MIN_LINE_LEN`] characters (an
    /// SSH key is often printed line by line). Returns what was newly registered, the whole value
    /// first: empty when it was already known or is empty.
    pub fn add(&self, secret: &str) -> Vec<String> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Vec::new();
        }
        let mut list = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        let mut added = Vec::new();
        let lines = secret
            .lines()
            .map(str::trim)
            .filter(|l| l.len() >= MIN_LINE_LEN && *l != secret);
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
        assert!(m.add("").is_empty() && m.add(" \n ").is_empty(), "empty");
        assert_eq!(
            m.redact("pw=hunter22 line abcdefghijkl tail xyz="),
            "pw=*** line *** tail ***"
        );
    }

    #[test]
    fn r10_secrets_shorter_than_4_characters_are_masked() {
        let m = Masker::default();
        assert_eq!(m.add("q7"), ["q7"]);
        assert_eq!(m.add("x"), ["x"]);
        assert_eq!(m.add(" zz9 "), ["zz9"], "trimmed, still masked");
        assert_eq!(m.redact("pw=q7; one x; zz9!"), "pw=***; one ***; ***!");
        // Short lines of a multi-line secret are not masked on their own, the whole secret is.
        let key = "-----BEGIN K-----\nAAAABBBB\nQ=\n-----END K-----";
        assert!(!m.add(key).contains(&"Q=".to_string()));
        assert_eq!(m.redact(key), "***");
    }
}
