//! Usage texts, unknown commands and flags, and `version`: Litestream 0.3.13's exact texts and
//! exit codes (spec 9.1, Appendix C).

use crate::support::cli::TestEnv;

const MAIN_USAGE: &str = "litestream is a tool for replicating SQLite databases.

Usage:

\tlitestream <command> [arguments]

The commands are:

\tdatabases    list databases specified in config file
\tgenerations  list available generations for a database
\treplicate    runs a server to replicate databases
\trestore      recovers database backup from a replica
\tsnapshots    list available snapshots for a database
\tversion      prints the binary version
\twal          list available WAL files for a database

";

const DATABASES_USAGE: &str = "The databases command lists all databases in the configuration file.

Usage:

\tlitestream databases [arguments]

Arguments:

\t-config PATH
\t    Specifies the configuration file.
\t    Defaults to /etc/litestream.yml

\t-no-expand-env
\t    Disables environment variable expansion in configuration file.

";

const GENERATIONS_USAGE_HEAD: &str =
    "The generations command lists all generations for a database or replica. It also
lists stats about their lag behind the primary database and the time range they
cover.

Usage:

\tlitestream generations [arguments] DB_PATH
\t
\tlitestream generations [arguments] REPLICA_URL
";

#[test]
fn main_usage_for_no_command_help_and_dash_exits_1() {
    let env = TestEnv::new();
    for args in [
        &[][..],
        &["help"],
        &["-h"],
        &["--help"],
        &["-x"],
        &["help", "databases"],
    ] {
        let out = env.run(args);
        assert_eq!(out.code, Some(1), "{args:?}");
        assert_eq!(out.stdout, MAIN_USAGE, "{args:?}");
        assert_eq!(out.stderr, "", "{args:?}");
    }
}

#[test]
fn command_help_prints_exact_usage_to_stdout_and_exits_1() {
    let env = TestEnv::new();
    for flag in ["-h", "-help", "--help", "--h"] {
        let out = env.run(&["databases", flag]);
        assert_eq!(out.code, Some(1));
        assert_eq!(out.stdout, DATABASES_USAGE);
        assert_eq!(out.stderr, "");
    }
    let out = env.run(&["generations", "-h"]);
    assert!(
        out.stdout.starts_with(GENERATIONS_USAGE_HEAD),
        "{}",
        out.stdout
    );
    let out = env.run(&["version", "-h"]);
    assert_eq!(
        out.stdout,
        "Prints the version.\n\nUsage:\n\n\tlitestream version\n\n"
    );
}

#[test]
fn command_help_names_litestream_config_env_as_default() {
    let env = TestEnv::new();
    let out = env.run_with_env(&["wal", "-h"], &[("LITESTREAM_CONFIG", "/x/y.yml")]);
    assert!(
        out.stdout.contains("\t    Defaults to /x/y.yml\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn every_command_help_ends_with_blank_line() {
    let env = TestEnv::new();
    for command in [
        "replicate",
        "restore",
        "generations",
        "snapshots",
        "wal",
        "databases",
        "version",
    ] {
        let out = env.run(&[command, "-h"]);
        assert_eq!(out.code, Some(1), "{command}");
        assert!(out.stdout.ends_with("\n\n"), "{command}: {:?}", out.stdout);
    }
    let restore = env.run(&["restore", "-h"]).stdout;
    assert!(restore.starts_with(
        "\nThe restore command recovers a database from a previous snapshot and WAL.\n"
    ));
    assert!(restore.contains("\t-parallelism NUM\n\t    Determines the number of WAL files downloaded in parallel.\n\t    Defaults to 8\n"));
    assert!(restore.contains("\t$ litestream restore -o /tmp/db /path/to/db\n"));
    let replicate = env.run(&["replicate", "-h"]).stdout;
    assert!(
        replicate.starts_with(
            "The replicate command starts a server to monitor & replicate databases. \n"
        )
    );
}

#[test]
fn unknown_command_fails_with_litestream_error() {
    let env = TestEnv::new();
    let out = env.run(&["foo"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "TIME ERROR failed to run error=\"litestream foo: unknown command\"\n"
    );
}

#[test]
fn unknown_flag_prints_go_flag_error_usage_and_exits_1() {
    let env = TestEnv::new();
    let out = env.run(&["databases", "-bogus"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stdout, DATABASES_USAGE);
    assert_eq!(
        out.stderr,
        "flag provided but not defined: -bogus\nTIME ERROR failed to run error=\"flag provided but not defined: -bogus\"\n"
    );
    let out = env.run(&["restore", "-v", "/db"]);
    assert!(
        out.stderr
            .starts_with("flag provided but not defined: -v\n"),
        "{}",
        out.stderr
    );
    let out = env.run(&["replicate", "-addr", ":9090"]);
    assert!(
        out.stderr
            .starts_with("flag provided but not defined: -addr\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn flag_errors_use_go_texts() {
    let env = TestEnv::new();
    let out = env.run(&["databases", "-config"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.starts_with("flag needs an argument: -config\n"),
        "{}",
        out.stderr
    );
    let out = env.run(&["databases", "-no-expand-env=maybe"]);
    assert!(
        out.stderr
            .starts_with("invalid boolean value \"maybe\" for -no-expand-env: parse error\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn version_prints_litestream_version_then_build() {
    let env = TestEnv::new();
    let out = env.run(&["version"]);
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""));
    // Line 1 is Litestream's, exactly; line 2 names this build (issue #7).
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some("v0.3.13"), "{}", out.stdout);
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    let build = lines[1]
        .strip_prefix(concat!(
            "litestream-rs ",
            env!("CARGO_PKG_VERSION"),
            " (commit "
        ))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected build line: {:?}", lines[1]));
    assert!(
        build == "unknown" || (build.len() >= 7 && build.chars().all(|c| c.is_ascii_hexdigit())),
        "{build}"
    );
    assert!(out.stdout.ends_with(")\n"));
    let out = env.run(&["version", "-x"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .starts_with("flag provided but not defined: -x\n")
    );
}

#[test]
fn positional_argument_counts_are_checked() {
    let env = TestEnv::new();
    let cases: &[(&[&str], &str)] = &[
        (&["databases", "x"], "too many arguments"),
        (&["generations"], "database path or replica URL required"),
        (&["generations", "a", "b"], "too many arguments"),
        (&["snapshots"], "database path required"),
        (&["wal"], "database path required"),
        (&["wal", "a", "b"], "too many arguments"),
    ];
    for (args, message) in cases {
        let out = env.run(args);
        assert_eq!(out.code, Some(1), "{args:?}");
        assert_eq!(
            out.stderr,
            format!("TIME ERROR failed to run error=\"{message}\"\n"),
            "{args:?}"
        );
    }
}
