//! Message bytes made inert for the legacy pages, which put them into `innerHTML`.
//!
//! Both pages concatenate the row's values into HTML: the customer page
//! `$('<p>客服对你说<br/>'+res.content+'</p>')`, the agent page
//! `'<a onclick="replay(\''+msg.pos+'\')">'+msg.pos+'</a>对你说<br />'+msg.content`. Escaping in
//! JSON (`\u003c`) would not help: the page's JavaScript string holds the decoded `<` again. So
//! the values themselves are HTML-escaped before `json_encode`: the browser's HTML parser turns
//! `&lt;` back into the text `<`, and the person reads exactly what was typed, as text.
//!
//! The sender's name also lands inside a JavaScript string inside an `onclick` attribute, where
//! the attribute's entities are decoded *before* the script runs, so `&#39;` would become a quote
//! again. No escaping is right there; instead a name keeps only ASCII letters and digits (every
//! name the server issues is `admin` + digits already; this only matters for rows written
//! before hardening or by another writer).

use crate::store::Message;

/// The column that carries the sender's name.
const SENDER: &[u8] = b"pos";

/// A copy of `message` whose values cannot form markup or leave their string in the pages.
pub fn inert(message: &Message) -> Message {
    let columns = message
        .columns
        .iter()
        .map(|(name, value)| {
            let value = value.as_deref().map(|value| match &name[..] {
                SENDER => value
                    .iter()
                    .copied()
                    .filter(u8::is_ascii_alphanumeric)
                    .collect(),
                _ => html_escape(value),
            });
            (name.clone(), value)
        })
        .collect();
    Message {
        mid: message.mid,
        columns,
    }
}

/// `&`, `<`, `>`, `"` and `'` as HTML character references; every other byte unchanged.
pub fn html_escape(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for &byte in text {
        match byte {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\'' => out.extend_from_slice(b"&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column<'a>(message: &'a Message, name: &str) -> Option<&'a [u8]> {
        message
            .columns
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .and_then(|(_, v)| v.as_deref())
    }

    #[test]
    fn markup_becomes_text_and_names_lose_everything_but_letters_and_digits() {
        let message = Message {
            mid: 1,
            columns: vec![
                (b"mid".to_vec(), Some(b"1".to_vec())),
                (b"rec".to_vec(), Some(b"admin".to_vec())),
                (b"pos".to_vec(), Some(b"x');alert(1)//<b>".to_vec())),
                (
                    b"content".to_vec(),
                    Some("<img src=x onerror=alert(1)> & \"'你好".as_bytes().to_vec()),
                ),
                (b"isread".to_vec(), None),
            ],
        };
        let inert = inert(&message);
        assert_eq!(column(&inert, "pos"), Some(&b"xalert1b"[..]));
        assert_eq!(
            column(&inert, "content"),
            Some("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;&#39;你好".as_bytes())
        );
        assert_eq!(column(&inert, "rec"), Some(&b"admin"[..]));
        assert_eq!(column(&inert, "isread"), None);
    }
}
