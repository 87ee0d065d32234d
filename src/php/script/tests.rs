//! The allowlist rule, case by case. Every expected answer below was observed from PHP 8.2
//! (php-fpm behind nginx, production php.ini) with `compat/legacy-up`: `Text` is the body of a
//! 200, `Declined` a file whose code does something (PHP may print anything; we print nothing),
//! `ParseError` PHP's empty 500.

use super::*;

fn text(bytes: &[u8]) -> Printed {
    Printed::Text(bytes.to_vec())
}

fn check(cases: &[(&[u8], Printed)]) {
    for (source, expected) in cases {
        assert_eq!(
            &Script::parse(source).printed(),
            expected,
            "{}",
            String::from_utf8_lossy(source)
        );
    }
}

#[test]
fn closing_tag_eats_exactly_one_line_ending() {
    check(&[
        (b"<?php ?>\n<html>", text(b"<html>")),
        (b"<?php ?>\r\n<html>", text(b"<html>")),
        (b"<?php ?>\r<html>", text(b"<html>")),
        (b"<?php ?><html>", text(b"<html>")),
        (b"<?php ?>\n\n<html>", text(b"\n<html>")),
        (b"<?php ?>\r\n\r\n<html>", text(b"\r\n<html>")),
        (b"<?php ?>\n\r\n<html>", text(b"\r\n<html>")),
        (b"<?php ?> \n<html>", text(b" \n<html>")),
        (b"<?php ?>\n", text(b"")),
    ]);
}

#[test]
fn inert_code_prints_the_text_around_it() {
    check(&[
        (b"", text(b"")),
        (b"plain", text(b"plain")),
        (b"A<?php\n?>B", text(b"AB")),
        (b"A<?php", text(b"A")),
        (b"A<?PHP ;;; ?>B", text(b"AB")),
        (b"A<?php 'x'; \"y\"; 0; 123 ?>B", text(b"AB")),
        (b"A<?php 'it\\'s ?>'; ?>B", text(b"AB")),
        (b"A<?php \"?>\\\"\"; ?>B", text(b"AB")),
        (b"A<?php /* ?> */ ?>B", text(b"AB")),
        (b"A<?php // c ?>B", text(b"AB")),
        (b"A<?php # c ?>\nB", text(b"AB")),
        (b"A<?php // c\r?>B", text(b"AB")),
        (b"A<?php // c\n'x';?>B<?php ?>C", text(b"ABC")),
        (b"A<?php <<<EOT\nx ?> y\nEOT;\n?>B", text(b"AB")),
        (b"A<?php <<<\"EOT\"\nEOTX ?>\nEOT;?>B", text(b"AB")),
        (b"A<?php <<<'EOT'\n$x \\u{zz} ?>\nEOT ?>B", text(b"AB")),
        (b"A<?php <<<EOT\rx\rEOT;\r?>B", text(b"AB")),
        (b"A<?php <<<EOT\nEOT;?>B", text(b"AB")),
        (b"A<?php 'x' ?>B", text(b"AB")),
        (b"A<? echo 1; ?>B", text(b"A<? echo 1; ?>B")),
        (b"A<?phpx echo 1; ?>B", text(b"A<?phpx echo 1; ?>B")),
        (b"<?xml version=\"1.0\"?>", text(b"<?xml version=\"1.0\"?>")),
    ]);
}

#[test]
fn code_that_does_anything_is_declined() {
    check(&[
        (b"A<?= 1 ?>B", Printed::Declined),
        (b"A<?php echo 'z'; ?>B", Printed::Declined),
        (b"A<?php $a = 1; ?>B", Printed::Declined),
        (b"A<?php \"$a\"; ?>B", Printed::Declined),
        (b"A<?php \"$\"; ?>B", Printed::Declined),
        (b"A<?php \"\\u{41}\"; ?>B", Printed::Declined),
        (b"A<?php \"{$a[\"?>\"]}\"; ?>B", Printed::Declined),
        (b"A<?php <<<EOT\n$x\nEOT;\n?>B", Printed::Declined),
        (b"A<?php <<<EOT\n  x\n  EOT;\n?>B", Printed::Declined),
        (b"A<?php 1.5; ?>B", Printed::Declined),
        (b"A<?php 0x1A; ?>B", Printed::Declined),
        (b"A<?php 'a' . 'b'; ?>B", Printed::Declined),
        (
            b"A<?php #[X(\"?>\")]\nfunction f() {} ?>B",
            Printed::Declined,
        ),
        (b"A<?php if (0) { $a = `x ?> y`; } ?>B", Printed::Declined),
        (b"A<?php if (0) { ?>B<?php } ?>", Printed::Declined),
        (b"A<?php __halt_compiler(); ?>B", Printed::Declined),
        (b"A<?php exit; ?>B", Printed::Declined),
        (b"A<?php for (;'x';) {} ?>B", Printed::Declined),
        (
            b"A<?php $f = function () { return 'x'; }; ?>B",
            Printed::Declined,
        ),
    ]);
}

#[test]
fn what_php_cannot_compile_is_a_parse_error() {
    check(&[
        (b"A<?php /* x", Printed::ParseError),
        (b"A<?php 'x", Printed::ParseError),
        (b"A<?php \"x", Printed::ParseError),
        (b"A<?php `x ?>B", Printed::ParseError),
        (b"A<?php <<<EOT\nx\n?>B", Printed::ParseError),
        (b"A<?php 'x'", Printed::ParseError),
        (b"A<?php 'x' // c", Printed::ParseError),
        (b"A<?php 'x' 'y'; ?>B", Printed::ParseError),
        (b"A<?php 08; ?>B", Printed::ParseError),
        (b"A<?php \"\\u{zz}\"; ?>B", Printed::ParseError),
        (b"A<?php \"\\u{110000}\"; ?>B", Printed::ParseError),
        (b"A<?php <<<EOT\n  x\n y\n  EOT;\n?>B", Printed::ParseError),
        (b"A<?php echo 1; /* x", Printed::ParseError),
        (b"A<?php \"{$a[\"x\"]", Printed::ParseError),
        (b"A<?php $a = 1; 'x'", Printed::ParseError),
        (b"A<?php if (0) {} 'x' 'y'; ?>B", Printed::ParseError),
        (b"A<?= 'e'", Printed::ParseError),
    ]);
}

#[test]
fn head_and_tail_split_around_the_first_block() {
    let script = Script::parse(b"\xef\xbb\xbf<?php $a = 'x'; ?>\nA<?php /* ?> */ $b = \"?>\"; ?>B");
    assert_eq!(script.head, b"\xef\xbb\xbf");
    assert_eq!(script.tail, b"AB");
    assert_eq!(script.around(b"-"), b"\xef\xbb\xbf-AB");
}

#[test]
fn legacy_pages_keep_their_html_around_the_code() {
    let site = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/legacy-site/");
    let customer = std::fs::read(format!("{site}AJ05customer.php")).expect("bundled site");
    let customer = Script::parse(&customer);
    assert!(customer.around(b"").starts_with(b"\n<!DOCTYPE html"));
    // It sets a cookie: served natively, and as another file it would be declined.
    assert_eq!(customer.printed(), Printed::Declined);
    let send = std::fs::read(format!("{site}AJsendmsg.php")).expect("bundled site");
    let send = Script::parse(&send);
    assert_eq!((send.head, send.tail), (Vec::new(), Vec::new()));
    let conn = std::fs::read(format!("{site}AJconn.php")).expect("bundled site");
    assert_eq!(Script::parse(&conn).printed(), Printed::Declined);
}

#[test]
fn deeply_nested_interpolation_is_declined_without_exhausting_the_stack() {
    let deep = [&b"<?php \""[..], &b"{$a[\"".repeat(100_000)].concat();
    assert_eq!(Script::parse(&deep).printed(), Printed::Declined);
    let shallow = b"<?php \"{$a[\"{$b}\"]}\"; ?>x";
    assert_eq!(Script::parse(shallow).printed(), Printed::Declined);
}

#[test]
fn comments_inside_string_interpolation_are_skipped() {
    // A `#` or `//` inside `{$…}` once stopped the lexer from moving on (an endless loop, found
    // by the property test `printed_text_is_made_of_the_file_in_order`). PHP 8.2 (`php` CLI):
    // the first two run (warnings about `$a`), the last two do not compile.
    check(&[
        (b"<?php \"{$a # c\n}\";", Printed::Declined),
        (b"A<?php \"{$a // c\n}\"; ?>B", Printed::Declined),
        (b"<?php \"{$#", Printed::ParseError),
        (b"<?php \"{$a // ?>x\";\nhello", Printed::ParseError),
    ]);
}
