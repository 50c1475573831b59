//! The client's pure rules, then whole downloads against an in-process
//! server on a loopback port chosen by the system.

use std::path::Path;

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use super::*;
use crate::baseline::serve::{ServeOptions, Server, Summary};

fn name_of(url: &str) -> Result<String, FetchError> {
    file_name(&Url::parse(url).unwrap())
}

#[test]
fn the_file_name_is_the_last_segment_decoded_once() {
    assert_eq!(name_of("http://h/a/seed.bin").unwrap(), "seed.bin");
    assert_eq!(name_of("http://h/a%20b.bin?x=1").unwrap(), "a b.bin");
    assert_eq!(name_of("http://h/%252e%252e").unwrap(), "%2e%2e");
    for bad in [
        "http://h/",
        "http://h",
        "http://h/dir/",
        "http://h/..%2fx",
        "http://h/a%2Fb",
        "http://h/a%5cb",
        "http://h/%00",
        "http://h/x/..",
        "http://h/%2e%2e",
        "http://h/%ff",
    ] {
        assert!(name_of(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_resumed_answer_is_used_only_if_it_continues_the_same_file() {
    let saved = PartMeta {
        etag: Some("\"a\"".into()),
        length: Some(100),
    };
    let range = |start, total| {
        Some(http_range::ContentRange {
            start,
            end: 99,
            total,
        })
    };
    let partial = StatusCode::PARTIAL_CONTENT;
    let tag = Some("\"a\"");
    assert_eq!(
        decide(partial, range(40, Some(100)), tag, 40, &saved),
        Plan::WriteFrom(40)
    );
    assert_eq!(
        decide(partial, range(40, None), tag, 40, &saved),
        Plan::WriteFrom(40)
    );
    assert_eq!(
        decide(
            partial,
            range(40, Some(100)),
            None,
            40,
            &PartMeta::default()
        ),
        Plan::WriteFrom(40)
    );
    assert_eq!(
        decide(partial, range(0, Some(100)), tag, 40, &saved),
        Plan::AskAgain
    );
    assert_eq!(
        decide(partial, range(40, Some(200)), tag, 40, &saved),
        Plan::AskAgain
    );
    assert_eq!(
        decide(partial, range(40, Some(100)), Some("\"b\""), 40, &saved),
        Plan::AskAgain
    );
    assert_eq!(
        decide(partial, range(40, Some(100)), None, 40, &saved),
        Plan::AskAgain
    );
    assert_eq!(decide(partial, None, tag, 40, &saved), Plan::AskAgain);
    assert_eq!(
        decide(partial, range(0, Some(100)), tag, 0, &saved),
        Plan::AskAgain
    );
    assert_eq!(
        decide(StatusCode::OK, None, tag, 40, &saved),
        Plan::WriteFrom(0)
    );
    assert_eq!(
        decide(StatusCode::RANGE_NOT_SATISFIABLE, None, tag, 40, &saved),
        Plan::AskAgain
    );
    assert_eq!(
        decide(StatusCode::NO_CONTENT, None, None, 0, &saved),
        Plan::AskAgain
    );
}

struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: Option<u64>, _: u64) {}
    fn advance(&self, _: u64) {}
}

struct Running {
    url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Summary>,
}

async fn serve(root: &Path, rate: Option<u64>) -> Running {
    let server = Server::new(ServeOptions {
        root: root.to_owned(),
        list: false,
        rate,
        max_connections: 8,
    })
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server.run(listener, async {
        let _ = stopped.await;
    }));
    Running { url, stop, task }
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn options(url: String, output: &Path, resume: bool) -> FetchOptions {
    FetchOptions {
        url,
        output: output.to_owned(),
        resume,
        rate: None,
        stall_timeout: super::STALL_TIMEOUT,
    }
}

#[tokio::test]
async fn a_download_lands_whole_under_its_name_and_the_server_counts_it() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let bytes = data(3 << 20);
    std::fs::write(root.path().join("f.bin"), &bytes).unwrap();
    let server = serve(root.path(), None).await;

    let report = fetch(
        &options(format!("{}f.bin", server.url), out.path(), false),
        &Quiet,
    )
    .await
    .unwrap();
    assert_eq!(report.bytes, bytes.len() as u64);
    assert_eq!(report.resumed_from, 0);
    assert_eq!(std::fs::read(out.path().join("f.bin")).unwrap(), bytes);
    assert!(!out.path().join(".f.bin.part").exists());
    assert!(!out.path().join(".f.bin.part.meta").exists());

    let missing = fetch(
        &options(format!("{}nope.bin", server.url), out.path(), false),
        &Quiet,
    )
    .await;
    assert!(
        matches!(
            missing,
            Err(FetchError::Status {
                status: StatusCode::NOT_FOUND,
                ..
            })
        ),
        "{missing:?}"
    );

    server.stop.send(()).unwrap();
    let summary = server.task.await.unwrap();
    assert_eq!(summary.bytes_sent, bytes.len() as u64);
    assert_eq!(summary.transfers, 1);
}

#[tokio::test]
async fn resume_continues_a_matching_part_and_restarts_a_foreign_one() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let bytes = data(1 << 20);
    std::fs::write(root.path().join("f.bin"), &bytes).unwrap();
    let server = serve(root.path(), None).await;
    let url = format!("{}f.bin", server.url);
    let paths = PartPaths::new(out.path(), "f.bin");

    // A part without a sidecar: continued from where it ends.
    std::fs::write(&paths.part, &bytes[..300_000]).unwrap();
    let report = fetch(&options(url.clone(), out.path(), true), &Quiet)
        .await
        .unwrap();
    assert_eq!(
        (report.resumed_from, report.bytes),
        (300_000, bytes.len() as u64 - 300_000)
    );
    assert_eq!(std::fs::read(&paths.done).unwrap(), bytes);

    // A part saved under another ETag: the server answers 200 and it starts over.
    std::fs::write(&paths.part, vec![0xee; 300_000]).unwrap();
    let foreign = PartMeta {
        etag: Some("\"stale\"".into()),
        length: Some(bytes.len() as u64),
    };
    part::write_meta(&paths.meta, &foreign).unwrap();
    let report = fetch(&options(url.clone(), out.path(), true), &Quiet)
        .await
        .unwrap();
    assert_eq!((report.resumed_from, report.bytes), (0, bytes.len() as u64));
    assert_eq!(std::fs::read(&paths.done).unwrap(), bytes);

    // A part longer than the file: 416, then a fresh request.
    std::fs::write(&paths.part, vec![0; bytes.len() + 10]).unwrap();
    let report = fetch(&options(url.clone(), out.path(), true), &Quiet)
        .await
        .unwrap();
    assert_eq!(report.resumed_from, 0);
    assert_eq!(std::fs::read(&paths.done).unwrap(), bytes);

    // Without --resume a part is overwritten.
    std::fs::write(&paths.part, &bytes[..1000]).unwrap();
    let report = fetch(&options(url, out.path(), false), &Quiet)
        .await
        .unwrap();
    assert_eq!(report.bytes, bytes.len() as u64);
    assert_eq!(std::fs::read(&paths.done).unwrap(), bytes);

    server.stop.send(()).unwrap();
    server.task.await.unwrap();
}

#[tokio::test]
async fn unsupported_urls_fail_before_any_connection() {
    let out = tempfile::tempdir().unwrap();
    for url in [
        "https://127.0.0.1/x",
        "ftp://h/x",
        "not a url",
        "http://127.0.0.1/",
    ] {
        let result = fetch(&options(url.into(), out.path(), false), &Quiet).await;
        assert!(
            matches!(result, Err(FetchError::BadUrl(_))),
            "{url}: {result:?}"
        );
    }
}
