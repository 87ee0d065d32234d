//! The database URL: everything `mysql_async` reads from it, plus `ssl_ca`, the CA file a
//! managed database's certificate is checked against.
//!
//! TLS is rustls (no OpenSSL to install). The URL switches it on:
//!
//! - `?require_ssl=true`: TLS, the server's certificate checked against the built-in web roots;
//! - `&ssl_ca=/path/ca.pem`: check it against this CA instead (implies `require_ssl`);
//! - `&verify_identity=false`: skip the host-name check (a certificate for another name);
//! - `&verify_ca=false`: encrypt without checking the certificate at all (not recommended).

use std::path::PathBuf;

use mysql_async::{Opts, OptsBuilder};

use crate::error::Error;

/// The URL parameter naming a PEM file of CA certificates.
const CA_PARAM: &str = "ssl_ca";

/// Parses `url` into connection options, `ssl_ca` included.
pub fn opts_from_url(url: &str) -> Result<Opts, Error> {
    let (rest, ca) = take_param(url, CA_PARAM)?;
    let opts =
        Opts::from_url(&rest).map_err(|err| Error::Config(format!("database URL: {err}")))?;
    let Some(ca) = ca else {
        return Ok(opts);
    };
    if !std::path::Path::new(&ca).is_file() {
        return Err(Error::Config(format!(
            "database URL: {CA_PARAM} {ca:?} is not a readable file"
        )));
    }
    let ssl = opts
        .ssl_opts()
        .cloned()
        .unwrap_or_default()
        .with_root_certs(vec![PathBuf::from(ca).into()]);
    Ok(OptsBuilder::from_opts(opts).ssl_opts(Some(ssl)).into())
}

/// `url` without the query parameter `name`, and that parameter's value, decoded as mysql_async
/// decodes the rest of the query (the `url` crate's form decoding).
fn take_param(url: &str, name: &str) -> Result<(String, Option<String>), Error> {
    let mut parsed =
        url::Url::parse(url).map_err(|err| Error::Config(format!("database URL: {err}")))?;
    let mut value = None;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(key, found)| match key == name {
            true => {
                value = Some(found.into_owned());
                None
            }
            false => Some((key.into_owned(), found.into_owned())),
        })
        .collect();
    if value.is_none() {
        return Ok((url.to_owned(), None));
    }
    match kept.is_empty() {
        true => parsed.set_query(None),
        false => {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    Ok((parsed.into(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_ca_is_taken_out_of_the_url_and_decoded() {
        let (url, ca) = take_param(
            "mysql://u@h:3306/db?require_ssl=true&ssl_ca=%2Fetc%2Fca.pem&verify_identity=false",
            "ssl_ca",
        )
        .expect("a URL");
        assert_eq!(
            url,
            "mysql://u@h:3306/db?require_ssl=true&verify_identity=false"
        );
        assert_eq!(ca.as_deref(), Some("/etc/ca.pem"));
        let (url, ca) = take_param("mysql://u@h/db?ssl_ca=/ca.pem", "ssl_ca").expect("a URL");
        assert_eq!(
            (url.as_str(), ca.as_deref()),
            ("mysql://u@h/db", Some("/ca.pem"))
        );
    }

    #[test]
    fn a_url_without_tls_stays_plain() {
        let opts = opts_from_url("mysql://root@127.0.0.1:3306/test").expect("valid");
        assert!(opts.ssl_opts().is_none());
        let opts = opts_from_url("mysql://root@127.0.0.1:3306/test?require_ssl=true").expect("ok");
        assert!(opts.ssl_opts().is_some());
    }

    #[test]
    fn a_missing_ca_file_is_a_configuration_error() {
        let err = opts_from_url("mysql://root@h/test?ssl_ca=/nonexistent/ca.pem")
            .expect_err("missing file");
        assert!(err.to_string().contains("ssl_ca"), "{err}");
    }
}
