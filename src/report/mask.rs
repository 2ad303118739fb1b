//! The set of secrets to redact, shared by every output.

use std::sync::RwLock;

#[derive(Default)]
pub struct Masker {
    secrets: RwLock<Vec<String>>,
}

impl Masker {
    /// Adds a secret; returns false when it was already known or too short to mask safely.
    pub fn add(&self, secret: &str) -> bool {
        let secret = secret.trim();
        if secret.len() < 4 {
            return false;
        }
        let mut list = self.secrets.write().expect("masker lock");
        let mut added = false;
        for candidate in
            std::iter::once(secret).chain(secret.lines().map(str::trim).filter(|l| l.len() >= 8))
        {
            if !list.iter().any(|s| s == candidate) {
                list.push(candidate.to_string());
                added = true;
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
        added
    }

    pub fn redact(&self, text: &str) -> String {
        let list = self.secrets.read().expect("masker lock");
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
        assert!(m.add("-----BEGIN KEY-----\nabcdefghijkl\n-----END KEY-----"));
        assert!(m.add("hunter22"));
        assert!(!m.add("ab"));
        assert_eq!(m.redact("pw=hunter22 line abcdefghijkl"), "pw=*** line ***");
    }
}
