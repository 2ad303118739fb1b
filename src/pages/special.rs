//! The special root files of a site, read and checked the way wrangler 4 sends them with the
//! deployment: `_headers` and `_redirects` (when not empty), the Worker of advanced mode as a
//! `_worker.bundle` part, and `_routes.json` next to it.
//!
//! The Worker is sent as `wrangler pages deploy --no-bundle` sends it: a `_worker.js` file is the
//! one module; a `_worker.js/` directory gives `index.js` as the main module plus every file of the
//! directory that wrangler's module rules take (`.js`/`.mjs` as ES modules, `.txt`/`.html`/`.sql`
//! as text, `.bin` as data, `.wasm` as WebAssembly). Nothing is bundled: imports must name files of
//! the Worker (or runtime built-ins such as `node:` and `cloudflare:` modules). `_worker.bundle`
//! is a nested `multipart/form-data` body with a `metadata` part `{"main_module":…}` and one part
//! per module, byte for byte what wrangler builds (only the random boundary differs; ours is derived
//! from the content, so the same Worker gives the same bytes).
//!
//! Text files (`_headers`, `_redirects`, `_routes.json`, the main module) are decoded as UTF-8 and
//! encoded again, as wrangler's `readFileSync(…, "utf-8")` does: invalid bytes become U+FFFD.
//!
//! Reads the site directory; no network, no terminal.

use std::path::{Path, PathBuf};

/// `_worker.bundle` may be at most this big (reference §6).
pub const MAX_WORKER_BUNDLE_BYTES: usize = 25 * 1024 * 1024;
/// `_routes.json`: at most this many include and exclude rules together…
pub const MAX_ROUTES_RULES: usize = 100;
/// …each at most this many characters (UTF-16 units, as JavaScript counts).
pub const MAX_ROUTES_RULE_LENGTH: usize = 100;

/// Where the site's Worker (advanced mode) is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerSource {
    /// A `_worker.js` file.
    File(PathBuf),
    /// A `_worker.js/` directory with `index.js` and its modules.
    Directory(PathBuf),
}

/// The special files as they go with the deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialFiles {
    pub headers: Option<Vec<u8>>,
    pub redirects: Option<Vec<u8>>,
    /// The nested multipart body of the `_worker.bundle` part.
    pub worker_bundle: Option<Vec<u8>>,
    /// Sent only with a Worker.
    pub routes_json: Option<Vec<u8>>,
    /// The Worker's modules (main module first), for reports.
    pub worker_modules: Vec<String>,
}

impl SpecialFiles {
    /// The parts with their multipart names, in the order wrangler appends them.
    pub fn parts(&self) -> Vec<(&'static str, &[u8])> {
        [
            ("_headers", &self.headers),
            ("_redirects", &self.redirects),
            ("_worker.bundle", &self.worker_bundle),
            ("_routes.json", &self.routes_json),
        ]
        .into_iter()
        .filter_map(|(n, b)| b.as_deref().map(|b| (n, b)))
        .collect()
    }

    pub fn total_bytes(&self) -> usize {
        self.parts().iter().map(|(_, b)| b.len()).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecialError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0}: a `_worker.js` directory needs an `index.js`, its main module (advanced mode: https://developers.cloudflare.com/pages/functions/advanced-mode/)"
    )]
    NoIndex(PathBuf),
    #[error("{0}: the file name is not valid UTF-8, which a Worker module name cannot hold")]
    NotUtf8(PathBuf),
    #[error("{0}: symbolic link loop")]
    Loop(PathBuf),
    #[error(
        "the Worker bundle of {dir} is {size} bytes; Pages accepts at most 25 MiB ({max} bytes)",
        max = MAX_WORKER_BUNDLE_BYTES
    )]
    BundleTooBig { dir: PathBuf, size: usize },
    #[error("Invalid _routes.json file found at: {path}\n{problem}")]
    Routes { path: PathBuf, problem: String },
}

/// Reads the special files of a walked site.
pub fn read(
    headers: Option<&Path>,
    redirects: Option<&Path>,
    worker: Option<&WorkerSource>,
    routes_json: Option<&Path>,
) -> Result<SpecialFiles, SpecialError> {
    let text = |p: Option<&Path>| -> Result<Option<Vec<u8>>, SpecialError> {
        p.map(read_text)
            .transpose()
            .map(|b| b.filter(|b| !b.is_empty()))
    };
    let mut out = SpecialFiles {
        headers: text(headers)?,
        redirects: text(redirects)?,
        ..SpecialFiles::default()
    };
    let modules = match worker {
        None => None,
        Some(WorkerSource::File(p)) => {
            let main = read_text(p)?;
            // wrangler: an empty `_worker.js` is no Worker at all.
            (!main.is_empty()).then(|| vec![Module::main("_worker.js", main)])
        }
        Some(WorkerSource::Directory(dir)) => Some(directory_modules(dir)?),
    };
    if let Some(modules) = modules {
        let bundle = worker_bundle(&modules);
        if bundle.len() > MAX_WORKER_BUNDLE_BYTES {
            let dir = match worker {
                Some(WorkerSource::File(p) | WorkerSource::Directory(p)) => p.clone(),
                None => PathBuf::new(),
            };
            return Err(SpecialError::BundleTooBig {
                dir,
                size: bundle.len(),
            });
        }
        out.worker_modules = modules.iter().map(|m| m.name.clone()).collect();
        out.worker_bundle = Some(bundle);
        if let Some(p) = routes_json {
            let bytes = read_text(p)?;
            check_routes(&bytes).map_err(|problem| SpecialError::Routes {
                path: p.to_path_buf(),
                problem,
            })?;
            out.routes_json = Some(bytes);
        }
    }
    Ok(out)
}

/// A file read as wrangler's `readFileSync(path, "utf-8")` and encoded back.
fn read_text(p: &Path) -> Result<Vec<u8>, SpecialError> {
    let bytes = std::fs::read(p).map_err(|source| SpecialError::Io {
        path: p.to_path_buf(),
        source,
    })?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s.into_bytes(),
        Err(e) => String::from_utf8_lossy(e.as_bytes())
            .into_owned()
            .into_bytes(),
    })
}

/// One module of the Worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub content_type: &'static str,
    pub content: Vec<u8>,
}

impl Module {
    fn main(name: &str, content: Vec<u8>) -> Module {
        Module {
            name: name.to_string(),
            content_type: ESM,
            content,
        }
    }
}

const ESM: &str = "application/javascript+module";

/// wrangler's module rules for a `_worker.js` directory: its own ES-module rule, then the default
/// rules. Matching is on the name's ending, case-sensitive.
fn module_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.').map(|(_, e)| e)?;
    match ext {
        "js" | "mjs" => Some(ESM),
        "txt" | "html" | "sql" => Some("text/plain"),
        "bin" => Some("application/octet-stream"),
        "wasm" => Some("application/wasm"),
        _ => None,
    }
}

/// `index.js` (read as text) first, then every other file a rule takes (raw bytes), by name.
fn directory_modules(dir: &Path) -> Result<Vec<Module>, SpecialError> {
    let index = dir.join("index.js");
    if !std::fs::metadata(&index).is_ok_and(|m| m.is_file()) {
        return Err(SpecialError::NoIndex(dir.to_path_buf()));
    }
    let mut files = Vec::new();
    collect(dir, "", &mut Vec::new(), &mut files)?;
    files.sort();
    let mut modules = vec![Module::main("index.js", read_text(&index)?)];
    for (name, path) in files {
        if name == "index.js" {
            continue;
        }
        let Some(content_type) = module_type(&name) else {
            continue;
        };
        let content = std::fs::read(&path).map_err(|source| SpecialError::Io {
            path: path.clone(),
            source,
        })?;
        modules.push(Module {
            name,
            content_type,
            content,
        });
    }
    Ok(modules)
}

/// Every file under `dir` as (name relative to the Worker's root, path); symlinks followed;
/// `.wrangler` at the root skipped, as wrangler does.
fn collect(
    dir: &Path,
    prefix: &str,
    ancestors: &mut Vec<PathBuf>,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), SpecialError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SpecialError::Io { path, source }
    };
    let canonical = std::fs::canonicalize(dir).map_err(io(dir))?;
    if ancestors.contains(&canonical) {
        return Err(SpecialError::Loop(dir.to_path_buf()));
    }
    ancestors.push(canonical);
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| SpecialError::NotUtf8(path.clone()))?;
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = std::fs::metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            if rel != ".wrangler" {
                collect(&path, &rel, ancestors, out)?;
            }
        } else if meta.is_file() {
            out.push((rel, path));
        }
    }
    ancestors.pop();
    Ok(())
}

/// The `_worker.bundle` body: `metadata` then each module, in undici's `multipart/form-data`
/// encoding. The boundary has undici's form (`----formdata-undici-0` and 11 digits); the digits
/// come from a hash of the content, and are changed until the boundary occurs in no module.
pub fn worker_bundle(modules: &[Module]) -> Vec<u8> {
    let mut seed = blake3::Hasher::new();
    for m in modules {
        seed.update(m.name.as_bytes());
        seed.update(&m.content);
    }
    let mut digest = seed.finalize();
    let boundary = loop {
        let n = u64::from_le_bytes(digest.as_bytes()[..8].try_into().unwrap_or([0; 8]));
        let b = format!("----formdata-undici-0{:011}", n % 100_000_000_000);
        if !modules.iter().any(|m| contains(&m.content, b.as_bytes())) {
            break b;
        }
        digest = blake3::hash(digest.as_bytes());
    };
    let main = modules.first().map(|m| m.name.as_str()).unwrap_or("");
    let metadata = serde_json::json!({ "main_module": main }).to_string();
    let mut out = Vec::new();
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{metadata}\r\n"
        )
        .as_bytes(),
    );
    for m in modules {
        let name = escape_name(&m.name);
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: {}\r\n\r\n",
                m.content_type
            )
            .as_bytes(),
        );
        out.extend_from_slice(&m.content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// undici escapes `\n`, `\r` and `"` in part names.
fn escape_name(name: &str) -> String {
    name.replace('\n', "%0A")
        .replace('\r', "%0D")
        .replace('"', "%22")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// wrangler's `_routes.json` checks, in its order and with its messages: version 1 with `include`
/// and `exclude` arrays, at least one include rule, at most 100 rules, each at most 100
/// characters and starting with `/`, no rule ending in `/*` that overlaps another. Invalid JSON,
/// which wrangler silently leaves out of the deployment, is an error here.
pub fn check_routes(bytes: &[u8]) -> Result<(), String> {
    let spec_help = "Please make sure the JSON object has the following format:\n{\n\tversion: 1;\n\tinclude: string[];\n\texclude: string[];\n}\nand that at least one include rule is provided.";
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("It is not valid JSON ({e}). {spec_help}"))?;
    let rules = |key: &str| -> Option<Vec<String>> {
        v.get(key)?
            .as_array()?
            .iter()
            .map(|r| r.as_str().map(String::from))
            .collect()
    };
    let version_ok = v
        .get("version")
        .and_then(serde_json::Value::as_f64)
        .is_some_and(|n| n == 1.0);
    let (Some(include), Some(exclude), true) = (rules("include"), rules("exclude"), version_ok)
    else {
        return Err(spec_help.to_string());
    };
    if include.is_empty() {
        return Err(
            "Routes must have at least 1 include rule, but no include rules were detected.".into(),
        );
    }
    if include.len() + exclude.len() > MAX_ROUTES_RULES {
        return Err(format!(
            "Detected rules that are over the {MAX_ROUTES_RULES} rule limit. Please make sure you have a total of {MAX_ROUTES_RULES} include and exclude rules combined."
        ));
    }
    let all = || include.iter().chain(exclude.iter());
    if let Some(r) = all().find(|r| r.encode_utf16().count() > MAX_ROUTES_RULE_LENGTH) {
        return Err(format!(
            "Detected rules the are over the {MAX_ROUTES_RULE_LENGTH} character limit. Please make sure that each include and exclude routing rule is at most {MAX_ROUTES_RULE_LENGTH} characters long. ({r:.40}…)"
        ));
    }
    if let Some(r) = all().find(|r| !r.starts_with('/')) {
        return Err(format!("All rules must start with '/'. (`{r}`)"));
    }
    for list in [&include, &exclude] {
        if let Some((a, b)) = overlap(list) {
            return Err(format!(
                "Overlapping rules found. Please make sure that rules ending with a splat (eg. \"/api/*\") don't overlap any other rules (eg. \"/api/foo\"). This applies to both include and exclude rules individually. (`{a}` and `{b}`)"
            ));
        }
    }
    Ok(())
}

/// wrangler's `hasOverlappingRules`: a rule `P/*` and any other rule starting with `P/`.
fn overlap(rules: &[String]) -> Option<(&str, &str)> {
    for splat in rules.iter().filter(|r| r.ends_with("/*")) {
        let prefix = &splat[..splat.len() - 1];
        if let Some(other) = rules.iter().find(|r| *r != splat && r.starts_with(prefix)) {
            return Some((splat, other));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, content: &[u8]) -> PathBuf {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    /// The body wrangler 4.86 sent for a `_worker.js` file with `--no-bundle` (its boundary
    /// replaced by ours).
    #[test]
    fn a_worker_file_gives_wranglers_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let w = write(
            dir.path(),
            "_worker.js",
            b"export default { fetch() { return new Response(\"hi\") } }\n",
        );
        let s = read(None, None, Some(&WorkerSource::File(w)), None).unwrap();
        let body = String::from_utf8(s.worker_bundle.unwrap()).unwrap();
        let boundary = body[2..].split("\r\n").next().unwrap().to_string();
        assert!(boundary.starts_with("----formdata-undici-0") && boundary.len() == 32);
        let want = "--B\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"main_module\":\"_worker.js\"}\r\n--B\r\nContent-Disposition: form-data; name=\"_worker.js\"; filename=\"_worker.js\"\r\nContent-Type: application/javascript+module\r\n\r\nexport default { fetch() { return new Response(\"hi\") } }\n\r\n--B--\r\n";
        assert_eq!(body.replace(&boundary, "B"), want);
        assert_eq!(s.worker_modules, ["_worker.js"]);
    }

    /// wrangler 4.86 `--no-bundle` with a `_worker.js/` directory: index.js, then the files its
    /// module rules take, each with the rule's type; other files are left out.
    #[test]
    fn a_worker_directory_gives_wranglers_modules() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("_worker.js");
        write(&w, "index.js", b"import {x} from \"./lib/util.js\";\n");
        write(&w, "lib/util.js", b"export const x = \"hi\";\n");
        write(&w, "lib/t.txt", b"text module\n");
        write(&w, "lib/d.bin", b"\x00\x01");
        write(&w, "lib/m.wasm", b"\x00asm");
        write(&w, "lib/readme.md", b"not a module");
        write(&w, "lib/UPPER.JS", b"not a module either (case)");
        write(&w, ".wrangler/tmp.js", b"skipped");
        let s = read(None, None, Some(&WorkerSource::Directory(w)), None).unwrap();
        assert_eq!(
            s.worker_modules,
            [
                "index.js",
                "lib/d.bin",
                "lib/m.wasm",
                "lib/t.txt",
                "lib/util.js"
            ]
        );
        let body = String::from_utf8_lossy(s.worker_bundle.as_ref().unwrap()).into_owned();
        assert!(body.contains("{\"main_module\":\"index.js\"}"));
        for (name, ty) in [
            ("lib/d.bin", "application/octet-stream"),
            ("lib/m.wasm", "application/wasm"),
            ("lib/t.txt", "text/plain"),
            ("lib/util.js", "application/javascript+module"),
        ] {
            assert!(
                body.contains(&format!(
                    "name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: {ty}\r\n"
                )),
                "{name}"
            );
        }
        // Same Worker, same bytes.
        let again = read(
            None,
            None,
            Some(&WorkerSource::Directory(dir.path().join("_worker.js"))),
            None,
        )
        .unwrap();
        assert_eq!(again.worker_bundle, s.worker_bundle);
    }

    #[test]
    fn a_worker_directory_without_index_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("_worker.js");
        write(&w, "main.js", b"x");
        let e = read(None, None, Some(&WorkerSource::Directory(w)), None).unwrap_err();
        assert!(e.to_string().contains("needs an `index.js`"), "{e}");
    }

    #[test]
    fn text_files_are_sent_when_not_empty_and_decoded_as_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let h = write(dir.path(), "_headers", b"/*\n  X-A: \xff\n");
        let r = write(dir.path(), "_redirects", b"");
        let routes = write(dir.path(), "_routes.json", b"not json");
        // Without a Worker, _routes.json is neither read nor checked.
        let s = read(Some(&h), Some(&r), None, Some(&routes)).unwrap();
        assert_eq!(
            s.headers.as_deref(),
            Some("/*\n  X-A: \u{fffd}\n".as_bytes())
        );
        assert_eq!(s.redirects, None);
        assert_eq!(s.routes_json, None);
        assert_eq!(
            s.parts().iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            ["_headers"]
        );
        // An empty _worker.js is no Worker (wrangler's rule).
        let w = write(dir.path(), "_worker.js", b"");
        let s = read(None, None, Some(&WorkerSource::File(w)), Some(&routes)).unwrap();
        assert_eq!(s.worker_bundle, None);
    }

    #[test]
    fn routes_are_checked_as_wrangler_does_and_the_file_is_named() {
        let ok = [
            r#"{"version":1,"include":["/api/*"],"exclude":[]}"#,
            r#"{"version":1,"include":["/*"],"exclude":["/static/*","/favicon.ico"]}"#,
            r#"{"version":1,"include":["/api/*","/api/*"],"exclude":[]}"#,
        ];
        for r in ok {
            assert_eq!(check_routes(r.as_bytes()), Ok(()), "{r}");
        }
        let long = format!(
            r#"{{"version":1,"include":["/{}"],"exclude":[]}}"#,
            "a".repeat(100)
        );
        let many = format!(
            r#"{{"version":1,"include":[{}],"exclude":[]}}"#,
            (0..101)
                .map(|i| format!("\"/r{i}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let bad = [
            ("{", "not valid JSON"),
            (
                r#"{"version":2,"include":["/a"],"exclude":[]}"#,
                "following format",
            ),
            (r#"{"version":1,"include":["/a"]}"#, "following format"),
            (
                r#"{"version":1,"include":[1],"exclude":[]}"#,
                "following format",
            ),
            (
                r#"{"version":1,"include":[],"exclude":[]}"#,
                "at least 1 include rule",
            ),
            (many.as_str(), "over the 100 rule limit"),
            (long.as_str(), "100 character limit"),
            (
                r#"{"version":1,"include":["api/*"],"exclude":[]}"#,
                "must start with '/'",
            ),
            (
                r#"{"version":1,"include":["/api/*","/api/foo"],"exclude":[]}"#,
                "Overlapping rules",
            ),
        ];
        for (r, want) in bad {
            let e = check_routes(r.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{r}: {e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let w = write(dir.path(), "_worker.js", b"export default {}");
        let routes = write(
            dir.path(),
            "_routes.json",
            br#"{"version":1,"include":[],"exclude":[]}"#,
        );
        let e = read(None, None, Some(&WorkerSource::File(w)), Some(&routes)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("Invalid _routes.json file found at: "),
            "{msg}"
        );
        assert!(msg.contains(&routes.display().to_string()), "{msg}");
    }
}
