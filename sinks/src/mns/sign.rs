//! MNS request signing (MNS API reference, "Signature"): the one place the
//! project signs or verifies an MNS request. `mns-dev` verifies with the
//! same code, and the published vectors below pin it to MNS's algorithm.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

use crate::config::Secret;

/// The API version every request names.
pub const MNS_VERSION: &str = "2015-06-06";
pub const CONTENT_TYPE: &str = "text/xml;charset=utf-8";

/// What a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    pub verb: &'a str,
    pub content_md5: &'a str,
    pub content_type: &'a str,
    pub date: &'a str,
    /// Every header; only `x-mns-*` ones are signed.
    pub headers: &'a [(&'a str, &'a str)],
    /// Path with its query string, e.g. `/queues/q/messages`.
    pub resource: &'a str,
}

/// VERB\nContent-MD5\nContent-Type\nDate\nCanonicalizedMNSHeaders + CanonicalizedResource
pub fn string_to_sign(p: &SignedParts<'_>) -> String {
    let mut mns: Vec<(String, &str)> = p
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim()))
        .filter(|(k, _)| k.starts_with("x-mns-"))
        .collect();
    mns.sort();
    let mut s = format!(
        "{}\n{}\n{}\n{}\n",
        p.verb, p.content_md5, p.content_type, p.date
    );
    for (k, v) in mns {
        s.push_str(&k);
        s.push(':');
        s.push_str(v);
        s.push('\n');
    }
    s.push_str(p.resource);
    s
}

/// Base64(HMAC-SHA1(secret, string_to_sign)).
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Signs requests for one access key.
#[derive(Clone)]
pub struct MnsSigner {
    key_id: String,
    secret: Secret,
}

impl std::fmt::Debug for MnsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MnsSigner")
            .field("key_id", &self.key_id)
            .field("secret", &self.secret)
            .finish()
    }
}

impl MnsSigner {
    pub fn new(key_id: impl Into<String>, secret: Secret) -> Self {
        MnsSigner {
            key_id: key_id.into(),
            secret,
        }
    }

    /// The `Authorization` header value: `MNS {AccessKeyId}:{Signature}`.
    pub fn authorization(&self, p: &SignedParts<'_>) -> String {
        authorization(&self.key_id, &self.secret, p)
    }
}

/// The `Authorization` header value for `key_id` and its `secret`.
pub fn authorization(key_id: &str, secret: &Secret, p: &SignedParts<'_>) -> String {
    format!(
        "MNS {key_id}:{}",
        signature(secret.expose(), &string_to_sign(p))
    )
}

/// Lowercase hex MD5 of `body`: what MNS returns as `MessageBodyMD5`.
pub fn md5_hex(body: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Md5::digest(body);
    let mut s = String::with_capacity(32);
    for b in digest.iter() {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// `Content-MD5` as the official SDKs send it: Base64 of the hex digest.
pub fn content_md5(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5_hex(body))
}

/// An RFC 1123 date in GMT, as `Date` wants it.
pub fn http_date(t: std::time::SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors in docs/sinks.md: MNS's docs and the official Java SDK's tests.
    #[test]
    fn published_vectors() {
        let cases = [
            (
                "TestAccessSecret",
                "GET\n\n\nThu, 09 Jul 2015 03:01:34 GMT\nx-mns-version:2015-06-06\n/MyQueue",
                "uwx3yeWoILzgmvesW0BQSgfM7b8=",
            ),
            (
                "accessKeySecret111",
                "PUT\n\ntext/xml;charset=UTF-8\nTue, 03 Jun 2025 11:23:48 GMT\nx-mns-version:2015-06-06\n/queues/TestQueue",
                "HCSlBi5KuXGNf06tZKFiQlNDt4c=",
            ),
            (
                "sk1",
                "POST\n\n\nTue, 03 Jun 2025 11:23:48 GMT\nx-mns-abcdef:abcDEF\n/queues/TestQueue",
                "cAThPWnbphg3hDe3ZHDADTgkgyE=",
            ),
        ];
        for (secret, sts, want) in cases {
            assert_eq!(signature(secret, sts), want, "{sts:?}");
        }
    }

    #[test]
    fn canonical_headers_are_lowercased_sorted_and_only_mns() {
        // The third vector, built from its request headers.
        let headers = [
            ("x-mns-abcDEF", "abcDEF"),
            ("x-kkk-def", "x"),
            ("Host", "h"),
        ];
        let p = SignedParts {
            verb: "POST",
            content_md5: "",
            content_type: "",
            date: "Tue, 03 Jun 2025 11:23:48 GMT",
            headers: &headers,
            resource: "/queues/TestQueue",
        };
        assert_eq!(
            string_to_sign(&p),
            "POST\n\n\nTue, 03 Jun 2025 11:23:48 GMT\nx-mns-abcdef:abcDEF\n/queues/TestQueue"
        );
        let signer = MnsSigner::new("ak", Secret::from("sk1".to_owned()));
        assert_eq!(
            signer.authorization(&p),
            "MNS ak:cAThPWnbphg3hDe3ZHDADTgkgyE="
        );
        assert!(!format!("{signer:?}").contains("sk1"));
        let two = [("x-mns-version", "2015-06-06"), ("X-MNS-A", "1")];
        let p = SignedParts { headers: &two, ..p };
        assert!(string_to_sign(&p)
            .ends_with("\nx-mns-a:1\nx-mns-version:2015-06-06\n/queues/TestQueue"));
    }

    #[test]
    fn md5_forms() {
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            content_md5(b"abc"),
            "OTAwMTUwOTgzY2QyNGZiMGQ2OTYzZjdkMjhlMTdmNzI="
        );
        let d = http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1436410894));
        assert_eq!(d, "Thu, 09 Jul 2015 03:01:34 GMT");
    }
}
