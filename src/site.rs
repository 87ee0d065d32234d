//! The legacy docroot: which file a URL path names, and what kind of answer it gets.
//!
//! The five scripts the server reimplements are recognised by name and answered natively, with
//! the text around their code taken from the operator's own files (read once at start-up). Other
//! `.php` files are not run: they answer their text outside code when that code is provably
//! inert, else nothing (`php::script`), never their source. Anything
//! else is a static file. Nothing outside the docroot, and no dot-file, is ever reachable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::php::script::{Printed, Script};

/// A legacy script the server answers natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `AJ04custserv.php`: the agent page; sets `username=admin`.
    AgentPage,
    /// `AJ05customer.php`: the customer page; hands out `adminNNN` to newcomers.
    CustomerPage,
    /// `AJsendmsg.php`: stores a message, answers `OK` or `FIAL`.
    Send,
    /// `AJ05comitajax.php`: the customer's long poll.
    Poll,
    /// `AJ04serve.php`: the agent's endless iframe stream.
    Stream,
}

impl Endpoint {
    const ALL: [(&'static str, Endpoint); 5] = [
        ("AJ04custserv.php", Endpoint::AgentPage),
        ("AJ05customer.php", Endpoint::CustomerPage),
        ("AJsendmsg.php", Endpoint::Send),
        ("AJ05comitajax.php", Endpoint::Poll),
        ("AJ04serve.php", Endpoint::Stream),
    ];

    /// The file names of the five, for `--endpoint-to-php`.
    pub const NAMES: [&'static str; 5] = [
        Self::ALL[0].0,
        Self::ALL[1].0,
        Self::ALL[2].0,
        Self::ALL[3].0,
        Self::ALL[4].0,
    ];

    /// The endpoint a legacy file name (`AJsendmsg.php`) names.
    pub fn named(name: &str) -> Option<Endpoint> {
        Self::ALL
            .iter()
            .find(|(file, _)| *file == name)
            .map(|(_, endpoint)| *endpoint)
    }
}

/// What a request path resolves to.
#[derive(Debug)]
pub enum Resource<'a> {
    /// A reimplemented script, with the text around its code.
    Endpoint(Endpoint, &'a Script),
    /// Another `.php` file (its real path): run by PHP-FPM, or see [`Site::printed`].
    OtherScript(PathBuf),
    /// A static file and its Content-Type.
    File(PathBuf, &'static str),
    /// A directory (nginx: 403 without an index file).
    Directory,
    /// Nothing there, or not allowed to be reached.
    NotFound,
}

/// The docroot, with the reimplemented scripts pre-read.
#[derive(Debug)]
pub struct Site {
    root: PathBuf,
    scripts: HashMap<&'static str, (Endpoint, Script)>,
}

impl Site {
    /// Opens a docroot. The reimplemented scripts are served only if their files exist, as under PHP.
    pub fn load(root: &Path) -> Result<Site, Error> {
        let root = root
            .canonicalize()
            .map_err(|err| Error::Config(format!("site directory {}: {err}", root.display())))?;
        let mut scripts = HashMap::new();
        for (name, endpoint) in Endpoint::ALL {
            if let Ok(source) = std::fs::read(root.join(name)) {
                scripts.insert(name, (endpoint, Script::parse(&source)));
            }
        }
        if scripts.is_empty() {
            tracing::warn!(site = %root.display(), "no legacy scripts found in the site directory");
        }
        Ok(Site { root, scripts })
    }

    /// Resolves a URL path relative to the site: nginx's `$uri` (decoded, normalised) with the
    /// base path stripped.
    ///
    /// The `lstat`s run on the calling thread, as nginx's worker runs its `try_files` checks in
    /// its event loop: on a docroot the kernel has cached they take microseconds, where a hop to
    /// tokio's blocking pool per request cost a small page through `--php-fpm` half its rate.
    pub fn resolve(&self, relative: &[u8]) -> Resource<'_> {
        let relative = script_part(relative);
        let Some(segments) = safe_segments(relative) else {
            return Resource::NotFound;
        };
        // `try_files $uri $uri/`: a file named with a trailing slash is not found.
        let names_directory = relative.ends_with(b"/");
        if let ([name], false) = (segments.as_slice(), names_directory) {
            if let Some((endpoint, script)) = self.scripts.get(name.as_str()) {
                return Resource::Endpoint(*endpoint, script);
            }
        }
        locate(&self.root, &segments, names_directory)
    }

    /// What another `.php` file answers without being run; `None` when it cannot be read (then
    /// it is not found). Only read when it is answered that way, not when PHP-FPM runs it.
    pub async fn printed(script: &Path) -> Option<Printed> {
        let source = tokio::fs::read(script).await.ok()?;
        Some(Script::parse(&source).printed())
    }
}

/// The file-system half of [`Site::resolve`]: `path` as nginx's `try_files $uri $uri/`
/// finds it, never outside `root` nor a dot-file. Without symlinks that is one `lstat` per
/// segment (`realpath` costs a `readlink` per component of the whole path, root included).
fn locate(root: &Path, segments: &[String], names_directory: bool) -> Resource<'static> {
    let mut path = root.to_path_buf();
    let mut meta = None;
    for (at, segment) in segments.iter().enumerate() {
        path.push(segment);
        match std::fs::symlink_metadata(&path) {
            Ok(found) if found.is_symlink() => {
                path.extend(&segments[at + 1..]);
                return locate_linked(root, &path, names_directory);
            }
            Ok(found) => meta = Some(found),
            Err(_) => return Resource::NotFound,
        }
    }
    match meta {
        // `safe_segments` refused dot-files and `..`: `path` lies under the root as named.
        Some(meta) => kind(path, &meta, names_directory),
        None => Resource::Directory,
    }
}

/// [`locate`] for a path with a symlink on the way.
fn locate_linked(root: &Path, path: &Path, names_directory: bool) -> Resource<'static> {
    // Symlinks may point anywhere; only what really lies under the root is served.
    let Ok(real) = std::fs::canonicalize(path) else {
        return Resource::NotFound;
    };
    // The dot-file rule applies to where a link leads, too (`env.txt -> .env`).
    let Ok(below_root) = real.strip_prefix(root) else {
        return Resource::NotFound;
    };
    if below_root
        .components()
        .any(|part| part.as_os_str().as_encoded_bytes().starts_with(b"."))
    {
        return Resource::NotFound;
    }
    match std::fs::metadata(&real) {
        Ok(meta) => kind(real, &meta, names_directory),
        Err(_) => Resource::NotFound,
    }
}

/// What a file found at `real` is.
fn kind(real: PathBuf, meta: &std::fs::Metadata, names_directory: bool) -> Resource<'static> {
    if meta.is_dir() {
        Resource::Directory
    } else if names_directory {
        Resource::NotFound
    } else if has_extension(&real, "php") {
        Resource::OtherScript(real)
    } else {
        let mime = content_type(&real);
        Resource::File(real, mime)
    }
}

/// nginx's `location ~ \.php$` with Debian's `snippets/fastcgi-php.conf`
/// (`fastcgi_split_path_info ^(.+?\.php)(/.*)$;`): a path that ends in `.php` runs the script
/// named by its shortest prefix that ends in `.php` and is followed by `/`; the rest is
/// PATH_INFO, which the legacy scripts never read. `/AJ04custserv.php/x.php` is the agent page.
/// Found by `chat-compat fuzz`; recorded as `page_path_info_runs_the_script`.
fn script_part(path: &[u8]) -> &[u8] {
    if !path.ends_with(b".php") {
        return path;
    }
    // `.+?` needs at least one byte before `.php`.
    (1..path.len())
        .find(|&end| end >= 5 && path[..end].ends_with(b".php") && path[end] == b'/')
        .map_or(path, |end| &path[..end])
}

/// Splits a decoded path, refusing `..`, dot-files, NUL, backslashes and non-UTF-8.
fn safe_segments(relative: &[u8]) -> Option<Vec<String>> {
    let decoded = std::str::from_utf8(relative).ok()?;
    let mut segments = Vec::new();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('.') || segment.contains(['\0', '\\']) {
            return None;
        }
        segments.push(segment.to_string());
    }
    Some(segments)
}

fn has_extension(path: &Path, extension: &str) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case(extension))
}

/// nginx's `mime.types` for the kinds of file a legacy docroot holds.
fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|ext| ext.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match extension.as_str() {
        "html" | "htm" | "shtml" => "text/html",
        "css" => "text/css",
        "js" => "application/javascript",
        "json" => "application/json",
        "txt" => "text/plain",
        "xml" => "text/xml",
        "png" => "image/png",
        "gif" => "image/gif",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" | "svgz" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_dot_files_are_refused() {
        assert!(safe_segments(b"/../AJconn.php").is_none());
        assert_eq!(
            script_part(b"/AJ04custserv.php/AJconn.php"),
            b"/AJ04custserv.php"
        );
        assert_eq!(script_part(b"/a.php/b.php/c.php"), b"/a.php");
        assert_eq!(script_part(b"/a.php/b"), b"/a.php/b");
        assert_eq!(script_part(b"/a.phps/b.php"), b"/a.phps/b.php");
        assert_eq!(script_part(b"/.php/b.php"), b"/.php");
        assert_eq!(script_part(b"/x.php"), b"/x.php");
        assert!(safe_segments(b"/.git/config").is_none());
        assert!(safe_segments(b"/a\0b").is_none());
        assert!(safe_segments(b"/a\xffb").is_none());
        assert_eq!(
            safe_segments(b"//jquery.js").expect("plain"),
            vec!["jquery.js"]
        );
        assert_eq!(safe_segments(b"/a b.js").expect("plain"), vec!["a b.js"]);
    }

    #[tokio::test]
    async fn the_bundled_site_resolves() {
        let site = Site::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/compat/legacy-site"
        )))
        .expect("bundled site");
        assert!(matches!(
            site.resolve(b"/AJ05comitajax.php"),
            Resource::Endpoint(Endpoint::Poll, _)
        ));
        let Resource::OtherScript(script) = site.resolve(b"/AJconn.php") else {
            panic!("another script");
        };
        assert_eq!(Site::printed(&script).await, Some(Printed::Declined));
        assert!(matches!(site.resolve(b"/"), Resource::Directory));
        assert!(matches!(site.resolve(b"/missing.php"), Resource::NotFound));
    }

    /// The `lstat` walk and `realpath` agree: a link on any segment is followed only within the
    /// root and never to a dot-file; without links nothing is resolved twice.
    #[test]
    fn links_are_followed_only_within_the_root() {
        let dir = std::env::temp_dir().join(format!("chat-site-locate-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).expect("site");
        std::fs::create_dir_all(root.join(".hidden")).expect("dot-dir");
        std::fs::write(root.join("sub/page.php"), b"<?php").expect("page");
        std::fs::write(root.join(".hidden/x.txt"), b"x").expect("hidden");
        std::fs::write(dir.join("outside.txt"), b"no").expect("outside");
        std::os::unix::fs::symlink("sub", root.join("alias")).expect("link");
        std::os::unix::fs::symlink("../outside.txt", root.join("out.txt")).expect("link");
        std::os::unix::fs::symlink(".hidden", root.join("shown")).expect("link");
        let site = Site::load(&root).expect("site");
        let root = site.root.clone();
        for (path, expected) in [
            ("/sub/page.php", Some(root.join("sub/page.php"))),
            ("/alias/page.php", Some(root.join("sub/page.php"))),
            ("/out.txt", None),
            ("/shown/x.txt", None),
            ("/sub/page.php/", None),
            ("/sub/missing.php", None),
        ] {
            let found = match site.resolve(path.as_bytes()) {
                Resource::OtherScript(real) => Some(real),
                Resource::NotFound => None,
                other => panic!("{path}: {other:?}"),
            };
            assert_eq!(found, expected, "{path}");
        }
        assert!(matches!(site.resolve(b"/alias/"), Resource::Directory));
        let _ = std::fs::remove_dir_all(dir);
    }
}
