//! The reader against the bundled file, real-world variants, and files it must refuse.

use super::*;

fn settings(source: &str) -> SiteSettings {
    parse(source.as_bytes()).unwrap_or_else(|refusal| panic!("refused: {refusal}"))
}

fn refused(source: &str) -> Refusal {
    let refusal = parse(source.as_bytes()).expect_err("must be refused");
    for secret in ["s3cret", "dbhost.internal"] {
        assert!(!refusal.reason.contains(secret), "{refusal}");
    }
    refusal
}

fn socket(path: &str, default: bool) -> Server {
    Server::Socket {
        path: path.to_owned(),
        default,
    }
}

#[test]
fn the_bundled_file_is_root_on_the_default_socket_database_test() {
    let source = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/compat/legacy-site/AJconn.php"
    ))
    .expect("bundled AJconn.php");
    let settings = parse(&source).expect("the bundled file is read");
    assert_eq!(settings.server.value, socket(DEFAULT_SOCKET, true));
    assert_eq!(
        settings.server.from,
        Origin {
            line: 4,
            by: "mysql_connect()"
        }
    );
    assert_eq!(settings.user.value, "root");
    assert_eq!(settings.password.value, "");
    assert_eq!(settings.database.value, "test");
    assert_eq!(
        settings.database.from,
        Origin {
            line: 5,
            by: "mysql_query()"
        }
    );
    assert_eq!(
        settings.names.as_ref().map(|n| n.value.as_str()),
        Some("utf8")
    );
    assert_eq!(
        settings.url(),
        "mysql://root@localhost/test?socket=%2Frun%2Fmysqld%2Fmysqld.sock"
    );
}

#[test]
fn mysqli_connect_with_four_arguments_and_a_failure_branch() {
    let settings = settings(
        "<?php\n\
         $conn = mysqli_connect(\"dbhost.internal\", 'chat', 's3cret', 'chatdb');\n\
         if (!$conn) {\n    die(\"Connection failed: \" . mysqli_connect_error());\n}\n\
         mysqli_set_charset($conn, 'utf8mb4');\n",
    );
    assert_eq!(
        settings.server.value,
        Server::Tcp {
            host: "dbhost.internal".into(),
            port: 3306
        }
    );
    assert_eq!(
        (
            settings.user.value.as_str(),
            settings.password.value.as_str()
        ),
        ("chat", "s3cret")
    );
    assert_eq!(settings.database.value, "chatdb");
    assert_eq!(
        settings.database.from,
        Origin {
            line: 2,
            by: "mysqli_connect()"
        }
    );
    assert_eq!(settings.names.as_ref().map(|n| n.from.line), Some(6));
    let url = settings.url();
    assert_eq!(
        url,
        "mysql://chat:s3cret@dbhost.internal:3306/chatdb?prefer_socket=false"
    );
    assert!(!settings.describe().contains("s3cret") && !settings.describe().contains("chat:"));
    assert!(!format!("{settings:?}").contains("s3cret"));
}

#[test]
fn pdo_with_a_dsn_in_a_try_block() {
    let settings = settings(
        "<?php\ntry {\n  $pdo = new PDO('mysql:host=127.0.0.1;port=3307;dbname=chat;charset=utf8mb4', 'u', 'p@ss;/w');\n  \
         $pdo->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);\n\
         } catch (PDOException $e) {\n  echo \"Connection failed: \" . $e->getMessage();\n}\n",
    );
    assert_eq!(
        settings.server.value,
        Server::Tcp {
            host: "127.0.0.1".into(),
            port: 3307
        }
    );
    assert_eq!(settings.database.value, "chat");
    assert_eq!(
        settings.names.as_ref().map(|n| n.value.as_str()),
        Some("utf8mb4")
    );
    let opts = mysql_async::Opts::from_url(&settings.url()).expect("a valid URL");
    assert_eq!(opts.user(), Some("u"));
    assert_eq!(opts.pass(), Some("p@ss;/w"));
    assert_eq!(opts.tcp_port(), 3307);
    assert!(!opts.prefer_socket());
}

#[test]
fn mysql_connect_with_a_port_and_mysql_select_db() {
    let settings = settings(
        "<?php\n$link = mysql_connect('127.0.0.1:3306', 'root', 's3cret') or die('Could not connect: ' . mysql_error());\n\
         mysql_select_db('test', $link) or die('no db');\nmysql_query(\"SET NAMES 'utf8'\");\n?>\n",
    );
    assert_eq!(
        settings.server.value,
        Server::Tcp {
            host: "127.0.0.1".into(),
            port: 3306
        }
    );
    assert_eq!(
        settings.database.from,
        Origin {
            line: 3,
            by: "mysql_select_db()"
        }
    );
    assert_eq!(
        settings.names.as_ref().map(|n| n.value.as_str()),
        Some("utf8")
    );
}

#[test]
fn php_host_forms_map_to_sockets_and_ports() {
    let server = |host: &str| {
        settings(&format!(
            "<?php mysql_connect('{host}','r',''); mysql_select_db('t');"
        ))
        .server
        .value
    };
    assert_eq!(server("LocalHost"), socket(DEFAULT_SOCKET, true));
    assert_eq!(
        server("localhost:/tmp/my.sock"),
        socket("/tmp/my.sock", false)
    );
    assert_eq!(server(":/tmp/my.sock"), socket("/tmp/my.sock", false));
    assert_eq!(server("localhost:3307"), socket(DEFAULT_SOCKET, true));
    assert_eq!(
        server("db:3307"),
        Server::Tcp {
            host: "db".into(),
            port: 3307
        }
    );
    let mysqli = settings("<?php $m = new mysqli('localhost','r','','t', null, '/s.sock');");
    assert_eq!(mysqli.server.value, socket("/s.sock", false));
    let pdo = settings("<?php $p = new PDO('mysql:dbname=t', 'r');");
    assert_eq!(pdo.server.value, socket(DEFAULT_SOCKET, true));
    assert_eq!(pdo.password.value, "");
}

#[test]
fn variables_are_refused() {
    let refusal = refused(
        "<?php\n$host = 'dbhost.internal';\n$conn = mysql_connect($host, 'root', 's3cret');\nmysql_select_db('test');\n",
    );
    assert_eq!(refusal.line, Some(2), "{refusal}");
    assert!(refusal.reason.contains("$host"), "{refusal}");
    let refusal = refused("<?php $conn = mysql_connect('localhost', $user, 's3cret');");
    assert!(refusal.reason.contains("variable $user"), "{refusal}");
}

#[test]
fn an_included_config_file_is_refused() {
    let refusal = refused(
        "<?php\nrequire_once 'config.php';\n$conn = mysql_connect(DB_HOST, DB_USER, DB_PASS);\n",
    );
    assert_eq!(refusal.line, Some(2));
    assert!(refusal.reason.contains("require_once"), "{refusal}");
    let refusal = refused("<?php include(__DIR__ . '/db.php');");
    assert!(refusal.reason.contains("include"), "{refusal}");
}

#[test]
fn defined_constants_are_refused() {
    let refusal = refused(
        "<?php\ndefine('DB_HOST', 'dbhost.internal');\nmysql_connect(DB_HOST, 'root', 's3cret');\n",
    );
    assert_eq!(refusal.line, Some(2));
    assert!(refusal.reason.contains("define()"), "{refusal}");
    let refusal = refused("<?php mysql_connect(DB_HOST, 'root', 's3cret');");
    assert!(refusal.reason.contains("constant DB_HOST"), "{refusal}");
}

#[test]
fn anything_else_not_a_plain_literal_is_refused() {
    for (source, says) in [
        ("<?php mysql_connect('local' . 'host', 'r', 's3cret');", "concatenation"),
        ("<?php mysql_connect(getenv('DB_HOST'), 'r', 's3cret');", "getenv()"),
        ("<?php mysql_connect(\"$h\", 'r', 's3cret');", "`$`"),
        ("<?php mysql_connect(<<<EOT\ndbhost.internal\nEOT, 'r', 's3cret');", "heredoc"),
        ("<?php mysql_connect('localhost', 'r');", "php.ini"),
        ("<?php mysql_connect('localhost','r','s3cret'); mysql_select_db('a'); mysql_connect('h','r','');", "second connection"),
        ("<?php mysql_connect('localhost','r','s3cret');", "no database"),
        ("<?php mysql_connect('localhost','r',''); mysql_query('set names gbk'); mysql_select_db('t');", "gbk"),
        ("<?php mysql_connect('localhost','r',''); mysql_query('SET sql_mode=\"\"');", "other than USE"),
        ("<?php if ($x) { mysql_connect('localhost','r','s3cret'); }", "failure branch"),
        ("<?php $m = mysqli_connect('dbhost.internal:3307','r','s3cret','t');", "`:`"),
        ("<?php $p = new PDO('mysql:host=h;dbname=t','r','s3cret',[PDO::MYSQL_ATTR_INIT_COMMAND => 'SET NAMES latin1']);", "MYSQL_ATTR_INIT_COMMAND"),
        ("<?php $m = mysqli_connect('h','r','s3cret','t'); $other->query('use x');", "other than the connection"),
        ("no code at all", "no mysql_connect"),
        ("<?php mysql_connect('localhost','r','s3cret') mysql_select_db('t');", "does not follow"),
        ("<?php mysql_connect('localhost','r','s3cret'); mysql_select_db('t')", "ends inside"),
        ("<?php mysql_connect('', 'r', 's3cret');", "php.ini's default host"),
        ("<?php $m = mysqli_connect('h', null, 's3cret', 't');", "null"),
        ("<?php mysql_connect('h', 'r', 's3cret', FLAGS);", "true or false"),
    ] {
        let refusal = refused(source);
        assert!(refusal.reason.contains(says), "{source}: {refusal}");
    }
}

#[test]
fn comments_and_text_outside_code_are_skipped() {
    let settings = settings(
        "\u{feff}<?php\n/* old: mysql_connect('x','y','z'); */\n# note\n// mysql_select_db('old');\n\
         mysql_connect('localhost','root',''); // ?>\n<?php mysql_query('use `chat`');",
    );
    assert_eq!(settings.database.value, "chat");
    assert_eq!(settings.database.from.line, 6);
}

#[test]
fn the_url_encodes_what_a_url_cannot_hold() {
    let settings = settings(
        "<?php mysql_connect('localhost:/var/run/my sql.sock','us@r','a:b/c?d#e%f g'); mysql_select_db('t');",
    );
    let opts = mysql_async::Opts::from_url(&settings.url()).expect("a valid URL");
    assert_eq!(opts.user(), Some("us@r"));
    assert_eq!(opts.pass(), Some("a:b/c?d#e%f g"));
    assert_eq!(opts.socket(), Some("/var/run/my sql.sock"));
    assert_eq!(opts.db_name(), Some("t"));
}
