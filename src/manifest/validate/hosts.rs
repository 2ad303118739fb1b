//! Hosts: `local` or `ssh://user@host[:port]` (port 22 by default, IPv6 in brackets), and the
//! `hosts:` list of an environment (no host twice). A host that does not parse gets a "did you
//! mean" for a misspelt `local` or scheme, else the forms a host takes.

use super::obj::Obj;
use super::values::string_list;
use super::{Result, err, err_help};
use crate::diag::suggest::closest;
use crate::manifest::Host;

/// `hosts:` of an environment (absent: none), each parsed, none listed twice.
pub(super) fn list(o: &Obj) -> Result<Vec<Host>> {
    let mut hosts = Vec::new();
    if let Some((hk, hv)) = o.get("hosts") {
        for (s, node) in string_list(hk, hv)? {
            match parse_host(&s) {
                Ok(h) => {
                    if hosts.contains(&h) {
                        return Err(err(node.span, format!("host `{s}` is listed twice")));
                    }
                    hosts.push(h)
                }
                Err(msg) => return Err(err_help(node.span, msg, host_help(&s))),
            }
        }
    }
    Ok(hosts)
}

const HOST_EXAMPLE: &str = "write `local` or `ssh://user@host[:port]`, e.g. ssh://deploy@staging.example.com:22 or ssh://deploy@[2001:db8::1]:2222";

/// The help for a host that does not parse: "did you mean" for a misspelt `local` (`lcoal`,
/// `Local`) or scheme (`shh://`), else the forms a host takes.
fn host_help(s: &str) -> String {
    match s.split_once("://") {
        None if !s.contains(['@', ':', '/', '.']) && closest(s, ["local"]).is_some() => {
            return "did you mean `local`?".into();
        }
        Some((scheme, rest)) if scheme != "ssh" && closest(scheme, ["ssh"]).is_some() => {
            return format!("did you mean `ssh://{rest}`?");
        }
        _ => {}
    }
    HOST_EXAMPLE.to_string()
}

/// Parses `local` or `ssh://user@host[:port]` (port 22 by default; IPv6 in brackets).
pub fn parse_host(s: &str) -> std::result::Result<Host, String> {
    if s == "local" {
        return Ok(Host::Local);
    }
    let rest = match s.split_once("://") {
        Some(("ssh", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "unsupported scheme `{scheme}://` in host `{s}`; only ssh:// is supported"
            ));
        }
        None if s.contains('@') => {
            return Err(format!("host `{s}` lacks the ssh:// scheme"));
        }
        None => return Err(format!("invalid host `{s}`")),
    };
    if rest.contains(['/', '?', '#']) {
        return Err(format!(
            "host `{s}` has a path; a host is only user@host[:port]"
        ));
    }
    let Some((user, hostport)) = rest.rsplit_once('@') else {
        return Err(format!("host `{s}` is missing the user (ssh://USER@host)"));
    };
    if user.is_empty() {
        return Err(format!("host `{s}` is missing the user (ssh://USER@host)"));
    }
    if user.contains(':') {
        return Err(format!(
            "host `{s}` contains a password; passwords are not supported (use DEPLOY_SSH_KEY)"
        ));
    }
    if !user
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!("invalid user `{user}` in host `{s}`"));
    }
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err(format!("host `{s}` has an unclosed `[`"));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{addr}` in host `{s}` is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err(format!("unexpected `{p}` after `]` in host `{s}`")),
            },
        };
        (addr, port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => {
                if p.contains(':') {
                    return Err(format!(
                        "host `{s}` looks like an IPv6 address without brackets; write it as [ADDRESS]"
                    ));
                }
                (h, Some(p))
            }
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("host `{s}` is missing the host name"));
    }
    if !hostport.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(format!("invalid host name `{host}` in `{s}`"));
    }
    let port = match port {
        None => 22,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("bad port `{p}` in host `{s}` (1-65535)")),
        },
    };
    Ok(Host::Ssh {
        user: user.to_string(),
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::validate::tests::fail;

    #[test]
    fn hosts() {
        let ok = |s: &str| parse_host(s).unwrap();
        assert_eq!(ok("local"), Host::Local);
        assert_eq!(
            ok("ssh://deploy@h.example.com"),
            Host::Ssh {
                user: "deploy".into(),
                host: "h.example.com".into(),
                port: 22
            }
        );
        assert_eq!(
            ok("ssh://d@[::1]:2222"),
            Host::Ssh {
                user: "d".into(),
                host: "::1".into(),
                port: 2222
            }
        );
        assert_eq!(ok("ssh://d@10.0.0.1:22").to_string(), "ssh://d@10.0.0.1:22");
        for (bad, says) in [
            ("http://d@h", "unsupported scheme `http://`"),
            ("ssh://h.example.com", "missing the user"),
            ("ssh://@h", "missing the user"),
            ("ssh://d@h:0", "bad port `0`"),
            ("ssh://d@h:70000", "bad port `70000`"),
            ("ssh://d@h:x", "bad port"),
            ("ssh://d@::1", "without brackets"),
            ("ssh://d@[nope]", "not an IPv6 address"),
            ("ssh://d:pw@h", "password"),
            ("ssh://d@h/srv", "has a path"),
            ("d@h", "lacks the ssh:// scheme"),
            ("locl", "invalid host"),
        ] {
            let e = parse_host(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let (l, c, m, h) = fail(
            "environments:\n  s:\n    dir: /srv\n    hosts:\n      - local\n      - ssh://deploy@h:99999\n",
        );
        assert_eq!((l, c), (8, 9));
        assert!(m.contains("bad port"));
        assert!(h.unwrap().contains("ssh://deploy@staging.example.com:22"));
    }

    #[test]
    fn misspelt_hosts_get_a_suggestion() {
        let host = |h: &str| {
            fail(&format!(
                "environments:\n  s:\n    hosts: [\"{h}\"]\n    dir: /srv\n"
            ))
        };
        let (l, c, m, help) = host("lcoal");
        assert_eq!((l, c), (5, 13));
        assert_eq!(m, "invalid host `lcoal`");
        assert_eq!(help.as_deref(), Some("did you mean `local`?"));
        assert_eq!(host("Local").3.as_deref(), Some("did you mean `local`?"));
        assert_eq!(
            host("shh://deploy@prod.example.com").3.as_deref(),
            Some("did you mean `ssh://deploy@prod.example.com`?")
        );
        // Nothing close: the forms a host takes.
        assert_eq!(host("banana").3.as_deref(), Some(HOST_EXAMPLE));
        assert_eq!(
            host("https://deploy@prod.example.com").3.as_deref(),
            Some(HOST_EXAMPLE)
        );
    }
}
