<?php
/*
 * The removed ext/mysql API (mysql_connect, mysql_query, mysql_fetch_assoc, ...) for PHP 8.2,
 * implemented over mysqli so the legacy site in compat/legacy-site runs unmodified.
 *
 * Loaded with `auto_prepend_file` by compat/legacy-up; it prints nothing, so the legacy pages'
 * bytes are unchanged. It covers the calls the six legacy files make plus the few neighbours a
 * similar site would use, and copies the old extension's observable behaviour:
 *
 *  - errors never throw: PHP 8.1 made mysqli throw by default (MYSQLI_REPORT_ERROR|STRICT), the
 *    old extension returned false and left the message to mysql_error(), so reporting is off;
 *  - mysql_query() returns a result for statements with a result set, true for the others,
 *    false on any error (only one statement per call, as before: no multi-statements);
 *  - rows come from the text protocol, so every value is a string and SQL NULL is null;
 *  - giving a fetch function something that is not a result (mysql_query's false after an SQL
 *    error) raised "expects parameter 1 to be resource, boolean given" (E_WARNING) and returned
 *    NULL in PHP 5; here it logs an E_USER_WARNING with that text and returns null, never a
 *    TypeError, so `empty($row)` sees the same null the legacy saw.
 *
 * Written for this repository from the PHP 5 manual's description of ext/mysql; no code of
 * another shim is copied.
 */

if (!function_exists('mysql_connect')) {
    mysqli_report(MYSQLI_REPORT_OFF);

    /** The last link opened, used when a function is called without one (as ext/mysql did). */
    $GLOBALS['__mysql_shim_last_link'] = null;

    function __mysql_shim_link($link)
    {
        if ($link === null) {
            $link = $GLOBALS['__mysql_shim_last_link'];
        }
        return ($link instanceof mysqli) ? $link : null;
    }

    function __mysql_shim_not_a_resource($function, $value)
    {
        trigger_error($function . '() expects parameter 1 to be resource, '
            . gettype($value) . ' given', E_USER_WARNING);
        return null;
    }

    function mysql_connect($server = null, $username = null, $password = null, $new_link = false, $client_flags = 0)
    {
        $host = $server === null ? ini_get('mysqli.default_host') : $server;
        $port = null;
        $socket = null;
        // ext/mysql accepted "host:port" and "host:/path/to/socket" in one string.
        if (is_string($host) && strpos($host, ':') !== false && substr_count($host, ':') === 1) {
            [$host, $rest] = explode(':', $host, 2);
            if ($rest !== '' && $rest[0] === '/') {
                $socket = $rest;
            } else {
                $port = (int) $rest;
            }
        }
        $link = mysqli_init();
        if ($link === false) {
            return false;
        }
        if (!@mysqli_real_connect($link, $host, $username, $password, null, $port, $socket, $client_flags)) {
            trigger_error('mysql_connect(): ' . mysqli_connect_error(), E_USER_WARNING);
            return false;
        }
        $GLOBALS['__mysql_shim_last_link'] = $link;
        return $link;
    }

    function mysql_pconnect($server = null, $username = null, $password = null, $client_flags = 0)
    {
        return mysql_connect($server, $username, $password, false, $client_flags);
    }

    function mysql_select_db($database_name, $link = null)
    {
        $link = __mysql_shim_link($link);
        return $link !== null && @mysqli_select_db($link, $database_name);
    }

    function mysql_query($query, $link = null)
    {
        $link = __mysql_shim_link($link);
        if ($link === null) {
            return false;
        }
        $result = @mysqli_query($link, $query);
        return $result;
    }

    function mysql_fetch_assoc($result)
    {
        if (!($result instanceof mysqli_result)) {
            return __mysql_shim_not_a_resource('mysql_fetch_assoc', $result);
        }
        $row = mysqli_fetch_assoc($result);
        // ext/mysql returned false at the end of the result; mysqli returns null.
        return $row === null ? false : $row;
    }

    function mysql_fetch_row($result)
    {
        if (!($result instanceof mysqli_result)) {
            return __mysql_shim_not_a_resource('mysql_fetch_row', $result);
        }
        $row = mysqli_fetch_row($result);
        return $row === null ? false : $row;
    }

    function mysql_fetch_array($result, $result_type = MYSQLI_BOTH)
    {
        if (!($result instanceof mysqli_result)) {
            return __mysql_shim_not_a_resource('mysql_fetch_array', $result);
        }
        $row = mysqli_fetch_array($result, $result_type);
        return $row === null ? false : $row;
    }

    function mysql_num_rows($result)
    {
        if (!($result instanceof mysqli_result)) {
            return __mysql_shim_not_a_resource('mysql_num_rows', $result);
        }
        return mysqli_num_rows($result);
    }

    function mysql_free_result($result)
    {
        if (!($result instanceof mysqli_result)) {
            return __mysql_shim_not_a_resource('mysql_free_result', $result);
        }
        mysqli_free_result($result);
        return true;
    }

    function mysql_affected_rows($link = null)
    {
        $link = __mysql_shim_link($link);
        return $link === null ? false : mysqli_affected_rows($link);
    }

    function mysql_insert_id($link = null)
    {
        $link = __mysql_shim_link($link);
        return $link === null ? false : mysqli_insert_id($link);
    }

    function mysql_error($link = null)
    {
        $link = __mysql_shim_link($link);
        return $link === null ? mysqli_connect_error() ?? '' : mysqli_error($link);
    }

    function mysql_errno($link = null)
    {
        $link = __mysql_shim_link($link);
        return $link === null ? mysqli_connect_errno() : mysqli_errno($link);
    }

    function mysql_real_escape_string($unescaped_string, $link = null)
    {
        $link = __mysql_shim_link($link);
        return $link === null ? false : mysqli_real_escape_string($link, $unescaped_string);
    }

    function mysql_set_charset($charset, $link = null)
    {
        $link = __mysql_shim_link($link);
        return $link !== null && mysqli_set_charset($link, $charset);
    }

    function mysql_close($link = null)
    {
        $link = __mysql_shim_link($link);
        if ($link === null) {
            return false;
        }
        if ($GLOBALS['__mysql_shim_last_link'] === $link) {
            $GLOBALS['__mysql_shim_last_link'] = null;
        }
        return mysqli_close($link);
    }
}
