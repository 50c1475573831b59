//! The directory listing that `peer serve --list` turns on: one small HTML
//! page naming the files and folders of one directory, sorted, with every
//! name escaped for HTML and percent-encoded in its link. A directory with
//! more than [`MAX_ENTRIES`] entries is listed in part and says so.

use std::{fmt::Write, io, path::Path};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The most entries one page lists (a bound on the work and the page size).
pub const MAX_ENTRIES: usize = 10_000;

/// Characters kept as they are in a link: RFC 3986 unreserved.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The page for `dir`, reached by the decoded request `segments`.
pub fn render(segments: &[String], dir: &Path) -> io::Result<String> {
    let mut entries = Vec::new();
    let mut truncated = false;
    for entry in std::fs::read_dir(dir)? {
        if entries.len() == MAX_ENTRIES {
            truncated = true;
            break;
        }
        let entry = entry?;
        // Names that are not UTF-8 cannot be requested, so they are not listed.
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        match std::fs::metadata(entry.path()) {
            Ok(meta) if meta.is_dir() => entries.push((name, true)),
            Ok(meta) if meta.is_file() => entries.push((name, false)),
            _ => {}
        }
    }
    entries.sort();

    let mut base = String::from("/");
    for segment in segments {
        base.push_str(&utf8_percent_encode(segment, KEEP).to_string());
        base.push('/');
    }
    let title = escape(&format!("/{}", segments.join("/")));
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body><h1>{title}</h1>\n<ul>\n"
    );
    for (name, is_dir) in &entries {
        let slash = if *is_dir { "/" } else { "" };
        let _ = writeln!(
            page,
            "<li><a href=\"{base}{}{slash}\">{}{slash}</a></li>",
            utf8_percent_encode(name, KEEP),
            escape(name)
        );
    }
    page.push_str("</ul>\n");
    if truncated {
        let _ = writeln!(
            page,
            "<p>Only the first {MAX_ENTRIES} entries are listed.</p>"
        );
    }
    page.push_str("</body></html>\n");
    Ok(page)
}

/// Escapes the five characters that matter in HTML text and attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_links_encoded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("<b>&\"x'.txt"), b"").unwrap();
        std::fs::write(dir.path().join("plain.bin"), b"").unwrap();
        std::fs::create_dir(dir.path().join("sub dir")).unwrap();
        let page = render(&["a b".to_owned()], dir.path()).unwrap();
        assert!(page.contains("<title>/a b</title>"), "{page}");
        assert!(
            page.contains(
                "<a href=\"/a%20b/%3Cb%3E%26%22x%27.txt\">&lt;b&gt;&amp;&quot;x&#39;.txt</a>"
            ),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"/a%20b/plain.bin\">plain.bin</a>"),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"/a%20b/sub%20dir/\">sub dir/</a>"),
            "{page}"
        );
        assert!(!page.contains("<b>"), "{page}");
    }
}
