//! Replica URLs as Litestream 0.3.13 reads them (spec 10.4, 11.2): which strings are URLs, what
//! each scheme maps to, the errors, that no password is ever printed, and opening a replica.

use std::fs;
use std::path::PathBuf;

use ls_backends::{ReplicaUrl, ReplicaUrlError, is_url, open_url, redact_url};
use ls_core::ClientError;

fn parse(url: &str) -> ReplicaUrl {
    ReplicaUrl::parse(url).unwrap_or_else(|err| panic!("{url}: {err}"))
}

fn file_path(url: &str) -> PathBuf {
    match parse(url) {
        ReplicaUrl::File { path } => path,
        other => panic!("{url}: want a file url, got {other:?}"),
    }
}

#[test]
fn is_url_matches_word_chars_then_scheme_separator() {
    for url in [
        "file:///x",
        "s3://b",
        "ftp://x",
        "foo_bar://x",
        "1a://x",
        "S3://b",
    ] {
        assert!(is_url(url), "{url}");
    }
    for path in [
        "/tmp/x",
        "file:/tmp/x",
        "a-b://x",
        "://x",
        "",
        "db.sqlite",
        "./s3://x",
    ] {
        assert!(!is_url(path), "{path}");
    }
}

#[test]
fn file_url_path_is_cleaned_as_litestream_does() {
    // Each case checked against the real 0.3.13 (`litestream generations URL`).
    for (url, want) in [
        ("file:///backup/app", "/backup/app"),
        ("file:///tmp/lt//x/", "/tmp/lt/x"),
        ("file:///tmp/lt/../lt/x", "/tmp/lt/x"),
        ("file://tmp/lt/x", "/tmp/lt/x"),
        ("file://h/tmp/lt/x", "/h/tmp/lt/x"),
        ("file:///tmp/lt/x?foo", "/tmp/lt/x?foo"),
        ("file:///tmp/lt/x?", "/tmp/lt/x?"),
        ("file:///tmp/lt/x#frag", "/tmp/lt/x#frag"),
        ("file:///tmp/lt/a%20b", "/tmp/lt/a%20b"),
        ("FILE:///tmp/x", "/tmp/x"),
        ("file://", "."),
        ("file:///", "/"),
    ] {
        assert_eq!(file_path(url), PathBuf::from(want), "{url}");
    }
}

#[test]
fn s3_url_maps_host_forms() {
    assert_eq!(
        parse("s3://foo.localhost:9000/bar"),
        ReplicaUrl::S3 {
            bucket: "foo".to_owned(),
            path: "bar".to_owned(),
            region: Some("us-east-1".to_owned()),
            endpoint: Some("http://localhost:9000".to_owned()),
            force_path_style: true,
        }
    );
    assert_eq!(
        parse("s3://foo.s3.us-west-000.backblazeb2.com/bar"),
        ReplicaUrl::S3 {
            bucket: "foo".to_owned(),
            path: "bar".to_owned(),
            region: Some("us-west-000".to_owned()),
            endpoint: Some("https://s3.us-west-000.backblazeb2.com".to_owned()),
            force_path_style: true,
        }
    );
    assert_eq!(
        parse("s3://mybkt/db?endpoint=http://x"),
        ReplicaUrl::S3 {
            bucket: "mybkt".to_owned(),
            path: "db".to_owned(),
            region: None,
            endpoint: None,
            force_path_style: false,
        }
    );
}

#[test]
fn object_store_paths_are_cleaned_without_leading_slash() {
    for (url, want) in [
        ("s3://bkt", ""),
        ("s3://bkt/", ""),
        ("s3://bkt//a/./b/../c/", "a/c"),
        ("s3://bkt/a%20b", "a b"),
        ("gcs://bkt/db", "db"),
        ("abs://acct@container/x/y", "x/y"),
    ] {
        let path = match parse(url) {
            ReplicaUrl::S3 { path, .. }
            | ReplicaUrl::Gcs { path, .. }
            | ReplicaUrl::Abs { path, .. } => path,
            other => panic!("{url}: {other:?}"),
        };
        assert_eq!(path, want, "{url}");
    }
}

#[test]
fn gcs_and_abs_urls_map_host_and_user() {
    assert_eq!(
        parse("gcs://bkt/db"),
        ReplicaUrl::Gcs {
            bucket: "bkt".to_owned(),
            path: "db".to_owned(),
        }
    );
    assert_eq!(
        parse("abs://acct@container/db"),
        ReplicaUrl::Abs {
            account: Some("acct".to_owned()),
            container: "container".to_owned(),
            path: "db".to_owned(),
        }
    );
    assert_eq!(
        parse("abs://container/db"),
        ReplicaUrl::Abs {
            account: None,
            container: "container".to_owned(),
            path: "db".to_owned(),
        }
    );
}

#[test]
fn sftp_url_keeps_path_as_is_and_decodes_user_info() {
    let ReplicaUrl::Sftp {
        host,
        user,
        password,
        path,
    } = parse("sftp://me:p%40ss@example.com:2222/backups//app/")
    else {
        panic!("want an sftp url");
    };
    assert_eq!(host, "example.com:2222");
    assert_eq!(user.as_deref(), Some("me"));
    assert_eq!(password.as_ref().map(|p| p.expose()), Some("p@ss"));
    assert_eq!(path, "/backups//app/");

    let ReplicaUrl::Sftp { user, password, .. } = parse("sftp://host/x") else {
        panic!("want an sftp url");
    };
    assert_eq!((user, password), (None, None));
}

#[test]
fn sftp_password_never_printed() {
    let url = "sftp://me:hunter2@example.com/x";
    let parsed = parse(url);
    assert!(!format!("{parsed:?}").contains("hunter2"));
    assert_eq!(redact_url(url), "sftp://me:xxxxx@example.com/x");
    for bad in [
        "sftp://me:hunter2@example.com:xx/x",
        "sftp://me:hunter2@/x",
        "sftp://me:hunter2@example.com/%zz",
    ] {
        let err = ReplicaUrl::parse(bad).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        assert!(err.to_string().contains("me:xxxxx@"), "{err}");
    }
    let err = open_url(url).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[test]
fn unknown_scheme_is_an_error_naming_the_url() {
    let err = ReplicaUrl::parse("ftp://u:pw@x/y").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown replica type in url: ftp://u:xxxxx@x/y"
    );
    assert!(matches!(err, ReplicaUrlError::UnknownType { scheme, .. } if scheme == "ftp"));
    // Go's parser calls the scheme a path segment when it holds `_` or starts with a digit.
    let err = ReplicaUrl::parse("foo_bar://x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid replica url foo_bar://x: first path segment in URL cannot contain colon"
    );
}

#[test]
fn malformed_urls_are_errors_naming_the_url() {
    for (url, want) in [
        (
            "s3://b:abc/x",
            "invalid replica url s3://b:abc/x: invalid port \":abc\" after host",
        ),
        (
            "s3://bkt/%zz",
            "invalid replica url s3://bkt/%zz: invalid URL escape \"%zz\"",
        ),
        ("/tmp/x", "invalid replica url /tmp/x: want <type>://..."),
        (
            "s3://bkt/a\nb",
            "invalid replica url s3://bkt/a\nb: invalid control character in url",
        ),
        ("s3:///x", "bucket required for s3 replica: s3:///x"),
        (
            "s3://localhost:9000/x",
            "bucket required for s3 replica: s3://localhost:9000/x",
        ),
        ("gcs:///x", "bucket required for gcs replica: gcs:///x"),
        (
            "abs://acct@/x",
            "bucket required for abs replica: abs://acct@/x",
        ),
        ("sftp:///x", "host required for sftp replica: sftp:///x"),
    ] {
        let err = ReplicaUrl::parse(url).unwrap_err();
        assert_eq!(err.to_string(), want, "{url:?}");
    }
}

#[test]
fn kind_names_the_replica_type() {
    for (url, kind) in [
        ("file:///x", "file"),
        ("S3://b/x", "s3"),
        ("gcs://b/x", "gcs"),
        ("abs://c/x", "abs"),
        ("sftp://u@h/x", "sftp"),
    ] {
        assert_eq!(parse(url).kind(), kind, "{url}");
        assert_eq!(url.parse::<ReplicaUrl>().unwrap().kind(), kind, "{url}");
    }
}

#[tokio::test]
async fn open_url_file_lists_the_folder() {
    let temp = tempfile::tempdir().unwrap();
    let generation_dir = temp.path().join("replica/generations/0123456789abcdef");
    fs::create_dir_all(&generation_dir).unwrap();
    let client = open_url(&format!("file://{}", temp.path().join("replica").display())).unwrap();
    assert_eq!(client.kind(), "file");
    let names: Vec<String> = client
        .generations()
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(names, ["0123456789abcdef"]);

    let missing = temp.path().join("missing");
    let client = open_url(&format!("file://{}", missing.display())).unwrap();
    assert!(matches!(
        client.generations().await,
        Err(ClientError::NotFound { key }) if key == missing.display().to_string()
    ));
}

#[test]
fn open_url_cloud_types_are_not_supported_yet() {
    for (url, kind) in [
        ("s3://bkt/db", "s3"),
        ("gcs://bkt/db", "gcs"),
        ("abs://acct@c/db", "abs"),
        ("sftp://u:pw@h/db", "sftp"),
    ] {
        let err = open_url(url).unwrap_err();
        assert!(
            matches!(&err, ReplicaUrlError::Unsupported { kind: k, .. } if *k == kind),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "replica type \"{kind}\" is not supported yet: {}",
                redact_url(url)
            )
        );
    }
}
