//! Reading a KRPC datagram: [`Message::decode`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{
    Body, KrpcError, Message, NodeId, NodeInfo, Query, Reply, MAX_ERROR_TEXT, MAX_NODES,
    MAX_PACKET, MAX_TOKEN_LEN, MAX_TRANSACTION_LEN, MAX_VALUES,
};
use crate::{
    bencode::{self, bytes_of, int_of, DictEntrySpan},
    types::InfoHash,
};

/// A checked dictionary's fields, looked up by key.
struct Dict<'a> {
    input: &'a [u8],
    spans: Vec<DictEntrySpan<'a>>,
}

impl<'a> Dict<'a> {
    /// `input` must be a value inside bytes [`bencode::check`] accepted.
    fn new(input: &'a [u8], name: &'static str) -> Result<Self, KrpcError> {
        if input.first() != Some(&b'd') {
            return Err(KrpcError::BadField(name));
        }
        Ok(Dict {
            input,
            spans: bencode::dict_value_spans(input)?,
        })
    }

    fn get(&self, key: &str) -> Option<&'a [u8]> {
        self.spans
            .iter()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, range)| &self.input[range.clone()])
    }

    fn bytes(&self, key: &'static str) -> Result<Option<&'a [u8]>, KrpcError> {
        self.get(key)
            .map(|v| bytes_of(v).ok_or(KrpcError::BadField(key)))
            .transpose()
    }

    fn need_bytes(&self, key: &'static str) -> Result<&'a [u8], KrpcError> {
        self.bytes(key)?.ok_or(KrpcError::BadField(key))
    }

    fn int(&self, key: &'static str) -> Result<Option<i64>, KrpcError> {
        self.get(key)
            .map(|v| int_of(v).ok_or(KrpcError::BadField(key)))
            .transpose()
    }

    fn id(&self, key: &'static str) -> Result<NodeId, KrpcError> {
        NodeId::from_slice(self.need_bytes(key)?).ok_or(KrpcError::BadField(key))
    }

    fn hash(&self, key: &'static str) -> Result<InfoHash, KrpcError> {
        InfoHash::from_slice(self.need_bytes(key)?).ok_or(KrpcError::BadField(key))
    }
}

/// The items of a checked list value, as byte slices.
fn list_items<'a>(value: &'a [u8], name: &'static str) -> Result<Vec<&'a [u8]>, KrpcError> {
    if value.first() != Some(&b'l') {
        return Err(KrpcError::BadField(name));
    }
    let mut items = Vec::new();
    let mut pos = 1;
    while value.get(pos).ok_or(KrpcError::BadField(name))? != &b'e' {
        let len = bencode::value_len(&value[pos..])?;
        items.push(&value[pos..pos + len]);
        pos += len;
    }
    Ok(items)
}

impl Message {
    /// Decodes one untrusted datagram (see the module docs for the bounds).
    pub fn decode(datagram: &[u8]) -> Result<Message, KrpcError> {
        if datagram.len() > MAX_PACKET {
            return Err(KrpcError::TooLong(datagram.len()));
        }
        bencode::check(datagram)?;
        let top = Dict::new(datagram, "message")?;
        let transaction = top.need_bytes("t")?;
        if transaction.len() > MAX_TRANSACTION_LEN {
            return Err(KrpcError::BadField("t"));
        }
        let read_only = top.int("ro")? == Some(1);
        let requester = top.bytes("ip")?.and_then(|b| compact_addr(b).flatten());
        let version = top.bytes("v")?.map(|v| v[..v.len().min(8)].to_vec());
        let (id, body) = match top.need_bytes("y")? {
            b"q" => {
                let args = Dict::new(top.get("a").ok_or(KrpcError::BadField("a"))?, "a")?;
                let method = top.need_bytes("q")?;
                (Some(args.id("id")?), Body::Query(query(method, &args)?))
            }
            b"r" => {
                let values = Dict::new(top.get("r").ok_or(KrpcError::BadField("r"))?, "r")?;
                (Some(values.id("id")?), Body::Reply(reply(&values)?))
            }
            b"e" => {
                let items = list_items(top.get("e").ok_or(KrpcError::BadField("e"))?, "e")?;
                let code = items.first().and_then(|v| int_of(v));
                let text = items.get(1).and_then(|v| bytes_of(v)).unwrap_or(b"");
                (
                    None,
                    Body::Error {
                        code: code.ok_or(KrpcError::BadField("e"))?,
                        message: lossy_cut(text, MAX_ERROR_TEXT),
                    },
                )
            }
            _ => return Err(KrpcError::BadField("y")),
        };
        Ok(Message {
            transaction: transaction.to_vec(),
            id,
            body,
            read_only,
            requester,
            version,
        })
    }
}

fn query(method: &[u8], args: &Dict<'_>) -> Result<Query, KrpcError> {
    Ok(match method {
        b"ping" => Query::Ping,
        b"find_node" => Query::FindNode {
            target: args.id("target")?,
        },
        b"get_peers" => Query::GetPeers {
            info_hash: args.hash("info_hash")?,
        },
        b"announce_peer" => {
            let token = args.need_bytes("token")?;
            if token.len() > MAX_TOKEN_LEN {
                return Err(KrpcError::BadField("token"));
            }
            let implied_port = args.int("implied_port")?.is_some_and(|v| v != 0);
            let port = match args.int("port")? {
                Some(p) => u16::try_from(p).map_err(|_| KrpcError::BadField("port"))?,
                None if implied_port => 0,
                None => return Err(KrpcError::BadField("port")),
            };
            Query::AnnouncePeer {
                info_hash: args.hash("info_hash")?,
                port,
                implied_port,
                token: token.to_vec(),
            }
        }
        other => Query::Unknown {
            method: lossy_cut(other, 32),
        },
    })
}

fn reply(values: &Dict<'_>) -> Result<Reply, KrpcError> {
    let mut reply = Reply::default();
    for (key, width) in [("nodes", 26), ("nodes6", 38)] {
        let Some(bytes) = values.bytes(key)? else {
            continue;
        };
        if !bytes.len().is_multiple_of(width) {
            return Err(KrpcError::BadField(key));
        }
        let count = reply.nodes.len() + bytes.len() / width;
        if count > MAX_NODES {
            return Err(KrpcError::TooMany {
                field: key,
                count,
                limit: MAX_NODES,
            });
        }
        for entry in bytes.chunks_exact(width) {
            let (id, addr) = entry.split_at(20);
            if let Some(addr) = compact_addr(addr).flatten() {
                reply.nodes.push(NodeInfo {
                    id: NodeId::from_slice(id).ok_or(KrpcError::BadField(key))?,
                    addr,
                });
            }
        }
    }
    if let Some(list) = values.get("values") {
        let items = list_items(list, "values")?;
        if items.len() > MAX_VALUES {
            return Err(KrpcError::TooMany {
                field: "values",
                count: items.len(),
                limit: MAX_VALUES,
            });
        }
        for item in items {
            let bytes = bytes_of(item).ok_or(KrpcError::BadField("values"))?;
            match compact_addr(bytes) {
                Some(Some(addr)) => reply.values.push(addr),
                Some(None) => {}
                None => return Err(KrpcError::BadField("values")),
            }
        }
    }
    if let Some(token) = values.bytes("token")? {
        if token.len() > MAX_TOKEN_LEN {
            return Err(KrpcError::BadField("token"));
        }
        reply.token = Some(token.to_vec());
    }
    Ok(reply)
}

/// Text from untrusted bytes, invalid UTF-8 replaced, cut to at most `max`
/// bytes on a character boundary (so that decoding it again gives the same).
fn lossy_cut(bytes: &[u8], max: usize) -> String {
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// A compact address (4 or 16 address bytes, then the port): `None` when the
/// length is neither 6 nor 18, `Some(None)` for port 0.
pub(super) fn compact_addr(bytes: &[u8]) -> Option<Option<SocketAddr>> {
    let ip = match bytes.len() {
        6 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&bytes[..4]).ok()?)),
        18 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[..16]).ok()?)),
        _ => return None,
    };
    let port = u16::from_be_bytes([bytes[bytes.len() - 2], bytes[bytes.len() - 1]]);
    Some((port != 0).then_some(SocketAddr::new(ip, port)))
}
