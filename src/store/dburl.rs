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
    let (rest, ca) = take_param(url, CA_PARAM);
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

/// `url` without the query parameter `name`, and that parameter's percent-decoded value.
fn take_param(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some((key, found)) if key == name => {
                value = Some(percent_decode(found));
                false
            }
            _ => true,
        })
        .collect();
    let url = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    (url, value)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_ca_is_taken_out_of_the_url_and_decoded() {
        let (url, ca) = take_param(
            "mysql://u@h:3306/db?require_ssl=true&ssl_ca=%2Fetc%2Fca.pem&verify_identity=false",
            "ssl_ca",
        );
        assert_eq!(
            url,
            "mysql://u@h:3306/db?require_ssl=true&verify_identity=false"
        );
        assert_eq!(ca.as_deref(), Some("/etc/ca.pem"));
        let (url, ca) = take_param("mysql://u@h/db?ssl_ca=/ca.pem", "ssl_ca");
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
