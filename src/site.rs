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
    /// Another `.php` file: what it answers without being run.
    OtherScript(Printed),
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
    pub async fn resolve(&self, relative: &[u8]) -> Resource<'_> {
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
        let path = segments
            .iter()
            .fold(self.root.clone(), |path, segment| path.join(segment));
        // Symlinks may point anywhere; only what really lies under the root is served.
        let Ok(real) = tokio::fs::canonicalize(&path).await else {
            return Resource::NotFound;
        };
        // The dot-file rule applies to where a link leads, too (`env.txt -> .env`).
        let Ok(below_root) = real.strip_prefix(&self.root) else {
            return Resource::NotFound;
        };
        if below_root
            .components()
            .any(|part| part.as_os_str().as_encoded_bytes().starts_with(b"."))
        {
            return Resource::NotFound;
        }
        match tokio::fs::metadata(&real).await {
            Ok(meta) if meta.is_dir() => Resource::Directory,
            Ok(_) if names_directory => Resource::NotFound,
            Ok(_) if has_extension(&real, "php") => match tokio::fs::read(&real).await {
                Ok(source) => Resource::OtherScript(Script::parse(&source).printed()),
                Err(_) => Resource::NotFound,
            },
            Ok(_) => {
                let mime = content_type(&real);
                Resource::File(real, mime)
            }
            Err(_) => Resource::NotFound,
        }
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
            site.resolve(b"/AJ05comitajax.php").await,
            Resource::Endpoint(Endpoint::Poll, _)
        ));
        assert!(matches!(
            site.resolve(b"/AJconn.php").await,
            Resource::OtherScript(Printed::Declined)
        ));
        assert!(matches!(site.resolve(b"/").await, Resource::Directory));
        assert!(matches!(
            site.resolve(b"/missing.php").await,
            Resource::NotFound
        ));
    }
}
