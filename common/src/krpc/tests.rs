use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;
use crate::bencode;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn id(byte: u8) -> NodeId {
    NodeId([byte; 20])
}

fn query(q: Query) -> Message {
    Message {
        transaction: b"aa".to_vec(),
        id: Some(id(1)),
        body: Body::Query(q),
        read_only: false,
        requester: None,
        version: None,
    }
}

#[test]
fn bep5_examples_decode() {
    // The examples of BEP 5, byte for byte.
    let ping =
        Message::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe").unwrap();
    assert_eq!(ping.transaction, b"aa");
    assert_eq!(ping.id, NodeId::from_slice(b"abcdefghij0123456789"));
    assert_eq!(ping.body, Body::Query(Query::Ping));
    let error = Message::decode(b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee").unwrap();
    assert_eq!(
        error.body,
        Body::Error {
            code: 201,
            message: "A Generic Error Ocurred".into()
        }
    );
    let announce = Message::decode(
        b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
    )
    .unwrap();
    assert_eq!(
        announce.body,
        Body::Query(Query::AnnouncePeer {
            info_hash: InfoHash(*b"mnopqrstuvwxyz123456"),
            port: 6881,
            implied_port: true,
            token: b"aoeusnth".to_vec(),
        })
    );
    let peers = Message::decode(
        b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
    )
    .unwrap();
    let Body::Reply(reply) = peers.body else {
        panic!("a reply")
    };
    assert_eq!(reply.token.as_deref(), Some(&b"aoeusnth"[..]));
    assert_eq!(reply.values.len(), 2);
    assert_eq!(reply.values[0], addr("97.120.106.101:11893"));
}

#[test]
fn every_message_round_trips_and_is_valid_bencode() {
    let messages = [
        query(Query::Ping),
        query(Query::FindNode { target: id(7) }),
        query(Query::GetPeers {
            info_hash: InfoHash([9; 20]),
        }),
        query(Query::AnnouncePeer {
            info_hash: InfoHash([9; 20]),
            port: 51413,
            implied_port: false,
            token: b"tok".to_vec(),
        }),
        Message {
            transaction: b"\x00\x01".to_vec(),
            id: Some(id(2)),
            body: Body::Reply(Reply {
                nodes: vec![
                    NodeInfo {
                        id: id(3),
                        addr: addr("127.0.0.2:6881"),
                    },
                    NodeInfo {
                        id: id(4),
                        addr: addr("[::1]:6882"),
                    },
                ],
                values: vec![addr("127.1.2.3:80"), addr("[::1]:81")],
                token: Some(b"0123".to_vec()),
            }),
            read_only: true,
            requester: Some(addr("127.0.0.9:999")),
            version: Some(b"PL01".to_vec()),
        },
        Message {
            transaction: b"x".to_vec(),
            id: None,
            body: Body::Error {
                code: codes::METHOD_UNKNOWN,
                message: "Method Unknown".into(),
            },
            read_only: false,
            requester: None,
            version: None,
        },
    ];
    for message in messages {
        let bytes = message.encode();
        bencode::check(&bytes).unwrap();
        assert_eq!(Message::decode(&bytes).unwrap(), message);
    }
}

#[test]
fn an_unknown_method_is_kept_for_a_204_reply() {
    let m = Message::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q6:sample1:t2:aa1:y1:qe").unwrap();
    assert_eq!(
        m.body,
        Body::Query(Query::Unknown {
            method: "sample".into()
        })
    );
}

#[test]
fn hostile_datagrams_are_refused() {
    // Oversized, whatever it holds.
    let mut big = b"d1:t2:aa1:y1:q1:q4:ping1:ad2:id20:abcdefghij01234567891:x5000:".to_vec();
    big.extend(std::iter::repeat_n(b'a', 5000));
    big.extend(b"ee");
    assert!(matches!(Message::decode(&big), Err(KrpcError::TooLong(_))));
    // Deeply nested lists, within the size limit.
    let mut deep = b"d1:t2:aa1:y1:q1:q4:ping1:ad2:id20:abcdefghij01234567891:x".to_vec();
    deep.extend(std::iter::repeat_n(b'l', 2000));
    deep.extend(std::iter::repeat_n(b'e', 2000));
    deep.extend(b"ee");
    assert!(matches!(
        Message::decode(&deep),
        Err(KrpcError::Bencode(bencode::BencodeError::TooDeep(_)))
    ));
    // Wrong lengths and types.
    for bad in [
        &b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe"[..],
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t17:aaaaaaaaaaaaaaaaa1:y1:qe",
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:ze",
        b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:aa1:y1:qe",
        b"d1:rd2:id20:abcdefghij01234567895:nodes5:abcdee1:t2:aa1:y1:re",
        b"d1:rd2:id20:abcdefghij01234567896:valuesl5:abcdeee1:t2:aa1:y1:re",
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
        b"le",
        b"",
    ] {
        assert!(Message::decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn a_reply_with_too_many_nodes_or_peers_is_refused() {
    let nodes = NodeInfo {
        id: id(5),
        addr: addr("127.0.0.5:5"),
    };
    let mut reply = Reply {
        nodes: vec![nodes; MAX_NODES + 1],
        ..Reply::default()
    };
    let mut w = bencode::Writer::with_capacity(4096);
    w.dict().bytes(b"r").dict().bytes(b"id").bytes(&[1; 20]);
    w.bytes(b"nodes").bytes_with(26 * (MAX_NODES + 1), |b| {
        for n in &reply.nodes {
            b.extend_from_slice(&n.id.0);
            encode::put_addr(b, &n.addr);
        }
    });
    w.end()
        .bytes(b"t")
        .bytes(b"aa")
        .bytes(b"y")
        .bytes(b"r")
        .end();
    assert!(matches!(
        Message::decode(&w.finish()),
        Err(KrpcError::TooMany { field: "nodes", .. })
    ));
    // Our own encoder cuts to the limit, so we never send what we refuse.
    reply.values = vec![addr("127.0.0.1:1"); MAX_VALUES + 10];
    let message = Message {
        body: Body::Reply(reply),
        ..query(Query::Ping)
    };
    let Body::Reply(back) = Message::decode(&message.encode()).unwrap().body else {
        panic!("a reply")
    };
    assert_eq!(back.nodes.len(), MAX_NODES);
    assert_eq!(back.values.len(), MAX_VALUES);
}

#[test]
fn distance_and_prefix() {
    let a = NodeId([0; 20]);
    let mut b = [0; 20];
    b[2] = 0b0001_0000;
    let b = NodeId(b);
    assert_eq!(a.common_prefix_len(&b), 19);
    assert_eq!(a.common_prefix_len(&a), 160);
    assert_eq!(a.distance(&b)[2], 0b0001_0000);
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::decode(&bytes);
    }
}
