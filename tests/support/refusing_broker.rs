//! A Kafka peer that refuses every topic creation: it speaks just enough
//! of the protocol (ApiVersions v0, Metadata v1, CreateTopics v0 to v4,
//! in their non-flexible encodings; v4 is what a replication factor of -1
//! needs) for librdkafka's admin client to find it
//! as the controller and ask, and answers each topic with the error code it
//! was given, as a cluster that forbids topic creation does
//! (TOPIC_AUTHORIZATION_FAILED, POLICY_VIOLATION). Neither tansu (it
//! creates whatever is asked) nor librdkafka's mock cluster (it has no
//! CreateTopics) can.

#![allow(dead_code)] // included by test binaries that each use a part

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

const API_VERSIONS: i16 = 18;
const METADATA: i16 = 3;
const CREATE_TOPICS: i16 = 19;

/// The peer: listening until the test binary exits.
pub struct RefusingBroker {
    pub port: u16,
}

impl RefusingBroker {
    /// Answers every CreateTopics entry with `error` (a Kafka error code).
    pub fn start(error: i16) -> RefusingBroker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || serve(conn, port, error));
            }
        });
        RefusingBroker { port }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn serve(mut conn: TcpStream, port: u16, error: i16) {
    loop {
        let mut len = [0u8; 4];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut req = vec![0u8; i32::from_be_bytes(len) as usize];
        if conn.read_exact(&mut req).is_err() {
            return;
        }
        let mut r = Reader(&req);
        let (key, version, correlation) = (r.i16(), r.i16(), r.i32());
        let _client_id = r.nullable_string();
        let mut body = Vec::new();
        match key {
            API_VERSIONS => {
                // Any version but 0: answer as v0 with UNSUPPORTED_VERSION
                // and the versions there are, so the client asks again.
                put_i16(&mut body, if version == 0 { 0 } else { 35 });
                put_i32(&mut body, 3);
                for (k, max) in [(API_VERSIONS, 0), (METADATA, 1), (CREATE_TOPICS, 4)] {
                    put_i16(&mut body, k);
                    put_i16(&mut body, 0);
                    put_i16(&mut body, max);
                }
            }
            METADATA => {
                // One broker, itself, which is the controller; no topics.
                put_i32(&mut body, 1);
                put_i32(&mut body, 1);
                put_string(&mut body, "127.0.0.1");
                put_i32(&mut body, port as i32);
                put_i16(&mut body, -1); // rack: null
                put_i32(&mut body, 1); // controller
                put_i32(&mut body, 0); // topics
            }
            CREATE_TOPICS => {
                let n = r.i32();
                let mut names = Vec::new();
                for _ in 0..n {
                    names.push(r.string());
                    let (_partitions, _replication) = (r.i32(), r.i16());
                    for _ in 0..r.i32() {
                        r.i32();
                        for _ in 0..r.i32() {
                            r.i32();
                        }
                    }
                    for _ in 0..r.i32() {
                        r.string();
                        r.nullable_string();
                    }
                }
                if version >= 2 {
                    put_i32(&mut body, 0); // throttle_time_ms
                }
                put_i32(&mut body, names.len() as i32);
                for name in names {
                    put_string(&mut body, &name);
                    put_i16(&mut body, error);
                    if version >= 1 {
                        put_string(&mut body, "topic creation is not allowed here");
                    }
                }
            }
            _ => return,
        }
        let mut resp = Vec::with_capacity(body.len() + 8);
        put_i32(&mut resp, body.len() as i32 + 4);
        put_i32(&mut resp, correlation);
        resp.extend_from_slice(&body);
        if conn.write_all(&resp).is_err() {
            return;
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().unwrap_or([0; 2]))
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().unwrap_or([0; 4]))
    }
    fn string(&mut self) -> String {
        let n = self.i16().max(0) as usize;
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
    fn nullable_string(&mut self) -> Option<String> {
        let n = self.i16();
        (n >= 0).then(|| String::from_utf8_lossy(self.take(n as usize)).into_owned())
    }
}

fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    put_i16(out, s.len() as i16);
    out.extend_from_slice(s.as_bytes());
}
