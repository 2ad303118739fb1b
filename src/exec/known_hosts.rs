//! known_hosts: parsing and host-key verification, OpenSSH style.
//!
//! Pure: takes the text of a known_hosts file and a presented key blob, answers known / changed /
//! revoked / unknown. Reads no files and opens no connections (ssh.rs does both). Handles plain and
//! hashed (`|1|salt|hash`, HMAC-SHA1) host fields, comma lists, `*`/`?` wildcards, `!` negation,
//! `[host]:port` for ports other than 22, and the `@revoked` marker (`@cert-authority` lines are
//! skipped: certificates are not supported).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The parsed entries of one or more known_hosts texts.
#[derive(Clone, Debug, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
    /// Lines that could not be used, as `SOURCE:LINE: reason` (reported, never fatal).
    pub problems: Vec<String>,
}

#[derive(Clone, Debug)]
struct Entry {
    /// `SOURCE:LINE`, for messages.
    origin: String,
    marker: Marker,
    hosts: Hosts,
    key_type: String,
    key: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
}

#[derive(Clone, Debug)]
enum Hosts {
    /// Comma-separated patterns, possibly with wildcards and negation.
    Patterns(Vec<String>),
    /// `|1|salt|hash`: HMAC-SHA1 of the host name keyed by the salt.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

/// A known key of a host, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownKey {
    pub key_type: String,
    pub fingerprint: String,
    /// `SOURCE:LINE` of the entry.
    pub origin: String,
}

/// The answer for a presented host key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An entry for the host holds exactly this key.
    Known,
    /// The key is marked `@revoked`.
    Revoked { origin: String },
    /// The host has entries, but none holds this key.
    Changed { known: Vec<KnownKey> },
    /// No entry names the host.
    Unknown,
}

impl KnownHosts {
    /// Parses known_hosts text; `source` names it in messages (a path or a variable name).
    pub fn parse(text: &str, source: &str) -> KnownHosts {
        let mut kh = KnownHosts::default();
        kh.add(text, source);
        kh
    }

    /// Adds the entries of another text.
    pub fn add(&mut self, text: &str, source: &str) {
        for (i, raw) in text.lines().enumerate() {
            let origin = format!("{source}:{}", i + 1);
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line, &origin) {
                Ok(Some(e)) => self.entries.push(e),
                Ok(None) => {}
                Err(reason) => self.problems.push(format!("{origin}: {reason}")),
            }
        }
    }

    /// How many usable entries were read.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks the key `blob` (SSH wire format) presented by `host` on `port`.
    pub fn check(&self, host: &str, port: u16, blob: &[u8]) -> Verdict {
        let name = lookup_name(host, port);
        let mut known = Vec::new();
        for e in self.entries.iter().filter(|e| e.hosts.matches(&name)) {
            match e.marker {
                Marker::Revoked if e.key == blob => {
                    return Verdict::Revoked {
                        origin: e.origin.clone(),
                    };
                }
                Marker::Revoked => {}
                Marker::None => known.push(e),
            }
        }
        if known.iter().any(|e| e.key == blob) {
            Verdict::Known
        } else if known.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Changed {
                known: known
                    .iter()
                    .map(|e| KnownKey {
                        key_type: e.key_type.clone(),
                        fingerprint: fingerprint_sha256(&e.key),
                        origin: e.origin.clone(),
                    })
                    .collect(),
            }
        }
    }

    /// The key types known for a host, in file order without repeats (to prefer them when
    /// negotiating, so a host with several keys presents one we can check).
    pub fn known_types(&self, host: &str, port: u16) -> Vec<String> {
        let name = lookup_name(host, port);
        let mut types: Vec<String> = Vec::new();
        for e in &self.entries {
            if e.marker == Marker::None && e.hosts.matches(&name) && !types.contains(&e.key_type) {
                types.push(e.key_type.clone());
            }
        }
        types
    }
}

fn parse_line(line: &str, origin: &str) -> Result<Option<Entry>, String> {
    let mut fields = line.split_whitespace();
    let mut first = fields.next().unwrap_or_default();
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => return Ok(None),
        m if m.starts_with('@') => return Err(format!("unknown marker `{m}`")),
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next().ok_or("a marker without hosts")?;
    }
    let (Some(key_type), Some(key_b64)) = (fields.next(), fields.next()) else {
        return Err("expected `HOSTS KEYTYPE BASE64KEY`".into());
    };
    let key = STANDARD
        .decode(key_b64)
        .map_err(|_| format!("the {key_type} key is not valid base64"))?;
    if key_type_of(&key).as_deref() != Some(key_type) {
        return Err(format!(
            "the key does not match its type `{key_type}` (a truncated or pasted-wrong line?)"
        ));
    }
    let hosts = if let Some(rest) = first.strip_prefix("|1|") {
        let (salt, hash) = rest
            .split_once('|')
            .ok_or("a hashed host without `|salt|hash`")?;
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| "the hashed host's salt is not base64")?;
        let hash = STANDARD
            .decode(hash)
            .map_err(|_| "the hashed host's hash is not base64")?;
        Hosts::Hashed { salt, hash }
    } else {
        Hosts::Patterns(first.split(',').map(|p| p.to_ascii_lowercase()).collect())
    };
    Ok(Some(Entry {
        origin: origin.to_string(),
        marker,
        hosts,
        key_type: key_type.to_string(),
        key,
    }))
}

impl Hosts {
    fn matches(&self, name: &str) -> bool {
        match self {
            Hosts::Hashed { salt, hash } => {
                let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
            Hosts::Patterns(patterns) => {
                // OpenSSH: a matching negated pattern excludes the host whatever else matches.
                let mut hit = false;
                for p in patterns {
                    if let Some(neg) = p.strip_prefix('!') {
                        if wildcard(neg.as_bytes(), name.as_bytes()) {
                            return false;
                        }
                    } else if wildcard(p.as_bytes(), name.as_bytes()) {
                        hit = true;
                    }
                }
                hit
            }
        }
    }
}

/// `*` and `?` glob match.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildcard(&pattern[1..], text) || (!text.is_empty() && wildcard(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => wildcard(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => wildcard(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// The name a host is recorded under: `host` on port 22, `[host]:port` otherwise (lower case).
pub fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// The known_hosts line that trusts `blob` for `host` on `port`: `NAME KEYTYPE BASE64` (what
/// `ssh-keyscan` prints, with the `[host]:port` name for ports other than 22).
pub fn entry_line(host: &str, port: u16, blob: &[u8]) -> String {
    let key_type = key_type_of(blob).unwrap_or_else(|| "unknown".into());
    format!(
        "{} {key_type} {}",
        lookup_name(host, port),
        STANDARD.encode(blob)
    )
}

/// The OpenSSH fingerprint of a key blob: `SHA256:` and the unpadded base64 of its SHA-256.
pub fn fingerprint_sha256(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// The key type named at the start of a key blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`).
pub fn key_type_of(blob: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    let name = blob.get(4..4 + len)?;
    std::str::from_utf8(name).ok().map(str::to_string)
}

/// The host-key algorithms that can present a key of a known_hosts key type (RSA keys sign with
/// SHA-2 under newer names).
pub fn algorithms_for(key_type: &str) -> Vec<&'static str> {
    match key_type {
        "ssh-ed25519" => vec!["ssh-ed25519"],
        "ecdsa-sha2-nistp256" => vec!["ecdsa-sha2-nistp256"],
        "ecdsa-sha2-nistp384" => vec!["ecdsa-sha2-nistp384"],
        "ecdsa-sha2-nistp521" => vec!["ecdsa-sha2-nistp521"],
        "ssh-rsa" => vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        "ssh-dss" => vec!["ssh-dss"],
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two ed25519 public keys generated with `ssh-keygen -t ed25519`.
    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFIJtTINt2aSF3FLls7PSAfxQYUe59uXusD9HMLuPjY9";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFJg4TqvDBq18jtcFT7xzsRvL4sNW85p5u7BUzTXOxk1";
    // `ssh-keygen -lf` of KEY_A.
    const FP_A: &str = "SHA256:IBWfl0bas29xvr3Eb7oLXi1LbIXgZiB9NpuJv+8tOR0";

    fn blob(k: &str) -> Vec<u8> {
        STANDARD.decode(k).unwrap()
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        format!(
            "|1|{}|{}",
            STANDARD.encode(salt),
            STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn fingerprint_and_type() {
        assert_eq!(fingerprint_sha256(&blob(KEY_A)), FP_A);
        assert_eq!(key_type_of(&blob(KEY_A)).as_deref(), Some("ssh-ed25519"));
        assert_eq!(key_type_of(b"\0\0"), None);
    }

    #[test]
    fn plain_entry_on_port_22() {
        let kh = KnownHosts::parse(
            &format!("# comment\n\nexample.com,10.0.0.1 ssh-ed25519 {KEY_A} me@laptop\n"),
            "kh",
        );
        assert_eq!(kh.len(), 1);
        assert_eq!(kh.check("example.com", 22, &blob(KEY_A)), Verdict::Known);
        assert_eq!(kh.check("EXAMPLE.com", 22, &blob(KEY_A)), Verdict::Known);
        assert_eq!(kh.check("10.0.0.1", 22, &blob(KEY_A)), Verdict::Known);
        // The port form is a different name, as in OpenSSH.
        assert_eq!(
            kh.check("example.com", 2222, &blob(KEY_A)),
            Verdict::Unknown
        );
        assert_eq!(kh.check("other.com", 22, &blob(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn bracketed_port_entry() {
        let kh = KnownHosts::parse(&format!("[127.0.0.1]:2222 ssh-ed25519 {KEY_A}\n"), "kh");
        assert_eq!(kh.check("127.0.0.1", 2222, &blob(KEY_A)), Verdict::Known);
        assert_eq!(kh.check("127.0.0.1", 22, &blob(KEY_A)), Verdict::Unknown);
        assert_eq!(kh.check("127.0.0.1", 2223, &blob(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn wrong_key_is_changed_with_the_known_fingerprint() {
        let kh = KnownHosts::parse(&format!("[127.0.0.1]:2222 ssh-ed25519 {KEY_A}\n"), "kh");
        let v = kh.check("127.0.0.1", 2222, &blob(KEY_B));
        assert_eq!(
            v,
            Verdict::Changed {
                known: vec![KnownKey {
                    key_type: "ssh-ed25519".into(),
                    fingerprint: FP_A.into(),
                    origin: "kh:1".into()
                }]
            }
        );
    }

    #[test]
    fn hashed_entries_written_by_ssh_keygen() {
        // `ssh-keygen -H` of "[127.0.0.1]:2222 KEY_A" and "example.com KEY_B".
        let text = format!(
            "|1|CckC551ANkPkwS7/VBKFe3VkTF0=|KnUFYdYAXfEi4zBFawS6WS/7fWk= ssh-ed25519 {KEY_A}\n\
             |1|CGX19qcxcqtvIC6c9IqvaoCWwy0=|/eHt9loU5dmSGytcPe6NGJJwjek= ssh-ed25519 {KEY_B}\n"
        );
        let kh = KnownHosts::parse(&text, "kh");
        assert_eq!(kh.len(), 2);
        assert_eq!(kh.check("127.0.0.1", 2222, &blob(KEY_A)), Verdict::Known);
        assert_eq!(kh.check("example.com", 22, &blob(KEY_B)), Verdict::Known);
        assert_eq!(kh.check("example.org", 22, &blob(KEY_B)), Verdict::Unknown);
    }

    #[test]
    fn hashed_entries() {
        let text = format!(
            "{} ssh-ed25519 {KEY_A}\n{} ssh-ed25519 {KEY_B}\n",
            hashed("[127.0.0.1]:2222", b"0123456789abcdef0123"),
            hashed("example.com", b"saltsaltsaltsaltsalt"),
        );
        let kh = KnownHosts::parse(&text, "kh");
        assert_eq!(kh.len(), 2);
        assert_eq!(kh.check("127.0.0.1", 2222, &blob(KEY_A)), Verdict::Known);
        assert_eq!(kh.check("example.com", 22, &blob(KEY_B)), Verdict::Known);
        assert!(matches!(
            kh.check("example.com", 22, &blob(KEY_A)),
            Verdict::Changed { .. }
        ));
        assert_eq!(kh.check("127.0.0.1", 22, &blob(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn wildcards_negation_and_revoked() {
        let text = format!(
            "*.example.com,!bad.example.com ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_B}\n"
        );
        let kh = KnownHosts::parse(&text, "kh");
        assert_eq!(
            kh.check("web.example.com", 22, &blob(KEY_A)),
            Verdict::Known
        );
        assert_eq!(
            kh.check("bad.example.com", 22, &blob(KEY_A)),
            Verdict::Unknown
        );
        assert_eq!(
            kh.check("web.example.com", 22, &blob(KEY_B)),
            Verdict::Revoked {
                origin: "kh:2".into()
            }
        );
        assert_eq!(kh.known_types("web.example.com", 22), vec!["ssh-ed25519"]);
    }

    #[test]
    fn bad_lines_are_reported_not_fatal() {
        let text = format!(
            "host ssh-ed25519\nhost ssh-rsa {KEY_A}\nhost ssh-ed25519 !!!\n@cert-authority * ssh-ed25519 {KEY_A}\nok ssh-ed25519 {KEY_A}\n"
        );
        let kh = KnownHosts::parse(&text, "f");
        assert_eq!(kh.len(), 1);
        assert_eq!(kh.problems.len(), 3, "{:?}", kh.problems);
        assert!(kh.problems[0].starts_with("f:1: "));
        assert!(kh.problems[1].contains("does not match its type"));
    }

    #[test]
    fn an_entry_line_is_what_it_trusts() {
        let line = entry_line("127.0.0.1", 2222, &blob(KEY_A));
        assert_eq!(line, format!("[127.0.0.1]:2222 ssh-ed25519 {KEY_A}"));
        let kh = KnownHosts::parse(&line, "kh");
        assert_eq!(kh.check("127.0.0.1", 2222, &blob(KEY_A)), Verdict::Known);
        assert!(
            entry_line("Example.COM", 22, &blob(KEY_B)).starts_with("example.com ssh-ed25519 ")
        );
    }

    #[test]
    fn algorithms_for_rsa_include_sha2() {
        assert_eq!(
            algorithms_for("ssh-rsa"),
            vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
        );
    }
}
