//! The web console as a browser meets it, over plain HTTP/1.1 on the gRPC port: the page and its
//! assets (no credential needed, gzip when accepted, revalidation), gRPC-Web calls under the
//! usual authentication, and `--web-console false`. The console itself runs in a real browser in
//! `clients/web/tests`.

use crate::support::broker;
use crate::support::callers;

use callers::CallersBroker;
use flinkbroker_proto::{ListJobsRequest, ListJobsResponse, RuntimeMode};
use prost::Message;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

const SCRIPT: &[u8] = include_bytes!("../../clients/web/dist/assets/console.js");
const SCRIPT_GZ: &[u8] = include_bytes!("../../clients/web/dist/assets/console.js.gz");

fn http1() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("http client")
}

/// A gRPC-Web call as a browser makes it: one length-prefixed message in, frames out.
async fn grpc_web(
    broker: &CallersBroker,
    method: &str,
    message: &impl Message,
    token: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<(u8, Vec<u8>)>) {
    let body = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&body);
    let mut request = http1()
        .post(format!(
            "http://{}/flinkbroker.v1.JobService/{method}",
            broker.broker.addr
        ))
        .header(CONTENT_TYPE, "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(framed);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("grpc-web call");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        frames.push((flag, rest[5..5 + len].to_vec()));
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty(), "a partial gRPC-Web frame");
    (status, headers, frames)
}

/// The `grpc-status` of a gRPC-Web answer: in the headers (trailers-only) or the trailer frame.
fn grpc_status(headers: &reqwest::header::HeaderMap, frames: &[(u8, Vec<u8>)]) -> String {
    if let Some(status) = headers.get("grpc-status") {
        return status.to_str().expect("ascii").to_owned();
    }
    let trailers = frames
        .iter()
        .find(|(flag, _)| flag & 0x80 != 0)
        .map(|(_, t)| String::from_utf8_lossy(t).into_owned())
        .expect("a trailer frame");
    trailers
        .lines()
        .find_map(|l| l.strip_prefix("grpc-status:"))
        .map(|s| s.trim().to_owned())
        .expect("grpc-status in the trailers")
}

#[tokio::test]
async fn the_page_and_assets_answer_without_a_credential() {
    let broker = CallersBroker::start(&[]).await;
    let base = format!("http://{}", broker.broker.addr);
    let client = http1();

    let page = client.get(format!("{base}/")).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"));
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.expect("html");
    assert!(html.contains(r#"src="assets/console.js""#), "{html}");

    // Plain to a client that does not take gzip, gzipped to one that does.
    let plain = client
        .get(format!("{base}/assets/console.js"))
        .send()
        .await
        .expect("script");
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    let etag = plain.headers()[ETAG].clone();
    assert_eq!(plain.bytes().await.expect("body").as_ref(), SCRIPT);
    let gzipped = client
        .get(format!("{base}/assets/console.js"))
        .header(ACCEPT_ENCODING, "gzip, deflate, br")
        .send()
        .await
        .expect("script");
    assert_eq!(gzipped.headers()[CONTENT_ENCODING], "gzip");
    assert_eq!(gzipped.bytes().await.expect("body").as_ref(), SCRIPT_GZ);
    let again = client
        .get(format!("{base}/assets/console.js"))
        .header(IF_NONE_MATCH, etag)
        .send()
        .await
        .expect("script");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let style = client
        .head(format!("{base}/assets/console.css"))
        .send()
        .await
        .expect("style");
    assert_eq!(style.status(), StatusCode::OK);
    assert_eq!(style.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
    broker.stop().await;
}

#[tokio::test]
async fn grpc_web_calls_are_authenticated_like_grpc_calls() {
    let broker = CallersBroker::start(&[]).await;
    let mut grpc = broker.as_token("ml-submit-token").await;
    let job = grpc
        .submit_sql(broker::sql("SELECT 1", RuntimeMode::Batch))
        .await
        .expect("submit")
        .into_inner();

    let list = ListJobsRequest {
        page_size: 10,
        ..ListJobsRequest::default()
    };
    let (status, headers, frames) = grpc_web(&broker, "ListJobs", &list, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(grpc_status(&headers, &frames), "16", "UNAUTHENTICATED");

    let (status, headers, frames) =
        grpc_web(&broker, "ListJobs", &list, Some("ml-read-token")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("application/grpc-web")
    );
    assert_eq!(grpc_status(&headers, &frames), "0");
    let (_, message) = frames
        .iter()
        .find(|(flag, _)| *flag == 0)
        .expect("a message frame");
    let listed = ListJobsResponse::decode(message.as_slice()).expect("ListJobsResponse");
    assert_eq!(
        listed
            .jobs
            .iter()
            .map(|j| j.id.as_str())
            .collect::<Vec<_>>(),
        [job.id.as_str()]
    );

    // Another tenant sees none of it.
    let (_, headers, frames) = grpc_web(&broker, "ListJobs", &list, Some("ads-token")).await;
    assert_eq!(grpc_status(&headers, &frames), "0");
    let listed = frames
        .iter()
        .find(|(flag, _)| *flag == 0)
        .map(|(_, m)| ListJobsResponse::decode(m.as_slice()).expect("ListJobsResponse"))
        .unwrap_or_default();
    assert!(listed.jobs.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn without_the_console_the_port_serves_no_page() {
    let broker = CallersBroker::start(&["--web-console", "false"]).await;
    let page = http1()
        .get(format!("http://{}/", broker.broker.addr))
        .send()
        .await
        .expect("answer");
    assert_ne!(page.status(), StatusCode::OK);
    assert!(page.bytes().await.expect("body").is_empty());
    // gRPC-Web still answers.
    let list = ListJobsRequest::default();
    let (_, headers, frames) = grpc_web(&broker, "ListJobs", &list, Some("ml-read-token")).await;
    assert_eq!(grpc_status(&headers, &frames), "0");
    broker.stop().await;
}
