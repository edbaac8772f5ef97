//! MNS's XML bodies: building requests and responses, and reading both.
//! Namespaces are ignored on reading (MNS clients send
//! `http://mns.aliyuncs.com/doc/v1/` with or without the trailing slash).

use quick_xml::events::Event;
use quick_xml::Reader;

pub const XMLNS: &str = "http://mns.aliyuncs.com/doc/v1/";

/// One message of a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutMessage {
    pub body: String,
    pub tag: Option<String>,
    pub delay_seconds: Option<u32>,
    pub priority: Option<u32>,
}

/// One entry of a BatchSendMessage response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchEntry {
    Sent {
        message_id: String,
        body_md5: String,
    },
    Failed {
        code: String,
        message: String,
    },
}

/// What an MNS response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Sent {
        message_id: String,
        body_md5: String,
    },
    Batch(Vec<BatchEntry>),
    Error {
        code: String,
        message: String,
        request_id: String,
        host_id: String,
    },
}

/// `s` as XML text.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

fn element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape_into(out, text);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn message_fields(out: &mut String, m: &OutMessage) {
    element(out, "MessageBody", &m.body);
    if let Some(t) = &m.tag {
        element(out, "MessageTag", t);
    }
    if let Some(d) = m.delay_seconds {
        element(out, "DelaySeconds", &d.to_string());
    }
    if let Some(p) = m.priority {
        element(out, "Priority", &p.to_string());
    }
}

const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// PublishMessage / SendMessage body.
pub fn message_request(m: &OutMessage) -> String {
    let mut s = format!("{DECL}<Message xmlns=\"{XMLNS}\">");
    message_fields(&mut s, m);
    s.push_str("</Message>");
    s
}

/// BatchSendMessage body.
pub fn batch_request(ms: &[OutMessage]) -> String {
    let mut s = format!("{DECL}<Messages xmlns=\"{XMLNS}\">");
    for m in ms {
        s.push_str("<Message>");
        message_fields(&mut s, m);
        s.push_str("</Message>");
    }
    s.push_str("</Messages>");
    s
}

/// The size a message adds to a batch request (for the 64 KB limit).
pub fn batch_entry_len(m: &OutMessage) -> usize {
    let mut s = String::new();
    s.push_str("<Message>");
    message_fields(&mut s, m);
    s.push_str("</Message>");
    s.len()
}

/// The fixed part of a batch request.
pub fn batch_overhead() -> usize {
    batch_request(&[]).len()
}

pub fn sent_response(message_id: &str, body_md5: &str) -> String {
    let mut s = format!("{DECL}<Message xmlns=\"{XMLNS}\">");
    element(&mut s, "MessageId", message_id);
    element(&mut s, "MessageBodyMD5", body_md5);
    s.push_str("</Message>");
    s
}

pub fn batch_response(entries: &[BatchEntry]) -> String {
    let mut s = format!("{DECL}<Messages xmlns=\"{XMLNS}\">");
    for e in entries {
        s.push_str("<Message>");
        match e {
            BatchEntry::Sent {
                message_id,
                body_md5,
            } => {
                element(&mut s, "MessageId", message_id);
                element(&mut s, "MessageBodyMD5", body_md5);
            }
            BatchEntry::Failed { code, message } => {
                element(&mut s, "ErrorCode", code);
                element(&mut s, "ErrorMessage", message);
            }
        }
        s.push_str("</Message>");
    }
    s.push_str("</Messages>");
    s
}

pub fn error_response(code: &str, message: &str, request_id: &str, host_id: &str) -> String {
    let mut s = format!("{DECL}<Error xmlns=\"{XMLNS}\">");
    element(&mut s, "Code", code);
    element(&mut s, "Message", message);
    element(&mut s, "RequestId", request_id);
    element(&mut s, "HostId", host_id);
    s.push_str("</Error>");
    s
}

/// A parsed element: its local name, text, and child elements.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    pub fn text_of(&self, name: &str) -> String {
        self.child(name).map(|c| c.text.clone()).unwrap_or_default()
    }
}

/// Parses a document into its root element.
pub fn parse(xml: &str) -> Result<Node, String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = AsRef::<str>::as_ref(&e.local_name()).to_owned();
                stack.push(Node {
                    name,
                    ..Node::default()
                });
            }
            Ok(Event::Empty(e)) => {
                let node = Node {
                    name: AsRef::<str>::as_ref(&e.local_name()).to_owned(),
                    ..Node::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Ok(Event::Text(t)) => {
                if let Some(top) = stack.last_mut() {
                    let raw: &str = &t;
                    let text = quick_xml::escape::unescape(raw).map_err(|e| e.to_string())?;
                    top.text.push_str(&text);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(top) = stack.last_mut() {
                    let name: &str = &r;
                    let entity = format!("&{name};");
                    let text = quick_xml::escape::unescape(&entity).map_err(|e| e.to_string())?;
                    top.text.push_str(&text);
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t);
                }
            }
            Ok(Event::End(_)) => {
                let node = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Ok(Event::Eof) => return Err("unexpected end of document".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("at byte {}: {e}", reader.buffer_position())),
        }
    }
}

/// Reads an MNS response body.
pub fn parse_response(xml: &str) -> Result<Response, String> {
    let root = parse(xml)?;
    match root.name.as_str() {
        "Message" => Ok(Response::Sent {
            message_id: root.text_of("MessageId"),
            body_md5: root.text_of("MessageBodyMD5"),
        }),
        "Messages" => Ok(Response::Batch(
            root.children
                .iter()
                .filter(|c| c.name == "Message")
                .map(|m| match m.child("ErrorCode") {
                    Some(code) => BatchEntry::Failed {
                        code: code.text.clone(),
                        message: m.text_of("ErrorMessage"),
                    },
                    None => BatchEntry::Sent {
                        message_id: m.text_of("MessageId"),
                        body_md5: m.text_of("MessageBodyMD5"),
                    },
                })
                .collect(),
        )),
        "Error" => Ok(Response::Error {
            code: root.text_of("Code"),
            message: root.text_of("Message"),
            request_id: root.text_of("RequestId"),
            host_id: root.text_of("HostId"),
        }),
        other => Err(format!("unexpected root element <{other}>")),
    }
}

/// Reads a request body: one message, or a batch.
pub fn parse_request(xml: &str) -> Result<Vec<OutMessage>, String> {
    let root = parse(xml)?;
    let one = |m: &Node| -> Result<OutMessage, String> {
        let body = m.child("MessageBody").ok_or("MessageBody is missing")?;
        let num = |name: &str| -> Result<Option<u32>, String> {
            m.child(name)
                .map(|n| {
                    n.text
                        .trim()
                        .parse()
                        .map_err(|_| format!("{name} is not a number"))
                })
                .transpose()
        };
        Ok(OutMessage {
            body: body.text.clone(),
            tag: m.child("MessageTag").map(|t| t.text.clone()),
            delay_seconds: num("DelaySeconds")?,
            priority: num("Priority")?,
        })
    };
    match root.name.as_str() {
        "Message" => Ok(vec![one(&root)?]),
        "Messages" => root
            .children
            .iter()
            .filter(|c| c.name == "Message")
            .map(one)
            .collect(),
        other => Err(format!("unexpected root element <{other}>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_escaping() {
        let m = OutMessage {
            body: "{\"key\":\"a<b>&'c\"}".into(),
            tag: Some("oss".into()),
            delay_seconds: Some(3),
            priority: Some(8),
        };
        let xml = message_request(&m);
        assert!(
            xml.contains(
                "<MessageBody>{&quot;key&quot;:&quot;a&lt;b&gt;&amp;&apos;c&quot;}</MessageBody>"
            ),
            "{xml}"
        );
        assert_eq!(parse_request(&xml).unwrap(), vec![m.clone()]);
        let two = vec![
            m.clone(),
            OutMessage {
                body: "eyJ9".into(),
                ..Default::default()
            },
        ];
        let xml = batch_request(&two);
        assert_eq!(parse_request(&xml).unwrap(), two);
        assert_eq!(
            xml.len(),
            batch_overhead() + two.iter().map(batch_entry_len).sum::<usize>()
        );
    }

    #[test]
    fn responses_parse_with_either_namespace() {
        let sent = sent_response("ID1", "ABC");
        assert_eq!(
            parse_response(&sent).unwrap(),
            Response::Sent {
                message_id: "ID1".into(),
                body_md5: "ABC".into()
            }
        );
        let no_slash = sent.replace("doc/v1/", "doc/v1");
        assert!(matches!(
            parse_response(&no_slash).unwrap(),
            Response::Sent { .. }
        ));
        let batch = batch_response(&[
            BatchEntry::Sent {
                message_id: "1".into(),
                body_md5: "m".into(),
            },
            BatchEntry::Failed {
                code: "InternalError".into(),
                message: "try again".into(),
            },
        ]);
        let Response::Batch(entries) = parse_response(&batch).unwrap() else {
            panic!()
        };
        assert_eq!(
            entries[1],
            BatchEntry::Failed {
                code: "InternalError".into(),
                message: "try again".into()
            }
        );
        let err = error_response(
            "QueueNotExist",
            "The queue name you provided is not exist.",
            "R",
            "H",
        );
        assert_eq!(
            parse_response(&err).unwrap(),
            Response::Error {
                code: "QueueNotExist".into(),
                message: "The queue name you provided is not exist.".into(),
                request_id: "R".into(),
                host_id: "H".into()
            }
        );
        assert!(parse_response("<Message>").is_err());
        assert!(parse_request("<Message><Priority>x</Priority><MessageBody/></Message>").is_err());
        assert!(parse_request("<Message></Message>").is_err());
    }
}
