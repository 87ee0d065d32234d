//! What a PHP script could see of a request, once decoded: the superglobals the legacy reads.

use super::{vars::Vars, Version};

/// What a PHP script could see of a request.
#[derive(Debug, Default)]
pub struct PhpRequest {
    /// `$_COOKIE`.
    pub cookies: Vars,
    /// `$_POST`.
    pub post: Vars,
    /// Which PHP decoded it, and so which PHP answers it.
    pub version: Version,
    /// Hardened mode: message values are made inert for the pages' `innerHTML` before encoding.
    pub html_safe: bool,
}
