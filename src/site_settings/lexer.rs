//! PHP's tokens, as far as a connection file needs them: strings (unescaped), numbers, names,
//! variables and punctuation; comments and text outside `<?php … ?>` skipped. Heredocs,
//! backticks and attributes are refused here, since nothing later could follow them.

use super::{refusal, Refusal};
use crate::php::script::find_open_tag;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    /// A string literal with nothing to interpolate, unescaped.
    Str(String),
    /// A double-quoted string with `$` or `\` in it: its value is not followed.
    Interpolated,
    Int(u64),
    /// `$name`, without the `$`.
    Var(String),
    /// A name (function, constant, class, keyword), a leading `\` dropped.
    Ident(String),
    Punct(u8),
    /// `->`
    Arrow,
    /// `::`
    DoubleColon,
    /// `=>`
    DoubleArrow,
    /// `||` or `&&`
    Logical,
    /// `;`, or `?>` which stands for one.
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) line: usize,
}

/// Splits the code of `source` into tokens; text outside `<?php … ?>` is skipped (it is output,
/// not settings).
pub(super) fn lex(source: &[u8]) -> Result<Vec<Token>, Refusal> {
    let newlines: Vec<usize> = source
        .iter()
        .enumerate()
        .filter_map(|(at, byte)| (*byte == b'\n').then_some(at))
        .collect();
    let line_at = |at: usize| newlines.partition_point(|&newline| newline < at) + 1;
    let mut tokens = Vec::new();
    let mut at = 0;
    while let Some((start, len)) = find_open_tag(&source[at..]) {
        if len == 3 {
            return Err(refusal(line_at(at + start), "`<?=` prints a value"));
        }
        at += start + len;
        at = lex_code(source, at, &line_at, &mut tokens)?;
    }
    Ok(tokens)
}

/// Lexes from `at` to `?>` or the end; returns where the text after it starts.
fn lex_code(
    source: &[u8],
    mut at: usize,
    line_at: &impl Fn(usize) -> usize,
    tokens: &mut Vec<Token>,
) -> Result<usize, Refusal> {
    let ident = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte >= 0x80;
    while at < source.len() {
        let line = line_at(at);
        let byte = source[at];
        let next = source.get(at + 1).copied();
        let mut push = |tok| tokens.push(Token { tok, line });
        match (byte, next) {
            (b' ' | b'\t' | b'\r' | b'\n', _) => at += 1,
            (b'?', Some(b'>')) => {
                push(Tok::End);
                return Ok(at + 2);
            }
            (b'#', Some(b'[')) => return Err(refusal(line, "an attribute (`#[`)")),
            (b'#', _) | (b'/', Some(b'/')) => {
                // A line comment ends at the line's end or at `?>`, which it does not swallow.
                while at < source.len() && source[at] != b'\n' && !source[at..].starts_with(b"?>") {
                    at += 1;
                }
            }
            (b'/', Some(b'*')) => match find(&source[at + 2..], b"*/") {
                Some(end) => at += 2 + end + 2,
                None => return Err(refusal(line, "a comment that is never closed")),
            },
            (b'\'', _) => {
                let (text, end) = single_quoted(source, at + 1)
                    .ok_or_else(|| refusal(line, "a string that is never closed"))?;
                push(Tok::Str(utf8(text, line)?));
                at = end;
            }
            (b'"', _) => {
                let end = find(&source[at + 1..], b"\"")
                    .map(|end| at + 1 + end)
                    .filter(|&end| !source[at + 1..end].contains(&b'\\'))
                    .ok_or_else(|| {
                        refusal(
                            line,
                            "a double-quoted string with escapes (use single quotes)",
                        )
                    })?;
                let text = &source[at + 1..end];
                push(match text.contains(&b'$') {
                    true => Tok::Interpolated,
                    false => Tok::Str(utf8(text.to_vec(), line)?),
                });
                at = end + 1;
            }
            (b'<', Some(b'<')) if source[at..].starts_with(b"<<<") => {
                return Err(refusal(line, "a heredoc or nowdoc"));
            }
            (b'`', _) => return Err(refusal(line, "a shell command in backticks")),
            (b'$', Some(first)) if ident(first) && !first.is_ascii_digit() => {
                let end = (at + 1..source.len())
                    .find(|&i| !ident(source[i]))
                    .unwrap_or(source.len());
                push(Tok::Var(utf8(source[at + 1..end].to_vec(), line)?));
                at = end;
            }
            (b'0'..=b'9', _) => {
                let end = (at..source.len())
                    .find(|&i| !ident(source[i]) && source[i] != b'.')
                    .unwrap_or(source.len());
                let number = std::str::from_utf8(&source[at..end])
                    .ok()
                    .and_then(|digits| digits.parse().ok())
                    .ok_or_else(|| refusal(line, "a number that is not a plain decimal"))?;
                push(Tok::Int(number));
                at = end;
            }
            (b'\\', Some(first)) | (first, Some(_) | None)
                if ident(first) && !first.is_ascii_digit() =>
            {
                let start = if byte == b'\\' { at + 1 } else { at };
                let end = (start..source.len())
                    .find(|&i| !ident(source[i]) && source[i] != b'\\')
                    .unwrap_or(source.len());
                push(Tok::Ident(utf8(source[start..end].to_vec(), line)?));
                at = end;
            }
            (b'-', Some(b'>')) => {
                push(Tok::Arrow);
                at += 2;
            }
            (b':', Some(b':')) => {
                push(Tok::DoubleColon);
                at += 2;
            }
            (b'=', Some(b'>')) => {
                push(Tok::DoubleArrow);
                at += 2;
            }
            (b'|', Some(b'|')) | (b'&', Some(b'&')) => {
                push(Tok::Logical);
                at += 2;
            }
            (b';', _) => {
                push(Tok::End);
                at += 1;
            }
            (byte, _) => {
                push(Tok::Punct(byte));
                at += 1;
            }
        }
    }
    Ok(at)
}

/// A single-quoted string's value (only `\'` and `\\` are escapes) and the offset after it.
fn single_quoted(source: &[u8], mut at: usize) -> Option<(Vec<u8>, usize)> {
    let mut text = Vec::new();
    while let Some(&byte) = source.get(at) {
        match (byte, source.get(at + 1)) {
            (b'\'', _) => return Some((text, at + 1)),
            (b'\\', Some(&escaped @ (b'\\' | b'\''))) => {
                text.push(escaped);
                at += 2;
            }
            (byte, _) => {
                text.push(byte);
                at += 1;
            }
        }
    }
    None
}

fn utf8(bytes: Vec<u8>, line: usize) -> Result<String, Refusal> {
    String::from_utf8(bytes).map_err(|_| refusal(line, "text that is not UTF-8"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
