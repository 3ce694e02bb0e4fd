//! `sluice probe`: a health check for containers and scripts. `tcp://HOST:PORT` succeeds
//! when something accepts a connection there (a task manager's port); `http://HOST:PORT/PATH`
//! when a GET answers 2xx (the jobmanager's REST API, with the cluster's token if one is
//! set). Exit status 0 means healthy; otherwise the reason is printed.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ProbeArgs;

/// `sluice probe`.
pub async fn probe(args: ProbeArgs) -> Result<ExitCode> {
    let timeout = crate::config::duration("--timeout", &args.timeout)?;
    tokio::time::timeout(timeout, check(&args.target))
        .await
        .with_context(|| format!("{}: no answer within {timeout:?}", args.target))??;
    Ok(ExitCode::SUCCESS)
}

async fn check(target: &str) -> Result<()> {
    if let Some(address) = target.strip_prefix("tcp://") {
        TcpStream::connect(address).await.with_context(|| format!("cannot connect to {address}"))?;
        return Ok(());
    }
    let Some(rest) = target.strip_prefix("http://") else {
        bail!("cannot probe '{target}': give tcp://HOST:PORT or http://HOST:PORT/PATH");
    };
    let (address, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let mut stream = TcpStream::connect(address).await.with_context(|| format!("cannot connect to {address}"))?;
    let auth = super::client::token().map(|t| format!("Authorization: Bearer {}\r\n", t.expose())).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = vec![0u8; 64];
    let n = stream.read(&mut head).await?;
    let line = String::from_utf8_lossy(&head[..n]);
    let status = line.split_whitespace().nth(1).unwrap_or_default();
    if !status.starts_with('2') {
        bail!("GET {target} answered '{}'", line.lines().next().unwrap_or_default());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes_tcp_and_http_and_says_why_they_fail() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for answer in ["HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 503 Service Unavailable\r\n\r\n"] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buffer = [0u8; 512];
                let _ = socket.read(&mut buffer).await.unwrap();
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        check(&format!("http://{address}/overview")).await.unwrap();
        let error = check(&format!("http://{address}/overview")).await.unwrap_err().to_string();
        assert!(error.contains("503 Service Unavailable"), "{error}");
        server.await.unwrap();
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(check(&format!("tcp://{free}")).await.is_err(), "nothing listens there");
        assert!(check("ftp://x").await.unwrap_err().to_string().contains("tcp://HOST:PORT"));
    }
}
