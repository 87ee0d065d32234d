//! `php_register_variable_ex`: how a decoded name/value pair lands in `$_COOKIE` or `$_POST`.
//!
//! The legacy scripts only ever read three top-level keys (`username`, `rec`, `content`) and use
//! them as strings, so an array is kept only as the fact that it is one: PHP turns it into the
//! string `Array` when the script interpolates it.

use std::collections::HashMap;

/// PHP's `max_input_vars` default.
pub const MAX_INPUT_VARS: usize = 1000;

/// One top-level entry of a superglobal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A plain string (PHP strings are bytes).
    Str(Vec<u8>),
    /// An array created by a `name[...]` key; PHP never creates an empty one from input.
    Array,
}

/// Which of two plain values with the same name PHP keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// `$_COOKIE`: "more specific paths are listed first", so the first one stays.
    FirstWins,
    /// `$_POST`: each registration overwrites.
    LastWins,
}

/// A superglobal such as `$_COOKIE` or `$_POST`, reduced to what the legacy scripts can observe.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    entries: HashMap<Vec<u8>, Value>,
}

impl Vars {
    /// Registers `raw_name = value` the way PHP does: name mangling, arrays, duplicate rules.
    pub fn register(&mut self, raw_name: &[u8], value: Vec<u8>, duplicates: Duplicates) {
        let Some((name, is_array)) = mangle(raw_name) else {
            return;
        };
        if is_array {
            // An array-style name converts or extends whatever was there, in both superglobals.
            self.entries.insert(name, Value::Array);
        } else if duplicates == Duplicates::LastWins || !self.entries.contains_key(&name) {
            self.entries.insert(name, Value::Str(value));
        }
    }

    /// The entry for a top-level key, if any.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries.get(name.as_bytes())
    }

    /// What `"...$_POST['name']..."` interpolates: missing is `""`, an array is `Array`.
    pub fn string(&self, name: &str) -> Vec<u8> {
        match self.get(name) {
            None => Vec::new(),
            Some(Value::Str(bytes)) => bytes.clone(),
            Some(Value::Array) => b"Array".to_vec(),
        }
    }

    /// How many top-level entries there are.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// The entry for a top-level key given as bytes.
    #[cfg(test)]
    pub fn get_bytes(&self, name: &[u8]) -> Option<&Value> {
        self.entries.get(name)
    }

    /// PHP's `empty($superglobal['name'])`: missing, `""` and `"0"` are empty.
    pub fn is_empty(&self, name: &str) -> bool {
        match self.get(name) {
            None => true,
            Some(Value::Str(bytes)) => bytes.is_empty() || bytes == b"0",
            Some(Value::Array) => false,
        }
    }
}

/// The top-level key a raw name registers under, and whether it creates an array.
/// `None` when PHP drops the variable (empty name).
fn mangle(raw_name: &[u8]) -> Option<(Vec<u8>, bool)> {
    // PHP handles names as C strings here, so a NUL ends the name.
    let raw = raw_name.split(|&b| b == 0).next().unwrap_or_default();
    let start = raw.iter().position(|&b| b != b' ').unwrap_or(raw.len());
    let raw = &raw[start..];
    let bracket = raw.iter().position(|&b| b == b'[');
    let base_len = bracket.unwrap_or(raw.len());
    if base_len == 0 {
        return None;
    }
    let mut name: Vec<u8> = raw[..base_len]
        .iter()
        .map(|&b| underscore_if(b, b" ."))
        .collect();
    let Some(bracket) = bracket else {
        return Some((name, false));
    };
    let rest = &raw[bracket + 1..];
    if rest.contains(&b']') {
        return Some((name, true));
    }
    // An unmatched `[` is not an index: it and any ` `, `.`, `[` after it become `_` (PHP 8).
    name.push(b'_');
    name.extend(rest.iter().map(|&b| underscore_if(b, b" .[")));
    Some((name, false))
}

fn underscore_if(byte: u8, set: &[u8]) -> u8 {
    if set.contains(&byte) {
        b'_'
    } else {
        byte
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(pairs: &[(&str, &str)]) -> Vars {
        let mut vars = Vars::default();
        for (name, value) in pairs {
            vars.register(
                name.as_bytes(),
                value.as_bytes().to_vec(),
                Duplicates::LastWins,
            );
        }
        vars
    }

    #[test]
    fn names_are_mangled_like_php() {
        let vars = post(&[
            ("a.b", "1"),
            ("c d", "2"),
            ("g[h", "4"),
            (" lead", "5"),
            ("a[b.c d", "6"),
        ]);
        assert_eq!(vars.string("a_b"), b"1");
        assert_eq!(vars.string("c_d"), b"2");
        assert_eq!(vars.string("g_h"), b"4");
        assert_eq!(vars.string("lead"), b"5");
        assert_eq!(vars.string("a_b_c_d"), b"6");
    }

    #[test]
    fn array_keys_read_as_the_string_array() {
        let vars = post(&[("rec[]", "1"), ("content[x]", "2")]);
        assert_eq!(vars.string("rec"), b"Array");
        assert_eq!(vars.string("content"), b"Array");
        assert!(!vars.is_empty("rec"));
    }

    #[test]
    fn post_duplicates_last_wins_and_scalar_after_array_replaces_it() {
        assert_eq!(post(&[("rec", "1"), ("rec", "2")]).string("rec"), b"2");
        assert_eq!(
            post(&[("rec", "1"), ("rec[]", "2")]).string("rec"),
            b"Array"
        );
        assert_eq!(post(&[("rec[]", "2"), ("rec", "1")]).string("rec"), b"1");
    }

    #[test]
    fn cookie_duplicates_first_wins_but_arrays_still_convert() {
        let mut vars = Vars::default();
        vars.register(b"a", b"2".to_vec(), Duplicates::FirstWins);
        vars.register(b"a", b"3".to_vec(), Duplicates::FirstWins);
        assert_eq!(vars.string("a"), b"2");
        vars.register(b"a[x]", b"1".to_vec(), Duplicates::FirstWins);
        assert_eq!(vars.get("a"), Some(&Value::Array));
    }

    #[test]
    fn nul_truncates_and_empty_names_are_dropped() {
        let vars = post(&[("a\0b", "1"), ("", "v"), ("  ", "w"), ("[x]", "y")]);
        assert_eq!(vars.string("a"), b"1");
        assert_eq!(vars.entries.len(), 1);
    }

    #[test]
    fn empty_follows_php() {
        let vars = post(&[("a", ""), ("b", "0"), ("c", "00"), ("d", " "), ("e", "0.0")]);
        assert!(vars.is_empty("a") && vars.is_empty("b") && vars.is_empty("missing"));
        assert!(!vars.is_empty("c") && !vars.is_empty("d") && !vars.is_empty("e"));
    }
}
