//! Hostile and odd environments at the front doors (issue 15, item 12): out-of-range numbers,
//! a tiny open-file limit, a reader that leaves, a huge bad line, an endless input, colour
//! where nobody reads it.

use netvantage_testkit::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

/// `bash -c SCRIPT` in a scratch directory of its own, where `$NV` is the netvantage binary.
fn shell(script: &str) -> Run {
    let dir = Scratch::new();
    TestCommand::new("bash")
        .args(["-c", script])
        .current_dir(dir.path())
        .env("NV", binary("netvantage", "netvantage"))
        .timeout(LIMIT)
        .run()
}

#[test]
fn an_out_of_range_rate_is_a_usage_error_said_in_short() {
    let run = nv()
        .args(["ports", "80", "--rounds", "1", "--rate", "1e-300"])
        .stdin("127.0.0.1\n")
        .timeout(LIMIT)
        .run();
    run.assert_code(3);
    assert!(run.stderr.contains("not 1e-300"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(run.stderr.len() < 300, "{}", run.stderr);
}

#[test]
fn a_tiny_open_file_limit_is_a_clear_error_not_a_panic() {
    for args in [vec!["ports", "80", "--rounds", "1"], vec!["http", "x.yaml"]] {
        let run = nv()
            .wrap(["prlimit", "--nofile=8:8", "--"])
            .args(&args)
            .stdin("127.0.0.1\n")
            .timeout(LIMIT)
            .run();
        run.assert_code(3);
        assert!(
            run.stderr.contains("open-file limit is 8") && run.stderr.contains("ulimit -n"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

/// `http` runs until stopped; a reader that leaves (`| head -1`) must stop it, quietly, 0.
#[test]
fn http_and_ports_watch_end_quietly_with_0_when_the_reader_leaves() {
    let dir = Scratch::new();
    let server = TestServer::start(&[("/", vec![reply(200, 0)])]);
    let config = dir.write(
        "one.yaml",
        format!("- name: one\n  url: http://127.0.0.1:{}/\n", server.port()),
    );
    let hosts: String = (1..=50).map(|i| format!("127.0.0.{i}\n")).collect();
    let hosts_file = dir.write("hosts.txt", hosts);
    let closed = free_port();
    for command in [
        format!("\"$NV\" http -f 100ms '{}'", config.display()),
        format!(
            "\"$NV\" ports {closed} --watch --interval 100ms --timeout 50ms --input '{}'",
            hosts_file.display()
        ),
    ] {
        let run = shell(&format!(
            "{command} 2>stderr.txt | head -n 1; echo \"exit=${{PIPESTATUS[0]}}\"; cat stderr.txt >&2"
        ));
        assert!(
            run.stdout.ends_with("exit=0\n"),
            "{command}: {}\n{}",
            run.stdout,
            run.stderr
        );
        assert_eq!(run.stdout.lines().count(), 2, "{}", run.stdout);
        assert!(
            !run.stderr.to_lowercase().contains("broken pipe"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_megabyte_bad_line_is_quoted_in_part_and_an_endless_input_is_refused() {
    let huge = format!(
        "ok.example\nh:{}\n[{}]\n",
        "9".repeat(1 << 20),
        "z".repeat(1 << 20)
    );
    let run = nv()
        .args(["ports", "80", "--rounds", "1", "--timeout", "100ms"])
        .args(["--resolve", "ok.example:127.0.0.1"])
        .stdin(huge)
        .timeout(LIMIT)
        .run();
    assert!(
        run.stderr.contains("stdin:2:"),
        "{}",
        &run.stderr[..run.stderr.len().min(500)]
    );
    assert!(
        run.stderr.contains("(1048576 bytes)"),
        "{}",
        &run.stderr[..run.stderr.len().min(500)]
    );
    assert!(
        run.stderr.len() < 2000,
        "{} bytes on stderr",
        run.stderr.len()
    );

    let run = nv()
        .args(["ports", "80", "--input", "/dev/zero"])
        .timeout(LIMIT)
        .run();
    run.assert_code(3);
    assert!(
        run.stderr.contains("/dev/zero: more than 64 MiB"),
        "{}",
        run.stderr
    );
}

/// Colour codes belong on a terminal only: never in a pipe or a log file, and never with
/// NO_COLOR, terminal or not (`script` gives the run a terminal).
#[test]
fn logs_are_coloured_only_on_a_terminal_and_never_with_no_color() {
    let closed = free_port();
    // No progress bar: it draws on a terminal (with cursor codes) whatever NO_COLOR says.
    let args = format!("ports {closed} --rounds 1 --timeout 100ms -v --progress never");
    let piped = shell(&format!("echo 127.0.0.1 | \"$NV\" {args} 2>&1; true"));
    assert!(
        piped.stdout.contains("INFO") || piped.stdout.contains("DEBUG"),
        "{}",
        piped.stdout
    );
    assert!(!piped.stdout.contains('\x1b'), "{:?}", piped.stdout);
    let tty = |no_color: &str| {
        shell(&format!(
            "echo 127.0.0.1 > in.txt; {no_color} script -qec '\"$NV\" {args} --input in.txt' /dev/null; true"
        ))
    };
    let coloured = tty("");
    assert!(
        coloured.stdout.contains('\x1b'),
        "a terminal gets colour: {:?}",
        coloured.stdout
    );
    let plain = tty("NO_COLOR=1");
    assert!(plain.stdout.contains("INFO"), "{:?}", plain.stdout);
    assert!(!plain.stdout.contains('\x1b'), "{:?}", plain.stdout);
}
