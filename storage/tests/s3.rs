//! The object storage path against a real S3-compatible server: moto's server (PyPI
//! `moto[server]`), started on a free port for each test. Conditional creates, multipart
//! uploads, listings and deletions are checked on what the server holds.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_storage::{configure_s3, Location, S3Options, StorageError};

/// A moto S3 server with bucket `sluice`, killed when dropped.
struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (pip install 'moto[server]'; scripts/bootstrap.sh installs it)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let created = Command::new("curl").args(["-sf", "-X", "PUT", &format!("{endpoint}/sluice")]).status().unwrap();
        assert!(created.success(), "the bucket was created");
        Server { child, endpoint }
    }

    /// Configures this process's S3 settings for the server.
    fn configure(&self) {
        configure_s3(S3Options {
            endpoint: Some(self.endpoint.clone()),
            access_key: Some("test-access".into()),
            secret_key: Some("test-secret".into()),
            region: Some("us-east-1".into()),
            path_style_access: Some(true),
        });
    }

    /// The keys under `prefix`, as the server lists them (an unsigned ListObjectsV2).
    fn keys(&self, prefix: &str) -> Vec<String> {
        let url = format!("{}/sluice?list-type=2&prefix={prefix}", self.endpoint);
        let out = Command::new("curl").args(["-sf", &url]).output().unwrap();
        let xml = String::from_utf8_lossy(&out.stdout).to_string();
        let mut keys: Vec<String> =
            xml.split("<Key>").skip(1).filter_map(|s| s.split("</Key>").next()).map(str::to_string).collect();
        keys.sort();
        keys
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test: the S3 settings are process-wide.
#[test]
fn objects_are_created_once_uploaded_in_parts_listed_and_deleted() {
    let server = Server::start();
    server.configure();
    let root = Location::parse("s3://sluice/checkpoints/job-1").unwrap();

    // A completed checkpoint's metadata is never overwritten, by anyone.
    let metadata = root.join("chk-1/_metadata");
    metadata.put_new(b"written by jobmanager A".to_vec()).unwrap();
    let refused = metadata.put_new(b"written by a stale jobmanager B".to_vec()).unwrap_err();
    assert!(matches!(refused, StorageError::AlreadyExists { .. }), "{refused}");
    assert!(refused.to_string().contains("s3://sluice/checkpoints/job-1/chk-1/_metadata"), "{refused}");
    assert_eq!(metadata.read().unwrap(), b"written by jobmanager A");

    // A file larger than one part goes up as a multipart upload and comes back identical.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("000012.sst");
    let content: Vec<u8> = (0..20_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&source, &content).unwrap();
    let stored = root.join("shared/a-000012.sst");
    let (size, checksum) = stored.put_file(&source).unwrap();
    assert_eq!((size, checksum), (content.len() as u64, xxhash_rust::xxh3::xxh3_64(&content)));
    assert_eq!(stored.size().unwrap(), Some(content.len() as u64));
    let fetched = dir.path().join("restore/000012.sst");
    assert_eq!(stored.fetch(&fetched, true).unwrap(), (size, checksum));
    assert!(std::fs::read(&fetched).unwrap() == content, "the downloaded file equals the uploaded one");

    // Small files, replaced in place; listings show directories and files.
    root.join("_coordinator").put(b"jm-a".to_vec()).unwrap();
    root.join("_coordinator").put(b"jm-b".to_vec()).unwrap();
    assert_eq!(root.join("_coordinator").read().unwrap(), b"jm-b");
    root.join("chk-1/3-agg/MANIFEST-000005").put(b"m".to_vec()).unwrap();
    root.join("chk-2/3-agg/MANIFEST-000007").put(b"m".to_vec()).unwrap();
    assert_eq!(root.children().unwrap(), ["_coordinator", "chk-1", "chk-2", "shared"]);
    assert_eq!(root.join("chk-1").children().unwrap(), ["3-agg", "_metadata"]);
    assert_eq!(root.join("shared/nothing.sst").size().unwrap(), None);
    assert!(matches!(root.join("shared/nothing.sst").read(), Err(StorageError::NotFound { .. })));

    // Names come back as they were given, whatever object_store encodes in the key, and
    // every file below a location is listed.
    let table = Location::parse("s3://sluice/tables/t").unwrap();
    table.join("hm=00%3A00/.part-1.inprogress").put(b"p".to_vec()).unwrap();
    table.join("hm=00%3A00/part-0").put(b"p".to_vec()).unwrap();
    table.join("hm=01%3A00/part-0").put(b"q".to_vec()).unwrap();
    let files = table.files().unwrap();
    assert_eq!(files, ["hm=00%3A00/.part-1.inprogress", "hm=00%3A00/part-0", "hm=01%3A00/part-0"]);
    assert_eq!(table.children().unwrap(), ["hm=00%3A00", "hm=01%3A00"]);
    assert_eq!(table.join(&files[2]).read().unwrap(), b"q");
    let written = table.join("hm=00%3A00/part-0").to_string();
    assert_eq!(written, "s3://sluice/tables/t/hm=00%3A00/part-0");
    assert_eq!(Location::parse(&written).unwrap().read().unwrap(), b"p", "a location's text names it again");
    table.join(&files[0]).copy_to(&table.join("hm=00%3A00/part-1")).unwrap();
    assert_eq!(table.join("hm=00%3A00/part-1").read().unwrap(), b"p");
    table.delete_all().unwrap();

    // Deleting a checkpoint removes its prefix and nothing else.
    root.join("chk-1").delete_all().unwrap();
    stored.delete().unwrap();
    stored.delete().unwrap();
    assert_eq!(
        server.keys("checkpoints/"),
        ["checkpoints/job-1/_coordinator", "checkpoints/job-1/chk-2/3-agg/MANIFEST-000007"]
    );
}
