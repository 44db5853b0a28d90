//! Debian's headless Chromium for tests of pages served on loopback: the DOM it rendered
//! (`--dump-dom`) and PNG screenshots, with JavaScript on or off. A fresh profile each run;
//! every host but 127.0.0.1 resolves to nothing. See /work/shared/notes/web-and-alerting.md.

use crate::TestCommand;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Chromium binary; fails (naming the package) when it is not installed.
pub fn chromium() -> PathBuf {
    // The binary itself: /usr/bin/chromium is a wrapper script.
    let binary = PathBuf::from("/usr/lib/chromium/chromium");
    assert!(
        binary.is_file(),
        "Chromium is not installed: `apt-get install -y --no-install-recommends chromium` \
         (Debian; about 440 MB)"
    );
    binary
}

/// One headless Chromium run with a fresh profile in `dir`; `extra` picks the output
/// (`--dump-dom` or `--screenshot=…`). Returns stdout.
pub fn browse(dir: &Path, url: &str, javascript: bool, extra: &[&str]) -> String {
    let profile = tempdir(dir, "profile");
    if !javascript {
        // The only switch that really stops scripts: a content setting in the profile.
        std::fs::create_dir_all(profile.join("Default")).unwrap();
        std::fs::write(
            profile.join("Default/Preferences"),
            r#"{"profile":{"default_content_setting_values":{"javascript":2}}}"#,
        )
        .unwrap();
    }
    let run = TestCommand::new(chromium())
        .env("XDG_CONFIG_HOME", profile.join("cfg"))
        .env("XDG_CACHE_HOME", profile.join("cache"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            &format!("--user-data-dir={}", profile.display()),
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            // Nothing leaves loopback.
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--log-level=3",
            "--virtual-time-budget=3000",
        ])
        .args(extra)
        .arg(url)
        .timeout(Duration::from_secs(90))
        .run();
    run.assert_success();
    let _ = std::fs::remove_dir_all(&profile);
    run.stdout
}

fn tempdir(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    path
}

/// The DOM Chromium rendered from `url`, its scratch profile under `dir`.
pub fn dump_dom(dir: &Path, url: &str, javascript: bool) -> String {
    let dom = browse(dir, url, javascript, &["--dump-dom"]);
    // An unreachable URL gives empty output and exit 0.
    assert!(dom.contains("</html>"), "no document from {url}: {dom:?}");
    dom
}

/// A PNG of `url` at `size` (`1280,900`) saved as `dir/file`, checked to be a real picture.
pub fn screenshot(dir: &Path, url: &str, javascript: bool, file: &str, size: &str) {
    let png = dir.join(file);
    browse(
        dir,
        url,
        javascript,
        &[
            &format!("--screenshot={}", png.display()),
            &format!("--window-size={size}"),
        ],
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is no PNG",
        png.display()
    );
    assert!(
        bytes.len() > 20_000,
        "{} is only {} bytes",
        png.display(),
        bytes.len()
    );
}

/// The `href`, `src` and `action` values of an HTML document, unescaped.
pub fn links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["href=\"", "src=\"", "action=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            let end = rest.find('"').unwrap_or(rest.len());
            found.push(rest[..end].replace("&amp;", "&"));
            rest = &rest[end..];
        }
    }
    found
}
