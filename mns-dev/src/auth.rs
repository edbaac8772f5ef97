//! A request's headers and signature, checked as MNS checks them.

use std::convert::Infallible;
use std::time::Duration;

use hyper::StatusCode;

use ossnotify_sinks::mns::sign::{self, SignedParts, MNS_VERSION};

use super::requests::{error, Reply};
use super::DevCredential;

/// Checks the headers and signature as MNS does; the error reply if wrong.
pub(crate) fn authenticate(
    credentials: &[DevCredential],
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Result<(), Box<Reply>> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    check_version_and_date(&header)?;
    let date = header("date");
    let md5 = header("content-md5");
    if !md5.is_empty() && md5 != sign::content_md5(body) {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidDigest",
            "Content-MD5 does not match the body",
        )));
    }
    let Some(auth) = header("authorization").strip_prefix("MNS ") else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Authorization must be MNS AccessKeyId:Signature",
        )));
    };
    let (key_id, got) = auth.split_once(':').unwrap_or((auth, ""));
    let Some(cred) = credentials.iter().find(|c| c.key_id == key_id) else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
            "The access key id you provided does not exist.",
        )));
    };
    // STS credentials are valid only with their token (sent unsigned).
    if let Some(token) = &cred.token {
        if header("security-token") != token {
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                "SecurityTokenMismatch",
                "The security token you provided is not valid for this access key id.",
            )));
        }
    }
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let resource = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let want = sign::signature(
        &cred.secret,
        &sign::string_to_sign(&SignedParts {
            verb: parts.method.as_str(),
            content_md5: md5,
            content_type: header("content-type"),
            date,
            headers: &headers,
            resource,
        }),
    );
    if got != want {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )));
    }
    Ok(())
}

/// `x-mns-version` and `Date` as MNS checks them: the version it speaks,
/// and a date at most 15 minutes off.
fn check_version_and_date<'h>(header: &impl Fn(&str) -> &'h str) -> Result<(), Box<Reply>> {
    if header("x-mns-version") != MNS_VERSION {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "x-mns-version must be 2015-06-06",
        )));
    }
    let date = header("date");
    if date.is_empty() {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Date is missing",
        )));
    }
    if let Ok(t) = httpdate::parse_http_date(date) {
        let skew = t
            .duration_since(std::time::SystemTime::now())
            .or_else(|e| Ok::<_, Infallible>(e.duration()))
            .unwrap_or_default();
        if skew > Duration::from_secs(900) {
            return Err(Box::new(error(
                StatusCode::REQUEST_TIMEOUT,
                "TimeExpired",
                "Date is more than 15 minutes off",
            )));
        }
    } else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Date is not an RFC 1123 date",
        )));
    }
    Ok(())
}
