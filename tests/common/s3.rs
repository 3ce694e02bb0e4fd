//! A real S3-compatible server for tests: moto's server (PyPI `moto[server]`) on a free
//! loopback port, with one bucket, reached by the cluster through its `SLUICE_S3_*`
//! settings and by the test through unsigned HTTP calls with curl.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, listening, Process};

/// A running S3 server with bucket `sluice`; stopped when dropped.
pub struct S3Server {
    process: Process,
    /// `http://HOST:PORT`.
    pub endpoint: String,
}

impl S3Server {
    /// Starts the server on loopback and creates the bucket.
    pub fn start() -> S3Server {
        S3Server::start_on("127.0.0.1")
    }

    /// Starts the server on `host` and creates the bucket.
    pub fn start_on(host: &str) -> S3Server {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", host, "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (pip install 'moto[server]'; scripts/bootstrap.sh installs it)");
        let server =
            S3Server { process: Process { child, name: "moto".into() }, endpoint: format!("http://{host}:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !listening(&format!("{host}:{port}")) {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let (code, body) = server.request("PUT", "/sluice");
        assert_eq!(code, 200, "bucket creation: {body}");
        server
    }

    /// The settings every cluster process needs to reach the server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SLUICE_S3_ENDPOINT", self.endpoint.clone()),
            ("SLUICE_S3_ACCESS_KEY", "sluice-test".into()),
            ("SLUICE_S3_SECRET_KEY", "sluice-test-secret".into()),
            ("SLUICE_S3_REGION", "us-east-1".into()),
        ]
    }

    fn request(&self, method: &str, path: &str) -> (u16, String) {
        let url = format!("{}{path}", self.endpoint);
        let out = Command::new("curl")
            .args(["-sS", "-X", method, "-o", "-", "-w", "\n%{http_code}", &url])
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        let body =
            if out.status.success() { body.to_string() } else { String::from_utf8_lossy(&out.stderr).to_string() };
        (code.trim().parse().unwrap_or(0), body)
    }

    /// Every key in the bucket under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = String::new();
        loop {
            let continuation = if token.is_empty() { String::new() } else { format!("&continuation-token={token}") };
            let (code, xml) = self.request("GET", &format!("/sluice?list-type=2&prefix={prefix}{continuation}"));
            assert_eq!(code, 200, "listing: {xml}");
            keys.extend(xml.split("<Key>").skip(1).filter_map(|s| s.split("</Key>").next()).map(str::to_string));
            match xml.split("<NextContinuationToken>").nth(1).and_then(|s| s.split('<').next()) {
                Some(next) if xml.contains("<IsTruncated>true") => token = next.to_string(),
                _ => break,
            }
        }
        keys.sort();
        keys
    }

    /// Replaces object `key` with `bytes` (to damage a checkpoint). The request is signed
    /// with the cluster's key (boto3, which moto brings): moto refuses an anonymous
    /// overwrite of an object a signed request wrote.
    pub fn put(&self, key: &str, bytes: &[u8]) {
        use std::io::Write;
        let script = "import sys, boto3\n\
            s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='sluice-test',\n\
                              aws_secret_access_key='sluice-test-secret', region_name='us-east-1')\n\
            s3.put_object(Bucket='sluice', Key=sys.argv[2], Body=sys.stdin.buffer.read())\n";
        let mut child = Command::new("python3")
            .args(["-c", script, &self.endpoint, key])
            .stdin(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        assert!(child.wait().unwrap().success(), "PUT {key} failed");
    }

    /// Copies every object under `prefix` into `dir`, keeping the key's path below
    /// `prefix` (signed, with boto3 as in [`S3Server::put`]).
    pub fn download(&self, prefix: &str, dir: &std::path::Path) {
        let script = "import os, sys, boto3\n\
            s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='sluice-test',\n\
                              aws_secret_access_key='sluice-test-secret', region_name='us-east-1')\n\
            prefix, target = sys.argv[2].rstrip('/') + '/', sys.argv[3]\n\
            for page in s3.get_paginator('list_objects_v2').paginate(Bucket='sluice', Prefix=prefix):\n\
            \x20   for o in page.get('Contents', []):\n\
            \x20       path = os.path.join(target, o['Key'][len(prefix):])\n\
            \x20       os.makedirs(os.path.dirname(path), exist_ok=True)\n\
            \x20       s3.download_file('sluice', o['Key'], path)\n";
        let status = Command::new("python3")
            .args(["-c", script, &self.endpoint, prefix, dir.to_str().unwrap()])
            .status()
            .expect("python3 runs");
        assert!(status.success(), "downloading {prefix} failed");
    }

    /// The server's process id (to pause it).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}
