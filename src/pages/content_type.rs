//! Content types exactly as wrangler picks them: `getType(relative_path)` of the JavaScript `mime`
//! package v3.0.0 (the copy bundled in wrangler 4's Pages upload), else `application/octet-stream`.
//! wrangler applies no overrides of its own for Pages. Pure.
//!
//! The table is the package's whole extension map, generated from mime@3.0.0 itself by
//! `scripts/gen-mime-table.sh` into `mime_table.rs` (1,173 extensions, with the package's precedence
//! where several types list one extension). `mime_guess` differs in places (`js`, `ico`, `ts`,
//! `map` …), so the table is embedded rather than borrowed.

use super::mime_table::TABLE;

/// The fallback when `getType` answers null.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The content type wrangler sends for a root-relative path (`/` separators).
pub fn content_type(rel_path: &str) -> &'static str {
    get_type(rel_path).unwrap_or(OCTET_STREAM)
}

/// mime v3 `getType`, step for step:
///
/// ```js
/// let last = path.replace(/^.*[/\\]/, '').toLowerCase();
/// let ext = last.replace(/^.*\./, '').toLowerCase();
/// let hasPath = last.length < path.length;
/// let hasDot = ext.length < last.length - 1;
/// return (hasDot || !hasPath) && this._types[ext] || null;
/// ```
///
/// So a bare name without a dot counts only when the whole path is that name (`json` →
/// application/json, but `assets/json` → null). JavaScript's `.` does not match line terminators
/// and `.length` counts UTF-16 units; both are reproduced for names that contain them.
pub fn get_type(path: &str) -> Option<&'static str> {
    let last = strip_through_last(path, &['/', '\\']).to_lowercase();
    let ext = strip_through_last(&last, &['.']);
    let has_path = utf16_len(&last) < utf16_len(path);
    let has_dot = utf16_len(ext) < utf16_len(&last) - 1;
    if has_dot || !has_path {
        lookup(ext)
    } else {
        None
    }
}

/// `s.replace(/^.*[seps]/, '')`: drops the longest prefix of the first line (JavaScript's `.` stops
/// at `\n`, `\r`, U+2028 and U+2029) that ends in one of `seps` (all ASCII).
fn strip_through_last<'a>(s: &'a str, seps: &[char]) -> &'a str {
    let first_line = s
        .find(['\n', '\r', '\u{2028}', '\u{2029}'])
        .unwrap_or(s.len());
    match s[..first_line].rfind(seps) {
        Some(i) => &s[i + 1..],
        None => s,
    }
}

fn utf16_len(s: &str) -> i64 {
    s.encode_utf16().count() as i64
}

fn lookup(ext: &str) -> Option<&'static str> {
    TABLE
        .binary_search_by(|(e, _)| (*e).cmp(ext))
        .ok()
        .map(|i| TABLE[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn the_whole_mime_3_table_is_embedded() {
        // mime@3.0.0's default instance maps exactly this many extensions.
        assert_eq!(TABLE.len(), 1173);
        assert!(
            TABLE
                .iter()
                .all(|(e, t)| e.is_ascii() && *e == e.to_ascii_lowercase() && t.contains('/'))
        );
    }

    /// Answers of `require('mime').getType(path)` from mime@3.0.0 under Node, including the
    /// extensions several types claim (the standard types win; a `*` entry never claims).
    #[test]
    fn tricky_entries_answer_as_mime_3_does() {
        for (path, want) in [
            ("a.shtml", Some("text/html")),
            ("a.m4s", Some("video/iso.segment")),
            ("a.sql", Some("application/x-sql")),
            ("a.xsd", Some("application/xml")),
            ("a.mpd", Some("application/dash+xml")),
            ("a.jp2", Some("image/jp2")),
            ("a.ktx2", Some("image/ktx2")),
            ("a.ttc", Some("font/collection")),
            ("a.wmv", Some("video/x-ms-wmv")),
            ("a.cer", Some("application/pkix-cert")),
            ("a.xslt", Some("application/xslt+xml")),
            ("a.vcard", Some("text/vcard")),
            ("a.lua", Some("text/x-lua")),
            ("a.bat", Some("application/x-msdownload")),
            // Claimed by several types.
            ("a.wav", Some("audio/wav")),
            ("a.xsl", Some("application/xml")),
            ("a.mp3", Some("audio/mpeg")),
            ("a.rtf", Some("application/rtf")),
            ("a.bmp", Some("image/bmp")),
            ("a.exe", Some("application/octet-stream")),
            ("a.dll", Some("application/octet-stream")),
            ("a.msi", Some("application/octet-stream")),
            ("a.deb", Some("application/octet-stream")),
            ("a.iso", Some("application/octet-stream")),
            ("a.key", Some("application/vnd.apple.keynote")),
            ("a.pages", Some("application/vnd.apple.pages")),
            ("a.m4a", Some("audio/mp4")),
            ("a.mp4", Some("video/mp4")),
            ("a.prc", Some("application/x-mobipocket-ebook")),
            ("a.pdb", Some("application/vnd.palm")),
            ("a.sub", Some("text/vnd.dvb.subtitle")),
            ("a.xlf", Some("application/xliff+xml")),
            ("a.wmf", Some("image/wmf")),
            ("a.emf", Some("image/emf")),
            ("a.wmz", Some("application/x-ms-wmz")),
            ("a.obj", Some("model/obj")),
            ("a.jpm", Some("image/jpm")),
            ("a.x3db", Some("model/x3d+fastinfoset")),
            ("a.x3dv", Some("model/x3d-vrml")),
            ("a.3gpp", Some("video/3gpp")),
            ("a.ra", Some("audio/x-pn-realaudio")),
            ("a.xml", Some("application/xml")),
            ("a.org", Some("application/vnd.lotus-organizer")),
            ("a.ico", Some("image/vnd.microsoft.icon")),
            (
                "a.fe_launch",
                Some("application/vnd.denovo.fcselayout-link"),
            ),
            (
                "a.vbox-extpack",
                Some("application/x-virtualbox-vbox-extpack"),
            ),
            // Path shapes.
            ("x/.htaccess", None),
            (".json", Some("application/json")),
            ("json", Some("application/json")),
            ("x/json", None),
            ("foo.", None),
            ("a\nb/c.html", None),
            ("a/b\nc.html", None),
            ("a.b\u{2028}c.js", None),
            ("dir\\file.css", Some("text/css")),
            ("A.HTML", Some("text/html")),
            ("x/.JSON", None),
            ("x/..json", Some("application/json")),
            ("İ.html", Some("text/html")),
            ("ﬁle.PDF", Some("application/pdf")),
            ("x/file.Ǆ", None),
            ("a.tar.gz", Some("application/gzip")),
            ("a.", None),
            (".", None),
            (" .js", Some("application/javascript")),
        ] {
            assert_eq!(get_type(path), want, "{path:?}");
        }
    }

    #[test]
    fn appendix_a_answers() {
        for (ext, want) in [
            ("html", Some("text/html")),
            ("js", Some("application/javascript")),
            ("mjs", Some("application/javascript")),
            ("cjs", Some("application/node")),
            ("map", Some("application/json")),
            ("ts", Some("video/mp2t")),
            ("ico", Some("image/vnd.microsoft.icon")),
            ("yml", Some("text/yaml")),
            ("rs", Some("application/rls-services+xml")),
            ("flac", Some("audio/x-flac")),
            ("webmanifest", Some("application/manifest+json")),
            ("jxl", None),
            ("tsx", None),
            ("br", None),
            ("zst", None),
            ("tgz", None),
            ("py", None),
            ("vue", None),
            ("kt", None),
        ] {
            assert_eq!(get_type(&format!("dir/file.{ext}")), want, "{ext}");
        }
    }

    #[test]
    fn whole_path_quirks() {
        assert_eq!(content_type("LICENSE"), OCTET_STREAM);
        assert_eq!(content_type("json"), "application/json");
        assert_eq!(content_type("html"), "text/html");
        assert_eq!(content_type("assets/json"), OCTET_STREAM);
        assert_eq!(content_type(".htaccess"), OCTET_STREAM);
        assert_eq!(content_type("a.HTML"), "text/html");
        assert_eq!(content_type("Makefile"), OCTET_STREAM);
        assert_eq!(content_type("x/.well-known/foo"), OCTET_STREAM);
        assert_eq!(content_type("assets/hello world.txt"), "text/plain");
        assert_eq!(content_type("assets/LICENSE"), OCTET_STREAM);
        assert_eq!(content_type("foo."), OCTET_STREAM);
    }
}
