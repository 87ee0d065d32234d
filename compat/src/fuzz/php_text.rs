//! The `php_text` class: generated `.php` files near the edges of PHP's scanner, for the
//! printed-text rule of other `.php` files (issue 10; `src/php/script.rs` in the server).
//!
//! A file is text and code blocks. The text holds open-tag look-alikes (`<?phpx`, `<?`,
//! `<?xml`) and line endings; a block opens with `<?php` + a space, tab, `\n`, `\r` or `\r\n` (any
//! case), `<?=`, or `<?php` at the end of the file, and holds statements: inert ones (literals
//! with `?>` inside, heredocs and nowdocs with `?>`, `$` or `\r` line ends, comments, `;`), ones
//! that do something but are valid and never fatal (`echo`, assignments, `#[…]` attributes,
//! backticks that never run, text inside `if (0) { … }`, `exit`), and now and then one PHP
//! cannot compile (unclosed comments, strings, backticks and heredocs, a literal without `;`,
//! `08`, `"\u{zz}"`). Code that would fail at run time is never generated: its 500 would say
//! nothing about the scanner.

use super::Rng;

/// A generated file: its bytes, and whether it has visible text outside its code (so an empty
/// answer from our server means it declined).
pub struct Source {
    /// The file.
    pub bytes: Vec<u8>,
    /// Some text segment holds a byte other than a line ending.
    pub has_text: bool,
}

/// Text between code blocks.
const TEXTS: &[&str] = &[
    "",
    "A",
    "<p>x</p>\n",
    "\n",
    "\r\n",
    "\r",
    "\n\n",
    " \n",
    "<?xml version=\"1.0\"?>",
    "<?phpx 1; ?>",
    "<? echo 1; ?>",
    "<?php-",
    "t ?> u",
    "é\t",
    "<%= x %>",
];

/// Open tags, the echo tag apart.
const OPEN: &[&str] = &[
    "<?php ",
    "<?php\n",
    "<?PHP ",
    "<?Php\r\n",
    "<?php\t",
    "<?php\r",
];

/// Statements the allowlist accepts.
const INERT: &[&str] = &[
    ";",
    "'x';",
    "'a?>b';",
    "'it\\'s ?>';",
    "\"plain ?> text\";",
    "\"esc \\\" \\n \\t\";",
    "0;",
    "123;",
    "<<<EOT\nbody ?> x\nEOT;\n",
    "<<<EOT\nEOTX ?> y\nEOT;",
    "<<<'N'\n$x ?> \\u{zz}\nN;\n",
    "<<<\"Q\"\nq\r\nQ;",
    "<<<EOT\rline\rEOT;\r",
    "<<<EOT\nEOT;",
    "// c\n",
    "# c\r",
    "// c\r\n",
    "/* ?> */",
    "/** doc ?> */\n",
    "\n",
    "'x'\n;",
];

/// Valid statements that do something (or may): our server declines these files.
const ACTIVE: &[&str] = &[
    "echo 'x';",
    "print \"y\";",
    "$a = 1;",
    "$b = \"$a ?>\";",
    "\"$\";",
    "\"\\u{41}\";",
    "\"\\u00e9\";",
    "$f = #[A(\"?>\")] function () {};",
    "$g = #[A]\nfn() => 1;",
    "if (0) { $c = `x ?> y`; }",
    "if (0) { ?>hidden<?php }",
    "<<<EOT\n  x ?>\n  EOT;\n",
    "<<<EOT\n{$a} ?>\nEOT;\n",
    "1.5;",
    "0x1A;",
    "'a' . 'b';",
    "$h = \"{$a[\"?>\"]}\";",
    "exit;",
    "__halt_compiler();",
];

/// Endings PHP cannot compile; each is the last thing in its file.
const BROKEN: &[&str] = &[
    "/* open",
    "'open",
    "\"open ?>",
    "`open ?>",
    "<<<EOT\nno end ?>\n",
    "'x'",
    "'x' // c",
    "'a' 'b'; ?>",
    "08; ?>",
    "\"\\u{zz}\"; ?>",
    "<<<EOT\n  x\n y\n  EOT;\n?>",
];

/// How a block ends: `?>` with or without the line ending it swallows, inside a comment, after a
/// literal standing for its `;`.
const CLOSE: &[&str] = &[
    "?>",
    "?>\n",
    "?>\r\n",
    "?>\r",
    "?>\n\n",
    "// c ?>",
    "# c ?>\r\n",
    "'z' ?>",
];

/// A file of one to three blocks with text around them.
pub fn source(rng: &mut Rng) -> Source {
    let mut out = Source {
        bytes: Vec::new(),
        has_text: false,
    };
    let blocks = 1 + rng.below(3);
    for block in 0..blocks {
        text(rng, &mut out);
        let last = block + 1 == blocks;
        if last && rng.one_in(12) {
            // `<?php` as the very last bytes opens code too.
            out.bytes.extend_from_slice(b"<?php");
            return out;
        }
        if rng.one_in(10) {
            out.bytes.extend_from_slice(b"<?= 'e'");
            out.bytes.push(b';');
        } else {
            out.bytes.extend_from_slice(rng.pick(OPEN).as_bytes());
        }
        for _ in 0..rng.below(4) {
            let statement = if rng.one_in(4) {
                rng.pick(ACTIVE)
            } else {
                rng.pick(INERT)
            };
            out.bytes.extend_from_slice(statement.as_bytes());
        }
        if last && rng.one_in(8) {
            out.bytes.extend_from_slice(rng.pick(BROKEN).as_bytes());
            return out;
        }
        if last && rng.one_in(6) {
            // Code running to the end of the file.
            return out;
        }
        out.bytes.extend_from_slice(rng.pick(CLOSE).as_bytes());
    }
    text(rng, &mut out);
    out
}

fn text(rng: &mut Rng, out: &mut Source) {
    for _ in 0..rng.below(3) {
        let piece = rng.pick(TEXTS);
        out.has_text |= piece.bytes().any(|b| b != b'\n' && b != b'\r');
        out.bytes.extend_from_slice(piece.as_bytes());
    }
}
