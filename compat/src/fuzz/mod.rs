//! `chat-compat fuzz`: a differential fuzzer. It generates requests and table rows near the
//! edges of PHP's request decoding and `json_encode`, runs each case as a one-off scenario
//! against the legacy PHP and against our server (each on its own database; the `msg` tables
//! are emptied per case and their ids kept growing in step, so both hand out the same ids and
//! our server, which follows new rows by id, is not confused), and compares them with the same
//! rules as the recordings (status, `Content-Type`, `Set-Cookie` with the random `adminNNN`
//! normalised, body, final table).
//!
//! Input classes (`--class`, repeatable; all by default):
//!
//! - `send_form`: `POST /AJsendmsg.php` with a generated form body (names with `[`, `]`, `.`,
//!   spaces, `+`, `%` escapes, duplicates, empty fields, fields without `=`, sometimes more than
//!   `max_input_vars` = 1000 variables) and a plain cookie; compares the answer and the row.
//! - `send_cookie`: `POST /AJsendmsg.php` with a plain body and a generated `Cookie` header
//!   (separators, spaces, tabs, DEL, duplicates, look-alike names, `%` escapes, `+`).
//! - `customer_cookie`: `GET /AJ05customer.php` with a generated `Cookie` header: whether a
//!   `Set-Cookie: username=adminNNN` comes (the three random digits are normalised, as for the
//!   recordings: PHP's `rand(100,999)` cannot be reproduced) and the page bytes.
//! - `poll_row`: generated rows (text with quotes, backslashes, `/`, `<`, control characters,
//!   BMP characters, numeric strings, NULL) inserted directly into both tables, then
//!   `GET /AJ05comitajax.php` with the recipient's cookie; compares the `json_encode` bytes and
//!   the table (the row claimed).
//! - `send_multipart`: `POST /AJsendmsg.php` with a generated `multipart/form-data` body
//!   (boundary quoted or not, CRLF or LF lines, file parts, bracketed and missing names,
//!   duplicates, a missing final boundary).
//! - `request_target`: GET, HEAD or POST of a generated request target built from the site's
//!   files, `.`, `..`, `%2e`, `//`, case changes, PATH_INFO and query strings (never the two
//!   endpoints that wait: `AJ05comitajax.php`, `AJ04serve.php`).
//! - `php_text`: a generated `.php` file (heredocs, nowdocs, backticks, attributes, comments and
//!   strings holding `?>`, open-tag look-alikes, `\r` line ends, unclosed constructs; see
//!   [`php_text`]) written under a fresh name into both docroots (`--legacy-site`, `--site`;
//!   normally the same scratch copy), requested with GET, HEAD or POST, PATH_INFO and a query
//!   string. Our server prints such a file's text only when its code is inert and otherwise
//!   declines (an empty 200, README.md deliberate difference 8): a case where it declined and PHP
//!   printed something is counted as `declined`, not as a difference, when status and
//!   `Content-Type` still agree. The file is removed after its case.
//! - `query_string`, `header_bytes`: query strings and header bytes near the edges of what
//!   nginx accepts and hands to PHP (`fuzz/http_edges.rs`).
//!
//! Kept clear of the deliberate deviations (README.md, "Deliberate differences" 1 and 2): no
//! value that reaches SQL through PHP's string-built queries may hold `'` or `\` (raw or as a
//! `%27`/`%5C` escape), and no input holds a 4-byte UTF-8 character (no raw or escaped byte
//! F0-F7 is generated). Rows inserted by the fuzzer itself go through parameters, so their
//! content may hold quotes and backslashes; only the `rec` the poll's query builds from the
//! cookie must not.
//!
//! Every difference is printed and its case saved as a scenario file (`--save`), with the
//! generated `.php` file beside it, ready to be recorded and committed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

pub mod dynamic_pages;
mod http_edges;
pub mod lookalikes;
pub mod php_text;

use crate::compare::{compare, Difference};
use crate::record::run_reset;
use crate::runner::{self, Check, Outcome, Target};
use crate::scenario::{CellValue, Request, Scenario, Step, TableVariant};
use crate::CompatError;

/// Arguments of `chat-compat fuzz`.
#[derive(clap::Args, Debug, Clone)]
pub struct FuzzArgs {
    /// Seed of the generator: the same seed generates the same cases.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of cases.
    #[arg(long, default_value_t = 1000)]
    pub cases: u64,
    /// Base URL of our server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub against: String,
    /// The database our server uses (its `msg` table is recreated per case); not needed by
    /// `dynamic_page`.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Base URL of the legacy site (compat/legacy-up serves it here).
    #[arg(long, env = "LEGACY_URL", default_value = "http://127.0.0.1:8089")]
    pub legacy: String,
    /// The database the legacy PHP uses.
    #[arg(
        long,
        env = "LEGACY_DATABASE_URL",
        default_value = "mysql://root@127.0.0.1:3306/test"
    )]
    pub legacy_database_url: String,
    /// Run after a case that left a legacy request waiting (frees the PHP worker).
    #[arg(
        long,
        env = "LEGACY_RESET_COMMAND",
        default_value = "compat/legacy-up reset"
    )]
    pub reset_command: String,
    /// Only these input classes (repeatable): send_form, send_cookie, customer_cookie, poll_row,
    /// send_multipart, request_target, php_text, query_string, header_bytes, lookalike_poll,
    /// lookalike_send, lookalike_stream; or dynamic_page alone (never part of the default
    /// list: it needs `--against` to be a server started with `--php-fpm`).
    #[arg(long = "class")]
    pub classes: Vec<String>,
    /// Where each differing case is written as a scenario file.
    #[arg(long, default_value = "target/fuzz-differences")]
    pub save: PathBuf,
    /// Print every case, not only the differing ones.
    #[arg(long)]
    pub verbose: bool,
    /// The legacy's docroot, where `php_text` writes its files (needed for that class).
    #[arg(long)]
    pub legacy_site: Option<PathBuf>,
    /// Our server's docroot (`--site`), where `php_text` writes the same files.
    #[arg(long)]
    pub site: Option<PathBuf>,
    /// Charset of the legacy's `msg` table (`utf8mb4`, or `utf8` as most legacy tables are);
    /// our table must already have the same collation (the run refuses to start otherwise).
    #[arg(long, default_value = "utf8mb4")]
    pub charset: String,
    /// `dynamic_page` cases in flight at once (each holds one PHP-FPM worker on each side).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

/// The class that runs on its own (see [`dynamic_pages`]).
pub const PAGE_CLASS: &str = "dynamic_page";

/// The input classes, in the order cases cycle through them.
pub const CLASSES: [&str; 12] = [
    "send_form",
    "send_cookie",
    "customer_cookie",
    "poll_row",
    "send_multipart",
    "request_target",
    "php_text",
    "query_string",
    "header_bytes",
    "lookalike_poll",
    "lookalike_send",
    "lookalike_stream",
];

/// Runs `chat-compat fuzz`.
pub async fn fuzz(args: FuzzArgs) -> ExitCode {
    match run(&args).await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fuzz: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Default)]
struct Counts {
    cases: u64,
    differ: u64,
    /// Our server answered an empty 200 for a file with text, or where PHP printed something
    /// (README.md, deliberate difference 8).
    declined: u64,
}

/// One generated case: its scenario, and the `.php` file it needs in both docroots.
pub struct Case {
    /// What is run against both sides.
    pub scenario: Scenario,
    /// For `php_text`: the file's name in the docroot and its source.
    pub file: Option<(String, php_text::Source)>,
}

/// Both docroots, for the classes that write files into them.
struct Sites<'a> {
    dirs: Vec<&'a std::path::Path>,
}

impl<'a> Sites<'a> {
    fn new(args: &'a FuzzArgs) -> Sites<'a> {
        let mut dirs: Vec<&std::path::Path> = Vec::new();
        for dir in [&args.legacy_site, &args.site].into_iter().flatten() {
            if !dirs.contains(&dir.as_path()) {
                dirs.push(dir);
            }
        }
        Sites { dirs }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), CompatError> {
        for dir in &self.dirs {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| CompatError::io(&path, e))?;
        }
        Ok(())
    }

    fn remove(&self, name: &str) {
        for dir in &self.dirs {
            // Already gone is fine: the file only existed for its case.
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
}

async fn run(args: &FuzzArgs) -> Result<u64, CompatError> {
    if args.classes.iter().any(|c| c == PAGE_CLASS) {
        if args.classes.len() > 1 {
            return Err(CompatError::Scenario(format!(
                "class {PAGE_CLASS} runs on its own (its cases run concurrently against a server \
                 with --php-fpm): give it as the only --class"
            )));
        }
        return dynamic_pages::run(args).await;
    }
    let Some(database_url) = args.database_url.clone() else {
        return Err(CompatError::Scenario(
            "--database-url is needed (every class but dynamic_page resets tables)".to_owned(),
        ));
    };
    let classes: Vec<&str> = if args.classes.is_empty() {
        CLASSES.to_vec()
    } else {
        for c in &args.classes {
            if !CLASSES.contains(&c.as_str()) {
                return Err(CompatError::Scenario(format!(
                    "unknown class {c:?}; classes: {CLASSES:?} and {PAGE_CLASS}"
                )));
            }
        }
        args.classes.iter().map(String::as_str).collect()
    };
    if classes.contains(&"php_text") && (args.legacy_site.is_none() || args.site.is_none()) {
        return Err(CompatError::Scenario(
            "class php_text writes files into both docroots: give --legacy-site and --site \
             (or leave the class out with --class)"
                .to_owned(),
        ));
    }
    let sites = Sites::new(args);
    let legacy = Target {
        base_url: args.legacy.clone(),
        database_url: args.legacy_database_url.clone(),
    };
    let ours = Target {
        base_url: args.against.clone(),
        database_url,
    };
    // Both tables are created once (if missing) and then only emptied: our server follows new
    // rows by id, so ids must only grow across cases (see runner::prepare_in_place).
    let table = TableVariant {
        charset: args.charset.clone(),
        ..TableVariant::default()
    };
    let (legacy_max, legacy_collation) = max_id(&legacy.database_url, true, &table).await?;
    let (our_max, our_collation) = max_id(&ours.database_url, false, &table).await?;
    if legacy_collation != our_collation {
        // The collation decides who gets which row (the look-alike classes).
        return Err(CompatError::Scenario(format!(
            "the legacy's msg table has collation {legacy_collation}, ours {our_collation}: \
             create ours with charset {}",
            args.charset
        )));
    }
    let mut next_id = 1 + legacy_max.max(our_max);
    let mut counts: BTreeMap<&str, Counts> = BTreeMap::new();
    let started = std::time::Instant::now();
    for i in 0..args.cases {
        let class = classes[(i % classes.len() as u64) as usize];
        let mut rng = case_rng(args.seed, i);
        let Case { mut scenario, file } = generate(
            class,
            &format!("fuzz_{}_{}_{i}", args.seed, class),
            &mut rng,
        );
        if let Some((name, source)) = &file {
            sites.write(name, &source.bytes)?;
        }
        for (k, row) in scenario.rows.iter_mut().enumerate() {
            row.insert(
                "mid".to_owned(),
                CellValue::Int((next_id + k as u64) as i64),
            );
        }
        let ran = run_both(&scenario, &legacy, &ours, next_id).await;
        if let Some((name, _)) = &file {
            sites.remove(name);
        }
        let (l, o) = ran?;
        // Room for the rows inserted and the one each request (a send) may add; ids only grow.
        next_id += scenario.rows.len() as u64 + l.exchanges.len() as u64 + 1;
        if left_waiting(&l) {
            run_reset(&args.reset_command)?;
        }
        if left_waiting(&o) {
            // A request this case left waiting is closed by now, but the server learns of it a
            // moment later; until then it could claim (and give back) a row of the next case,
            // which would then come after newer rows.
            settle(&ours.base_url).await?;
        }
        if i > 0 && i % 1000 == 0 {
            summary(args.seed, i, started, &counts);
        }
        let mut differences = compare(&l, &o);
        let c = counts.entry(class).or_default();
        c.cases += 1;
        if file.is_some() && declined(&o) && (printed(&l) || file_has_text(&file)) {
            c.declined += 1;
            // PHP ran the code and printed what it printed; we print nothing. Only the body may
            // differ: status and Content-Type are still PHP's.
            differences.retain(|d| d.what != "body");
        }
        if differences.is_empty() {
            if args.verbose {
                println!("same   case {i} {class}");
            }
            continue;
        }
        c.differ += 1;
        report(args, i, &scenario, &differences)?;
        if let Some((name, source)) = &file {
            let path = args.save.join(name);
            std::fs::write(&path, &source.bytes).map_err(|e| CompatError::io(&path, e))?;
        }
    }
    summary(args.seed, args.cases, started, &counts);
    Ok(counts.values().map(|c| c.differ).sum())
}

/// Cases and differences per class so far (printed every 1000 cases and at the end, so an
/// interrupted long run still says what it covered).
fn summary(seed: u64, cases: u64, started: std::time::Instant, counts: &BTreeMap<&str, Counts>) {
    println!(
        "seed {seed} cases {cases} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for (class, c) in counts {
        let declined = match c.declined {
            0 => String::new(),
            n => format!(
                " {n:>5} declined ({:.0}%)",
                100.0 * n as f64 / c.cases.max(1) as f64
            ),
        };
        println!(
            "  {class:<16} {:>7} cases {:>5} differ{declined}",
            c.cases, c.differ
        );
    }
}

/// PHP printed something.
fn printed(legacy: &Outcome) -> bool {
    legacy
        .exchanges
        .iter()
        .any(|x| x.response.as_ref().is_some_and(|r| !r.body.is_empty()))
}

fn file_has_text(file: &Option<(String, php_text::Source)>) -> bool {
    file.as_ref().is_some_and(|(_, source)| source.has_text)
}

/// Our server declined to print a file's text: a 200 with an empty body (to a request that
/// gets a body: a HEAD says nothing either way).
fn declined(ours: &Outcome) -> bool {
    ours.exchanges.iter().all(|x| {
        x.method != "HEAD"
            && x.response
                .as_ref()
                .is_some_and(|r| r.status == 200 && r.body.is_empty())
    })
}

async fn run_both(
    scenario: &Scenario,
    legacy: &Target,
    ours: &Target,
    next_id: u64,
) -> Result<(Outcome, Outcome), CompatError> {
    let (l, o) = tokio::join!(
        runner::prepare_in_place(scenario, &legacy.database_url, next_id),
        runner::prepare_in_place(scenario, &ours.database_url, next_id)
    );
    l?;
    o?;
    let (l, o) = tokio::join!(
        runner::run_prepared(scenario, legacy),
        runner::run_prepared(scenario, ours)
    );
    Ok((l?, o?))
}

/// The highest id `msg` has ever handed out (its next AUTO_INCREMENT minus one) and the table's
/// collation, creating the table from sql/schema.sql (in `table`'s charset) when it is missing. The legacy's table is recreated (`recreate`):
/// recording leaves the last scenario's variant there, and PHP keeps no state about it.
async fn max_id(
    database_url: &str,
    recreate: bool,
    table: &TableVariant,
) -> Result<(u64, String), CompatError> {
    use mysql_async::prelude::Queryable;
    let db = |e: mysql_async::Error| CompatError::Db(format!("{database_url}: {e}"));
    let opts = mysql_async::Opts::from_url(database_url)
        .map_err(|e| CompatError::Db(format!("{database_url}: {e}")))?;
    let mut conn = mysql_async::Conn::new(opts).await.map_err(db)?;
    if recreate {
        conn.query_drop("DROP TABLE IF EXISTS msg")
            .await
            .map_err(db)?;
    }
    // sql/schema.sql says `CREATE TABLE IF NOT EXISTS`.
    for statement in table.create_statements()? {
        conn.query_drop(statement).await.map_err(db)?;
    }
    let info: Option<(Option<u64>, Option<String>)> = conn
        .query_first(
            "SELECT AUTO_INCREMENT, TABLE_COLLATION FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'msg'",
        )
        .await
        .map_err(db)?;
    let (next, collation) = info.unwrap_or_default();
    let max: Option<Option<u64>> = conn
        .query_first("SELECT MAX(mid) FROM msg")
        .await
        .map_err(db)?;
    let _ = conn.disconnect().await;
    let next = next.unwrap_or(1).saturating_sub(1);
    Ok((
        next.max(max.flatten().unwrap_or(0)),
        collation.unwrap_or_default(),
    ))
}

/// A request the legacy never answered, and the agent stream (which PHP never ends), still hold
/// a PHP worker in its `sleep(1)` loop: left alone, it would claim rows of a later case.
/// Waits (at most 5 s) until our server has no request waiting (`chat_waiting_requests 0`).
async fn settle(base_url: &str) -> Result<(), CompatError> {
    let (authority, _) = crate::http::split_base_url(base_url)?;
    let request = format!(
        "GET /.chat-server/metrics HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut scrape = crate::http::Exchange::send(&authority, request.as_bytes(), false).await?;
        scrape.finish(std::time::Duration::from_secs(5)).await?;
        let text = String::from_utf8_lossy(&scrape.body);
        if text.lines().any(|line| line == "chat_waiting_requests 0") {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(CompatError::Http(format!(
                "requests still waiting on {authority} 5 s after their case ended"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn left_waiting(outcome: &Outcome) -> bool {
    outcome.exchanges.iter().any(|x| {
        x.checks
            .iter()
            .any(|c| matches!(c, Check::Complete(false) | Check::Read { .. }))
    })
}

fn report(
    args: &FuzzArgs,
    i: u64,
    scenario: &Scenario,
    differences: &[Difference],
) -> Result<(), CompatError> {
    println!("DIFFER case {i} ({})", scenario.name);
    for d in differences {
        println!("  {d}");
    }
    std::fs::create_dir_all(&args.save).map_err(|e| CompatError::io(&args.save, e))?;
    let path = args.save.join(format!("{}.json", scenario.name));
    let text = serde_json::to_string_pretty(scenario)
        .map_err(|e| CompatError::Scenario(format!("{}: {e}", scenario.name)))?;
    std::fs::write(&path, text + "\n").map_err(|e| CompatError::io(&path, e))?;
    println!("  saved {}", path.display());
    Ok(())
}

/// SplitMix64: small, fast, and the same on every platform (no dependency for a test tool).
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The generator of case `index`: one per case, so any case can be regenerated from (seed,
/// index) alone.
fn case_rng(seed: u64, index: u64) -> Rng {
    Rng::new(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Builds the case of `class`.
pub fn generate(class: &str, name: &str, rng: &mut Rng) -> Case {
    if class == "php_text" {
        return php_text_case(name, rng);
    }
    loop {
        let scenario = match class {
            "send_form" => send_case(name, plain_cookie(rng), form_body(rng), rng),
            "send_cookie" => send_case(name, cookie_header(rng), plain_body(rng), rng),
            "customer_cookie" => customer_case(name, cookie_header(rng)),
            "send_multipart" => send_case(name, plain_cookie(rng), multipart_body(rng), rng),
            "request_target" => target_case(name, rng),
            "query_string" => http_edges::query_string_case(name, rng),
            "header_bytes" => http_edges::header_bytes_case(name, rng),
            "lookalike_poll" => lookalikes::poll_case(name, rng),
            "lookalike_send" => lookalikes::send_case(name, rng),
            "lookalike_stream" => lookalikes::stream_case(name, rng),
            _ => poll_case(name, rng),
        };
        if clear_of_deviations(&scenario) {
            return Case {
                scenario,
                file: None,
            };
        }
    }
}

/// No `'` or `\` (raw or `%`-escaped) anywhere in what is sent, and no byte of a 4-byte UTF-8
/// character escaped; raw 4-byte characters are never generated.
pub fn clear_of_deviations(scenario: &Scenario) -> bool {
    scenario.steps.iter().all(|step| match step {
        Step::Request(r) | Step::Open(r) => {
            let body = r.body.clone().unwrap_or_default();
            std::iter::once(body)
                .chain(r.headers.iter().chain(&r.latin1).map(|(_, v)| v.clone()))
                .all(|text| sql_safe(&text))
        }
        _ => true,
    })
}

fn sql_safe(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    !lower.contains('\'')
        && !lower.contains('\\')
        && !lower.contains("%27")
        && !lower.contains("%5c")
        && !(0..8).any(|d| lower.contains(&format!("%f{d}")))
        && text.chars().all(|c| (c as u32) < 0x10000)
}

fn request(id: &str, method: &str, path: &str, headers: Vec<(String, String)>) -> Request {
    Request {
        id: id.to_owned(),
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body: None,
        body_base64: None,
        timeout_ms: Some(5000),
        digest_body: false,
        latin1: Vec::new(),
    }
}

/// A case: `rows` in the table, then the one request.
fn scenario(
    name: &str,
    description: &str,
    rows: Vec<BTreeMap<String, CellValue>>,
    request: Request,
) -> Scenario {
    Scenario {
        name: name.to_owned(),
        description: description.to_owned(),
        table: TableVariant::default(),
        rows,
        steps: vec![Step::Request(request)],
        deviation: None,
    }
}

/// Gives a POST request a plain form body, as the pages' `$.post` sends it.
fn form_post(request: &mut Request, body: &str) {
    request.headers.push((
        "Content-Type".to_owned(),
        "application/x-www-form-urlencoded".to_owned(),
    ));
    request.body = Some(body.to_owned());
}

fn send_case(
    name: &str,
    cookie: Option<String>,
    body: (String, String),
    rng: &mut Rng,
) -> Scenario {
    let (content_type, body) = body;
    let mut headers = Vec::new();
    if let Some(c) = cookie {
        headers.push(("Cookie".to_owned(), c));
    }
    if !content_type.is_empty() {
        headers.push(("Content-Type".to_owned(), content_type));
    }
    if rng.one_in(8) {
        headers.reverse();
    }
    let mut r = request("send", "POST", "/AJsendmsg.php", headers);
    r.body = Some(body);
    scenario(
        name,
        "generated by chat-compat fuzz: a form post",
        Vec::new(),
        r,
    )
}

fn customer_case(name: &str, cookie: Option<String>) -> Scenario {
    let headers = cookie
        .map(|c| vec![("Cookie".to_owned(), c)])
        .unwrap_or_default();
    scenario(
        name,
        "generated by chat-compat fuzz: the customer page",
        Vec::new(),
        request("page", "GET", "/AJ05customer.php", headers),
    )
}

fn poll_case(name: &str, rng: &mut Rng) -> Scenario {
    let rec = safe_name(rng);
    let mut rows = Vec::new();
    // Rows of other users and read rows around the one the poll must get.
    for _ in 0..rng.below(3) {
        rows.push(row(&format!("{rec}x"), 0, rng));
    }
    for _ in 0..rng.below(2) {
        rows.push(row(&rec, 1, rng));
    }
    rows.push(row(&rec, 0, rng));
    if rng.one_in(3) {
        rows.push(row(&rec, 0, rng));
    }
    let method = if rng.one_in(8) { "POST" } else { "GET" };
    scenario(
        name,
        "generated by chat-compat fuzz: json_encode of a row",
        rows,
        request(
            "poll",
            method,
            "/AJ05comitajax.php",
            vec![("Cookie".to_owned(), format!("username={rec}"))],
        ),
    )
}

fn row(rec: &str, isread: i64, rng: &mut Rng) -> BTreeMap<String, CellValue> {
    let mut r = BTreeMap::new();
    r.insert("rec".to_owned(), CellValue::Text(rec.to_owned()));
    // `pos` is VARCHAR(64) and an atom may be several characters long.
    let pos: String = row_text(rng, 20).chars().take(64).collect();
    r.insert("pos".to_owned(), CellValue::Text(pos));
    let content = if rng.one_in(10) {
        CellValue::Null
    } else {
        CellValue::Text(row_text(rng, 60))
    };
    r.insert("content".to_owned(), content);
    r.insert("isread".to_owned(), CellValue::Int(isread));
    r
}

/// Text for a row inserted through parameters: everything `json_encode` escapes or keeps.
fn row_text(rng: &mut Rng, max: usize) -> String {
    const ATOMS: &[&str] = &[
        "a",
        "Z",
        "0",
        "7",
        "-1",
        "1e3",
        "0x1A",
        " ",
        "\"",
        "'",
        "\\",
        "/",
        "</script>",
        "<",
        ">",
        "&",
        "\u{1}",
        "\u{1f}",
        "\t",
        "\n",
        "\r",
        "\u{7f}",
        "\u{80}",
        "é",
        "中",
        "\u{2028}",
        "\u{2029}",
        "\u{feff}",
        "\u{ffff}",
        "null",
        "true",
        "%",
        "+",
        "\0",
        "[",
        "]",
        "{",
        "}",
    ];
    if rng.one_in(8) {
        // Numeric strings stay strings in json_encode.
        return rng
            .pick(&["0", "123", "-5", "1.50", "1e5", " 1", "00"])
            .to_string();
    }
    let n = rng.below(max + 1);
    (0..n).map(|_| *rng.pick(ATOMS)).collect::<String>()
}

/// A user name usable as-is in the poll's cookie and its SQL: letters, digits, `_-.`, BMP.
fn safe_name(rng: &mut Rng) -> String {
    const ATOMS: &[&str] = &["a", "b", "z", "0", "9", "_", "-", ".", "é", "中", "admin"];
    let n = 1 + rng.below(10);
    let mut name: String = (0..n).map(|_| *rng.pick(ATOMS)).collect();
    if name == "0" {
        // `empty("0")`: the legacy polls for rec '' then; a case of its own (poll_cookie_zero).
        name.push('a');
    }
    name.chars().take(60).collect()
}

/// A value near the edges of PHP's decoding, as raw request text.
fn edgy_value(rng: &mut Rng, max: usize) -> String {
    const ATOMS: &[&str] = &[
        "a",
        "b",
        "Z",
        "0",
        "9",
        " ",
        "  ",
        "+",
        "%",
        "%2",
        "%20",
        "%2B",
        "%2b",
        "%25",
        "%26",
        "%3D",
        "%3B",
        "%00",
        "%7F",
        "%80",
        "%C3%A9",
        "%E4%B8%AD",
        "%ZZ",
        "%g1",
        ";",
        "=",
        "&",
        "[",
        "]",
        ".",
        ",",
        "\t",
        "\u{7f}",
        "é",
        "中",
        "\"",
        "<",
        ">",
        "/",
        "?",
        "#",
        "~",
        "_",
        "-",
        "admin",
        "\u{0}",
        "\u{1}",
    ];
    let n = rng.below(max + 1);
    let value: String = (0..n).map(|_| *rng.pick(ATOMS)).collect();
    // A lone `%80` makes the value invalid UTF-8 and the insert fail on both sides; keep it in
    // a quarter of the values so most cases still compare a stored row.
    if rng.one_in(4) {
        value
    } else {
        value.replace("%80", "%C2%80")
    }
}

/// A form field name near the edges: brackets, dots, spaces, escapes.
fn edgy_name(rng: &mut Rng) -> String {
    const NAMES: &[&str] = &[
        "rec",
        "content",
        "rec[]",
        "content[]",
        "rec[a]",
        "content[0]",
        "re c",
        "re.c",
        "rec ",
        " rec",
        "rec%00",
        "c%6Fntent",
        "r%65c",
        "content[",
        "content]",
        "[rec]",
        "con.tent",
        "con tent",
        "rec[a][b]",
        "rec[]x",
        "x",
        "",
    ];
    if rng.one_in(4) {
        edgy_value(rng, 12)
    } else if rng.one_in(30) {
        "n".repeat(1 + rng.below(300))
    } else {
        rng.pick(NAMES).to_string()
    }
}

/// A form body and its Content-Type.
fn form_body(rng: &mut Rng) -> (String, String) {
    let mut fields: Vec<String> = Vec::new();
    let many = rng.one_in(40);
    let n = if many {
        990 + rng.below(30)
    } else {
        rng.below(6)
    };
    for _ in 0..n {
        let name = if many {
            format!("v{}", rng.below(5000))
        } else {
            edgy_name(rng)
        };
        match rng.below(8) {
            0 => fields.push(name),
            1 => fields.push(String::new()),
            _ => fields.push(format!("{name}={}", edgy_value(rng, 12))),
        }
    }
    // Most bodies carry the two fields the page reads, somewhere among the others.
    if rng.below(5) != 0 {
        let at = rng.below(fields.len() + 1);
        fields.insert(at, format!("rec={}", edgy_value(rng, 8)));
        let at = rng.below(fields.len() + 1);
        fields.insert(at, format!("content={}", edgy_value(rng, 24)));
    }
    let sep = if rng.one_in(10) { "&&" } else { "&" };
    let mut body = fields.join(sep);
    if rng.one_in(10) {
        body.push('&');
    }
    let content_type = rng
        .pick(&[
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=UTF-8",
            "Application/X-WWW-Form-Urlencoded",
            "application/x-www-form-urlencoded;charset=utf-8",
        ])
        .to_string();
    (content_type, body)
}

fn plain_body(rng: &mut Rng) -> (String, String) {
    (
        "application/x-www-form-urlencoded".to_owned(),
        format!("rec=admin&content=hi{}", rng.below(100)),
    )
}

fn plain_cookie(rng: &mut Rng) -> Option<String> {
    Some(format!("username=admin{}", 100 + rng.below(900)))
}

/// A `Cookie` header near the edges, or none.
fn cookie_header(rng: &mut Rng) -> Option<String> {
    if rng.one_in(12) {
        return None;
    }
    const NAMES: &[&str] = &[
        "username",
        "username",
        "username",
        "Username",
        "USERNAME",
        "user name",
        "user.name",
        "username[]",
        "username[a]",
        "username ",
        " username",
        "user%6Eame",
        "other",
        "a",
        "",
    ];
    let seps = ["; ", ";", " ; ", ";\t", ",", "; ;"];
    if rng.one_in(40) {
        // Around max_input_vars (1000) cookies, `username` near the limit; short enough for
        // nginx's 8 KiB header line.
        let n = 990 + rng.below(20);
        let at = 985 + rng.below(25);
        let mut parts: Vec<String> = (0..n).map(|k| format!("c{}=1", k % 50)).collect();
        if rng.one_in(3) {
            parts.insert(rng.below(n), ";".to_owned());
        }
        parts.insert(at.min(parts.len()), format!("username=u{}", rng.below(100)));
        return Some(parts.join(";"));
    }
    let n = 1 + rng.below(4);
    let mut parts = Vec::new();
    for _ in 0..n {
        let name = rng.pick(NAMES).to_string();
        let value = match rng.below(5) {
            0 => String::new(),
            1 => format!("admin{}", rng.below(1000)),
            2 => rng
                .pick(&["0", "00", "0.0", " ", "+", "%30", "%20", "a+b"])
                .to_string(),
            _ => edgy_value(rng, 10),
        };
        // Header values must not break the request's framing.
        let value: String = value.chars().filter(|c| *c != '\0').collect();
        if rng.one_in(10) {
            parts.push(name);
        } else {
            parts.push(format!("{name}={value}"));
        }
    }
    let mut cookie = String::new();
    for (k, p) in parts.iter().enumerate() {
        if k > 0 {
            let sep: &&str = rng.pick(&seps);
            cookie.push_str(sep);
        }
        cookie.push_str(p);
    }
    if rng.one_in(10) {
        cookie.push(';');
    }
    Some(cookie)
}

/// A `multipart/form-data` body and its Content-Type.
fn multipart_body(rng: &mut Rng) -> (String, String) {
    let boundary = rng
        .pick(&["XyZ", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "a.b+c", "b"])
        .to_string();
    let content_type = match rng.below(4) {
        0 => format!("multipart/form-data; boundary=\"{boundary}\""),
        1 => format!("Multipart/Form-Data;boundary={boundary}"),
        2 if rng.one_in(4) => "multipart/form-data".to_owned(),
        _ => format!("multipart/form-data; boundary={boundary}"),
    };
    let nl = if rng.one_in(5) { "\n" } else { "\r\n" };
    let mut body = String::new();
    let mut parts: Vec<(String, String)> = Vec::new();
    for _ in 0..rng.below(4) {
        parts.push((edgy_name(rng), edgy_value(rng, 10)));
    }
    if rng.below(5) != 0 {
        let at = rng.below(parts.len() + 1);
        parts.insert(at, ("rec".to_owned(), edgy_value(rng, 8)));
        let at = rng.below(parts.len() + 1);
        parts.insert(at, ("content".to_owned(), edgy_value(rng, 24)));
    }
    for (name, value) in parts {
        body.push_str(&format!("--{boundary}{nl}"));
        let disposition = match rng.below(10) {
            0 => format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"f.txt\""),
            1 => format!("Content-Disposition: form-data; name={name}"),
            2 => "Content-Disposition: form-data".to_owned(),
            3 => format!("content-disposition: form-data; name=\"{name}\""),
            _ => format!("Content-Disposition: form-data; name=\"{name}\""),
        };
        body.push_str(&disposition);
        body.push_str(nl);
        if rng.one_in(6) {
            body.push_str(&format!("Content-Type: text/plain{nl}"));
        }
        body.push_str(nl);
        body.push_str(&value);
        body.push_str(nl);
    }
    if !rng.one_in(8) {
        body.push_str(&format!("--{boundary}--{nl}"));
    }
    (content_type, body)
}

/// A request target near the edges of nginx's and the server's path handling.
fn target_case(name: &str, rng: &mut Rng) -> Scenario {
    const SEGMENTS: &[&str] = &[
        "AJ05customer.php",
        "AJconn.php",
        "AJsendmsg.php",
        "AJ04custserv.php",
        "jquery.js",
        ".",
        "..",
        "%2e",
        "%2E%2E",
        "",
        "x",
        "ajconn.php",
        "AJCONN.PHP",
        "AJconn%2Ephp",
        "AJconn.php%00",
        "index.php",
        "AJconn.phps",
        "AJconn.php.",
        "a b",
        "%20",
        "~",
        "AJ%30%35customer.php",
    ];
    let n = 1 + rng.below(3);
    let mut path = String::new();
    for _ in 0..n {
        path.push('/');
        let segment: &&str = rng.pick(SEGMENTS);
        path.push_str(segment);
    }
    if rng.one_in(3) {
        path.push('?');
        path.push_str(&edgy_value(rng, 10).replace([' ', '\t', '\u{7f}', '\0', '\u{1}', '#'], "_"));
    }
    // Raw spaces, controls and `#` do not belong in a request line.
    let path = path.replace(' ', "%20");
    let method = *rng.pick(&["GET", "GET", "HEAD", "POST"]);
    let mut r = request("target", method, &path, Vec::new());
    if method == "POST" {
        form_post(&mut r, "rec=a&content=b");
    }
    // No `digest_body` even for jquery.js: nothing of a case's answer is committed, and a
    // digest would hide rule 5 (the server signature) on error pages.
    scenario(
        name,
        "generated by chat-compat fuzz: a request target",
        Vec::new(),
        r,
    )
}

/// A generated `.php` file requested with GET, HEAD or POST, maybe with PATH_INFO and a query.
fn php_text_case(name: &str, rng: &mut Rng) -> Case {
    let source = php_text::source(rng);
    let file = format!("{name}.php");
    let mut path = format!("/{file}");
    if rng.one_in(4) {
        let info: &&str = rng.pick(&["/", "/x", "/a/b.php", "/%20"]);
        path.push_str(info);
    }
    if rng.one_in(3) {
        let query: &&str = rng.pick(&["?", "?a=1", "?x=<?php+echo+1;?>", "?a[]=1&b=%00"]);
        path.push_str(query);
    }
    let method = *rng.pick(&["GET", "GET", "HEAD", "POST"]);
    let mut r = request("page", method, &path, Vec::new());
    if method == "POST" {
        form_post(&mut r, "a=1&b=%3C%3F");
    }
    Case {
        scenario: scenario(
            name,
            "generated by chat-compat fuzz: a .php file",
            Vec::new(),
            r,
        ),
        file: Some((file, source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_cases() {
        for class in CLASSES {
            let a = generate(class, "x", &mut Rng::new(42));
            let b = generate(class, "x", &mut Rng::new(42));
            assert_eq!(
                serde_json::to_string(&a.scenario).expect("serialise"),
                serde_json::to_string(&b.scenario).expect("serialise")
            );
            let source = |c: &Case| c.file.as_ref().map(|(_, s)| s.bytes.clone());
            assert_eq!(source(&a), source(&b));
        }
    }

    #[test]
    fn generated_cases_keep_clear_of_the_deviations() {
        let mut rng = Rng::new(7);
        for i in 0..2000 {
            let s = generate(CLASSES[i % CLASSES.len()], "x", &mut rng).scenario;
            assert!(clear_of_deviations(&s));
            s.validate().expect("a valid scenario");
        }
    }

    #[test]
    fn generated_rows_fit_the_table() {
        // `rec` and `pos` are VARCHAR(64): a longer value is refused by MariaDB in strict mode,
        // which ended a 100,000-case run at case 34,000.
        // Case 34,806 of seed 20261202 is the one that did; then a sweep of other seeds.
        let cases =
            std::iter::once(case_rng(20261202, 34806)).chain((0..20_000).map(|i| case_rng(i, 4)));
        for mut rng in cases {
            for row in generate("poll_row", "x", &mut rng).scenario.rows {
                for column in ["rec", "pos"] {
                    if let Some(CellValue::Text(text)) = row.get(column) {
                        assert!(text.chars().count() <= 64, "{column} too long: {text:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn fuzz_live_runs_every_class() {
        // compat/fuzz-live lists the classes of its two runs; the quick ones in this order, so
        // CI's fixed seed keeps giving the cases it gave before the look-alike classes.
        let script = include_str!("../../fuzz-live");
        let list = |var: &str| -> Vec<String> {
            let line = script
                .lines()
                .find(|l| l.starts_with(&format!("{var}=\"")))
                .unwrap_or_else(|| panic!("fuzz-live sets no {var}"));
            line[var.len() + 2..line.len() - 1]
                .split(' ')
                .map(str::to_owned)
                .collect()
        };
        let quick = list("quick_classes");
        let slow = list("slow_classes");
        assert_eq!(quick, CLASSES[..9].to_vec());
        assert_eq!(slow, CLASSES[9..].to_vec());
        // The class that runs on its own has its own run.
        assert!(script.contains(&format!("--class {PAGE_CLASS}")));
    }

    #[test]
    fn the_filter_refuses_quotes_backslashes_and_astral_escapes() {
        assert!(!sql_safe("a'b"));
        assert!(!sql_safe("a\\b"));
        assert!(!sql_safe("a%27b"));
        assert!(!sql_safe("a%5cb"));
        assert!(!sql_safe("%F0%9F%98%80"));
        assert!(!sql_safe("\u{1F600}"));
        assert!(sql_safe("a%C3%A9+b"));
    }
}
