//! Content types exactly as wrangler picks them: `getType(relative_path)` of the JavaScript `mime`
//! package v3.0.0, else `application/octet-stream`. Pure.
//!
//! The table holds mime v3's answers for the extensions a static site uses (reference Appendix A and
//! the common neighbours of those). `mime_guess` differs in places (`js`, `ico`, `ts`, `map` …), so
//! the table is embedded here rather than borrowed.

/// The fallback when `getType` answers null.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The content type wrangler sends for a root-relative path (`/` separators).
pub fn content_type(rel_path: &str) -> &'static str {
    get_type(rel_path).unwrap_or(OCTET_STREAM)
}

/// mime v3 `getType`: the last segment, lower-cased; its text after the last dot. A bare name
/// without a dot counts only when the whole path is that name (`json` → application/json, but
/// `assets/json` → null).
pub fn get_type(path: &str) -> Option<&'static str> {
    let last = path
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .to_lowercase();
    let ext = last.rsplit('.').next().unwrap_or(&last);
    let has_path = last.len() < path.len();
    let has_dot = ext.len() + 1 < last.len();
    if has_dot || !has_path {
        lookup(ext)
    } else {
        None
    }
}

fn lookup(ext: &str) -> Option<&'static str> {
    TABLE
        .binary_search_by(|(e, _)| (*e).cmp(ext))
        .ok()
        .map(|i| TABLE[i].1)
}

/// mime v3.0.0 (standard + other types), sorted by extension for binary search.
const TABLE: &[(&str, &str)] = &[
    ("3g2", "video/3gpp2"),
    ("3gp", "video/3gpp"),
    ("3gpp", "video/3gpp"),
    ("7z", "application/x-7z-compressed"),
    ("aac", "audio/x-aac"),
    ("abw", "application/x-abiword"),
    ("ai", "application/postscript"),
    ("aif", "audio/x-aiff"),
    ("aifc", "audio/x-aiff"),
    ("aiff", "audio/x-aiff"),
    ("apk", "application/vnd.android.package-archive"),
    ("apng", "image/apng"),
    ("appcache", "text/cache-manifest"),
    ("arc", "application/x-freearc"),
    ("asc", "application/pgp-signature"),
    ("atom", "application/atom+xml"),
    ("avi", "video/x-msvideo"),
    ("avif", "image/avif"),
    ("azw", "application/vnd.amazon.ebook"),
    ("bin", "application/octet-stream"),
    ("bmp", "image/bmp"),
    ("bz", "application/x-bzip"),
    ("bz2", "application/x-bzip2"),
    ("c", "text/x-c"),
    ("cc", "text/x-c"),
    ("cjs", "application/node"),
    ("coffee", "text/coffeescript"),
    ("conf", "text/plain"),
    ("cpp", "text/x-c"),
    ("crt", "application/x-x509-ca-cert"),
    ("csh", "application/x-csh"),
    ("css", "text/css"),
    ("csv", "text/csv"),
    ("cxx", "text/x-c"),
    ("deb", "application/octet-stream"),
    ("def", "text/plain"),
    ("der", "application/x-x509-ca-cert"),
    ("dll", "application/octet-stream"),
    ("dmg", "application/octet-stream"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("dtd", "application/xml-dtd"),
    ("ear", "application/java-archive"),
    ("eot", "application/vnd.ms-fontobject"),
    ("eps", "application/postscript"),
    ("epub", "application/epub+zip"),
    ("exe", "application/octet-stream"),
    ("flac", "audio/x-flac"),
    ("flv", "video/x-flv"),
    ("geojson", "application/geo+json"),
    ("gif", "image/gif"),
    ("glb", "model/gltf-binary"),
    ("gltf", "model/gltf+json"),
    ("gz", "application/gzip"),
    ("h", "text/x-c"),
    ("heic", "image/heic"),
    ("heif", "image/heif"),
    ("hh", "text/x-c"),
    ("htc", "text/x-component"),
    ("htm", "text/html"),
    ("html", "text/html"),
    ("ico", "image/vnd.microsoft.icon"),
    ("ics", "text/calendar"),
    ("ini", "text/plain"),
    ("iso", "application/octet-stream"),
    ("jar", "application/java-archive"),
    ("java", "text/x-java-source"),
    ("jpe", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "application/javascript"),
    ("json", "application/json"),
    ("json5", "application/json5"),
    ("jsonld", "application/ld+json"),
    ("jsx", "text/jsx"),
    ("kml", "application/vnd.google-earth.kml+xml"),
    ("kmz", "application/vnd.google-earth.kmz"),
    ("less", "text/less"),
    ("list", "text/plain"),
    ("log", "text/plain"),
    ("m3u", "audio/x-mpegurl"),
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("m4a", "audio/mp4"),
    ("m4v", "video/x-m4v"),
    ("man", "text/troff"),
    ("manifest", "text/cache-manifest"),
    ("map", "application/json"),
    ("markdown", "text/markdown"),
    ("md", "text/markdown"),
    ("mdx", "text/mdx"),
    ("mid", "audio/midi"),
    ("midi", "audio/midi"),
    ("mjs", "application/javascript"),
    ("mkv", "video/x-matroska"),
    ("mov", "video/quicktime"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("mpeg", "video/mpeg"),
    ("mpg", "video/mpeg"),
    ("msi", "application/octet-stream"),
    ("obj", "model/obj"),
    ("odp", "application/vnd.oasis.opendocument.presentation"),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("oga", "audio/ogg"),
    ("ogg", "audio/ogg"),
    ("ogv", "video/ogg"),
    ("ogx", "application/ogg"),
    ("opus", "audio/ogg"),
    ("otf", "font/otf"),
    ("pdf", "application/pdf"),
    ("pem", "application/x-x509-ca-cert"),
    ("pgp", "application/pgp-encrypted"),
    ("php", "application/x-httpd-php"),
    ("pl", "application/x-perl"),
    ("png", "image/png"),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("ps", "application/postscript"),
    ("psd", "image/vnd.adobe.photoshop"),
    ("rar", "application/vnd.rar"),
    ("rdf", "application/rdf+xml"),
    ("rs", "application/rls-services+xml"),
    ("rss", "application/rss+xml"),
    ("rtf", "application/rtf"),
    ("sass", "text/x-sass"),
    ("scss", "text/x-scss"),
    ("sh", "application/x-sh"),
    ("sig", "application/pgp-signature"),
    ("srt", "application/x-subrip"),
    ("stl", "model/stl"),
    ("svg", "image/svg+xml"),
    ("svgz", "image/svg+xml"),
    ("swf", "application/x-shockwave-flash"),
    ("tar", "application/x-tar"),
    ("text", "text/plain"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("toml", "application/toml"),
    ("ts", "video/mp2t"),
    ("tsv", "text/tab-separated-values"),
    ("ttf", "font/ttf"),
    ("txt", "text/plain"),
    ("usdz", "model/vnd.usdz+zip"),
    ("vcf", "text/x-vcard"),
    ("vtt", "text/vtt"),
    ("wasm", "application/wasm"),
    ("wav", "audio/wav"),
    ("weba", "audio/webm"),
    ("webm", "video/webm"),
    ("webmanifest", "application/manifest+json"),
    ("webp", "image/webp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("xhtml", "application/xhtml+xml"),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("xml", "application/xml"),
    ("xsl", "application/xml"),
    ("yaml", "text/yaml"),
    ("yml", "text/yaml"),
    ("zip", "application/zip"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0));
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
