//! `litestream.yml` from the outside: where it is looked for, what is wrong with it, and which
//! log format applies once it is read (spec 10.1, 13.1).

use crate::support::cli::TestEnv;

#[test]
fn missing_config_names_absolute_path() {
    let env = TestEnv::new();
    let out = env.run(&["databases", "-config", "nope.yml"]);
    assert_eq!(out.code, Some(1));
    let path = env.join("nope.yml");
    assert_eq!(
        out.stderr,
        format!(
            "TIME ERROR failed to run error=\"config file not found: {}\"\n",
            path.display()
        )
    );
}

#[test]
fn config_path_comes_from_env_and_home_is_expanded() {
    let env = TestEnv::new();
    env.write("conf/ls.yml", "dbs:\n  - path: ~/app.db\n");
    let want = format!(
        "path{}replicas\n{}  \n",
        " ".repeat(env.join("app.db").display().to_string().len() - 2),
        env.join("app.db").display()
    );
    let out = env.run_with_env(&["databases"], &[("LITESTREAM_CONFIG", "~/conf/ls.yml")]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), want.as_str()),
        "{}",
        out.stderr
    );
    let out = env.run(&["databases", "-config", "~/conf/ls.yml"]);
    assert_eq!(out.stdout, want);
}

#[test]
fn broken_yaml_is_one_line_naming_file_and_line() {
    let env = TestEnv::new();
    let path = env.write("ls.yml", "dbs:\n  - path: /a\n   replicas: [\n");
    let out = env.run(&["databases", "-config", "ls.yml"]);
    assert_eq!(out.code, Some(1));
    let prefix = format!(
        "TIME ERROR failed to run error=\"cannot load config {}: ",
        path.display()
    );
    assert!(out.stderr.starts_with(&prefix), "{}", out.stderr);
    assert!(out.stderr.contains("line 3"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn day_duration_names_key() {
    let env = TestEnv::new();
    let path = env.write(
        "ls.yml",
        "dbs:\n  - path: /a\n    replicas:\n      - path: /b\n        retention: 1d\n",
    );
    let out = env.run(&["databases", "-config", "ls.yml"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        format!(
            "TIME ERROR failed to run error=\"cannot load config {}: dbs[0].replicas[0].retention: invalid duration \\\"1d\\\": unknown unit \\\"d\\\"\"\n",
            path.display()
        )
    );
}

#[test]
fn env_expansion_is_applied_unless_disabled() {
    let env = TestEnv::new();
    env.write("ls.yml", "dbs:\n  - path: /data/${DB_NAME}.db\n    replicas:\n      - name: $REPLICA\n        path: /b\n");
    let vars = [("DB_NAME", "app"), ("REPLICA", "offsite")];
    let out = env.run_with_env(&["databases", "-config", "ls.yml"], &vars);
    assert_eq!(
        out.stdout,
        "path          replicas\n/data/app.db  offsite\n"
    );
    let out = env.run_with_env(&["databases", "-config", "ls.yml", "-no-expand-env"], &vars);
    assert_eq!(
        out.stdout,
        "path                 replicas\n/data/${DB_NAME}.db  $REPLICA\n"
    );
}

#[test]
fn config_errors_after_loading_use_text_log_on_stdout() {
    let env = TestEnv::new();
    env.write("ls.yml", "dbs:\n  - path: /data/app.db\n");
    let out = env.run(&["snapshots", "-config", "ls.yml", "/data/other.db"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr, "");
    assert_eq!(
        out.stdout,
        "time=TIME level=ERROR msg=\"failed to run\" error=\"database not found in config: /data/other.db\"\n"
    );
}

#[test]
fn logging_section_selects_json_on_stderr() {
    let env = TestEnv::new();
    env.write(
        "ls.yml",
        "logging:\n  type: json\n  stderr: true\ndbs:\n  - path: /data/app.db\n",
    );
    let out = env.run(&["wal", "-config", "ls.yml", "/data/other.db"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.ends_with(",\"level\":\"ERROR\",\"msg\":\"failed to run\",\"error\":\"database not found in config: /data/other.db\"}\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.starts_with("{\"time\":\""), "{}", out.stderr);
}

#[test]
fn unknown_replica_filter_names_replica_and_database() {
    let env = TestEnv::new();
    env.write(
        "ls.yml",
        "dbs:\n  - path: /data/app.db\n    replicas:\n      - path: /b\n",
    );
    let out = env.run(&[
        "snapshots",
        "-config",
        "ls.yml",
        "-replica",
        "zz",
        "/data/app.db",
    ]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stdout,
        "time=TIME level=ERROR msg=\"failed to run\" error=\"replica \\\"zz\\\" not found for database \\\"/data/app.db\\\"\"\n"
    );
}

#[test]
fn replica_url_with_config_flag_is_refused() {
    let env = TestEnv::new();
    let out = env.run(&["generations", "-config", "x.yml", "file:///backup"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        "TIME ERROR failed to run error=\"cannot specify a replica URL and the -config flag\"\n"
    );
}

#[test]
fn unknown_url_scheme_is_an_error() {
    let env = TestEnv::new();
    let out = env.run(&["snapshots", "foo://bar/db"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "TIME ERROR failed to run error=\"unknown replica type in config: \\\"foo\\\"\"\n"
    );
}

#[test]
fn conflicting_replica_fields_name_the_key() {
    let env = TestEnv::new();
    let path = env.write(
        "ls.yml",
        "dbs:\n  - path: /data/app.db\n    replicas:\n      - url: file:///a\n        path: /b\n",
    );
    let out = env.run(&["databases", "-config", "ls.yml"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stdout.ends_with(&format!(
            "error=\"replica dbs[0].replicas[0] in {}: cannot specify url & path for file replica\"\n",
            path.display()
        )),
        "{}",
        out.stdout
    );
}
