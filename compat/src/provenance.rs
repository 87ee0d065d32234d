//! What made a recording: the PHP, nginx and MariaDB versions `chat-compat record` observed,
//! written into every HAR (`log.creator.comment`, `log.comment`, `log._legacy`) so the
//! provenance travels with the file. Informative only: the comparison never reads it, so a
//! Debian point release does not make `compat/check-live` fail.

use serde::{Deserialize, Serialize};

use crate::http::{build_request, split_base_url, Exchange};
use crate::CompatError;

/// The versions observed while recording; `None` where one could not be observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// First line of `<php-fpm binary> -v`, e.g. `PHP 8.2.29 (fpm-fcgi) (built: …)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub php: Option<String>,
    /// The legacy's `Server` header, e.g. `nginx/1.22.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<String>,
    /// `SELECT VERSION()` on the legacy's database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mariadb: Option<String>,
}

impl Provenance {
    /// Asks each component: `php_command` (run, its first output line kept), the `Server`
    /// header of the legacy at `base_url`, `SELECT VERSION()` at `database_url`.
    pub async fn observe(php_command: &str, base_url: &str, database_url: &str) -> Provenance {
        Provenance {
            php: php_version(php_command),
            nginx: server_header(base_url).await.ok().flatten(),
            mariadb: database_version(database_url).await.ok(),
        }
    }

    /// One line for `log.comment`.
    pub fn comment(&self) -> String {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".to_owned());
        format!(
            "recorded from the legacy PHP: {}; web server {}; database {}",
            show(&self.php),
            show(&self.nginx),
            show(&self.mariadb)
        )
    }
}

fn php_version(command: &str) -> Option<String> {
    let mut words = command.split_whitespace();
    let program = words.next()?;
    let out = std::process::Command::new(program)
        .args(words)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim();
    (out.status.success() && !line.is_empty()).then(|| line.to_owned())
}

async fn server_header(base_url: &str) -> Result<Option<String>, CompatError> {
    let (authority, prefix) = split_base_url(base_url)?;
    // AJconn.php answers an empty 200 and touches nothing.
    let request = build_request("GET", &format!("{prefix}/AJconn.php"), &authority, &[], &[]);
    let mut x = Exchange::send(&authority, &request, false).await?;
    x.finish(std::time::Duration::from_secs(5)).await?;
    Ok(x.head.as_ref().and_then(|h| {
        h.values("server")
            .next()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }))
}

async fn database_version(database_url: &str) -> Result<String, CompatError> {
    use mysql_async::prelude::Queryable;
    let opts = mysql_async::Opts::from_url(database_url)
        .map_err(|e| CompatError::Db(format!("{database_url}: {e}")))?;
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .map_err(|e| CompatError::Db(e.to_string()))?;
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| CompatError::Db(e.to_string()))?;
    let _ = conn.disconnect().await;
    version.ok_or_else(|| CompatError::Db("SELECT VERSION() returned nothing".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_names_every_component_or_unknown() {
        let p = Provenance {
            php: Some("PHP 8.2.29 (fpm-fcgi)".into()),
            nginx: Some("nginx/1.22.1".into()),
            mariadb: None,
        };
        assert_eq!(
            p.comment(),
            "recorded from the legacy PHP: PHP 8.2.29 (fpm-fcgi); web server nginx/1.22.1; database unknown"
        );
    }
}
